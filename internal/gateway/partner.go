package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/auth"
	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/limits"
	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// partnerControls is what every route's partner checks share within one
// config: the store, a cached view of its plans, and the partners.
type partnerControls struct {
	store        store.Store
	keyCache     *auth.KeyCache
	plans        limits.PlanSource
	certPartners map[string]auth.PartnerMatch
	ipPartners   map[string]auth.IPRules
	gateway      *store.Throttle
	// methodsOnPath lists, per "host path", the methods of all routes on
	// it: the one route that answers CORS preflights there allows them all.
	methodsOnPath map[string][]string
	failOpen      bool
	headers       bool
	metrics       *observe.Metrics
	logger        *slog.Logger
}

// planCacheTTL bounds how stale a plan change made through the admin API
// (or on another replica) can be on this one.
const planCacheTTL = 500 * time.Millisecond

func newPartnerControls(cfg *config.Config, st store.Store, keys *auth.KeyCache, metrics *observe.Metrics, logger *slog.Logger) (*partnerControls, error) {
	pc := &partnerControls{
		store:         st,
		keyCache:      keys,
		plans:         limits.NewPlanCache(st, planCacheTTL),
		certPartners:  map[string]auth.PartnerMatch{},
		ipPartners:    map[string]auth.IPRules{},
		gateway:       storeThrottle(cfg.Throttle),
		methodsOnPath: methodsByPath(cfg),
		failOpen:      cfg.Store.OnError == "fail_open",
		headers:       cfg.RateLimitHeaders,
		metrics:       metrics,
		logger:        logger,
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Partners)) {
		p := cfg.Partners[name]
		if p.ClientCert != nil {
			pc.certPartners[name] = auth.PartnerMatch{Subjects: p.ClientCert.Subjects, Fingerprints: p.ClientCert.Fingerprints}
		}
		if p.IP != nil {
			rules, err := auth.ParseIPRules(p.IP.Allow, p.IP.Deny)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: partner %q: %w", cfg.File, p.Line, name, err)
			}
			pc.ipPartners[name] = rules
		}
	}
	return pc, nil
}

func storeThrottle(t *config.Throttle) *store.Throttle {
	if t == nil {
		return nil
	}
	return &store.Throttle{Rate: t.Rate, Burst: t.Burst}
}

// wrap puts a route's partner checks in front of next. Outermost first,
// and the order matters (CORS goes in front of all of them, see
// withCORS):
//
//	route IP      the cheapest refusal, before any store lookup
//	client cert   identifies a partner by certificate (mTLS)
//	API key       identifies the key, its plan and partner
//	partner IP    needs the identity found above
//	limits        throttles, then quota: a throttled request uses no quota
func (pc *partnerControls) wrap(rc *config.Route, methodKey string, next http.Handler) (http.Handler, error) {
	h := next
	var err error
	if rc.APIKeyRequired || rc.Throttle != nil || pc.gateway != nil {
		h, err = limits.New(limits.Options{
			Counter:         pc.store,
			Plans:           pc.plans,
			Identity:        identityFunc,
			Gateway:         pc.gateway,
			Route:           storeThrottle(rc.Throttle),
			RouteName:       rc.Name,
			RouteBucket:     rc.LimitID,
			MethodKey:       methodKey,
			FailOpen:        pc.failOpen,
			Headers:         pc.headers,
			Logger:          pc.logger,
			OnThrottled:     pc.metrics.Throttled,
			OnQuotaExceeded: pc.metrics.QuotaExceeded,
			OnStoreError: func(error) {
				pc.metrics.StoreError(failAction(pc.failOpen))
			},
		}, h)
		if err != nil {
			return nil, err
		}
	}
	if len(pc.ipPartners) > 0 {
		if h, err = auth.NewIPFilter(auth.IPRules{}, pc.ipPartners, h); err != nil {
			return nil, err
		}
	}
	if rc.APIKeyRequired {
		if h, err = auth.NewKeyCheck(auth.KeyOptions{Cache: pc.keyCache, OnReject: pc.metrics.Rejected}, h); err != nil {
			return nil, err
		}
	}
	if rc.ClientCert == "required" || len(pc.certPartners) > 0 {
		h, err = auth.NewClientCertCheck(auth.ClientCertOptions{
			Required: rc.ClientCert == "required",
			Partners: pc.certPartners,
			OnReject: pc.metrics.Rejected,
		}, h)
		if err != nil {
			return nil, err
		}
	}
	if rc.IP != nil {
		rules, err := auth.ParseIPRules(rc.IP.Allow, rc.IP.Deny)
		if err != nil {
			return nil, err
		}
		if h, err = auth.NewIPFilter(rules, nil, h); err != nil {
			return nil, err
		}
	}
	return h, nil
}

func failAction(open bool) string {
	if open {
		return "fail_open"
	}
	return "fail_closed"
}

// identityFunc gives limits the key and plan that the key check found.
func identityFunc(ctx context.Context) (keyID, plan string, ok bool) {
	id, ok := auth.IdentityFrom(ctx)
	if !ok || id.KeyID == "" {
		return "", "", false
	}
	return id.KeyID, id.Plan, true
}

// SeedPlans writes the config's plans into the store, so that the config
// file stays the source of truth for the plans it names; plans created
// through the admin API live beside them.
func SeedPlans(ctx context.Context, cfg *config.Config, st store.Store) error {
	for _, name := range slices.Sorted(maps.Keys(cfg.Plans)) {
		p := cfg.Plans[name]
		sp := store.Plan{Name: name, Throttle: storeThrottle(p.Throttle)}
		if q := p.Quota; q != nil {
			sp.Quota = &store.Quota{Limit: q.Limit, Period: q.Period, Offset: int(q.Offset)}
		}
		if len(p.Methods) > 0 {
			sp.Methods = make(map[string]store.Throttle, len(p.Methods))
			for k, t := range p.Methods {
				if t != nil {
					sp.Methods[k] = store.Throttle{Rate: t.Rate, Burst: t.Burst}
				}
			}
		}
		if err := st.PutPlan(ctx, sp); err != nil {
			return fmt.Errorf("%s:%d: plan %q: %w", cfg.File, p.Line, name, err)
		}
	}
	return nil
}

// anyMethods is what a CORS preflight allows on a path with an ANY route.
var anyMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

func methodsByPath(cfg *config.Config) map[string][]string {
	m := map[string][]string{}
	for _, rc := range cfg.Routes {
		key := rc.Host + " " + rc.Path
		for _, method := range rc.Methods {
			if method == "ANY" {
				m[key] = append(m[key], anyMethods...)
			} else {
				m[key] = append(m[key], method)
			}
		}
	}
	for k, v := range m {
		slices.Sort(v)
		m[k] = slices.Compact(v)
	}
	return m
}

// withCORS answers a route's browser preflights before any other check:
// a preflight carries no API key, as API Gateway's CORS mock integration
// expects. By default a browser may use every method some route takes on
// this host and path (pathMethods).
func withCORS(rc *config.Route, pathMethods []string, next http.Handler) (http.Handler, error) {
	c := rc.CORS
	if c == nil {
		return next, nil
	}
	methods := c.AllowMethods
	if len(methods) == 0 {
		methods = pathMethods
	}
	return auth.NewCORS(auth.CORSOptions{
		AllowOrigins:     c.AllowOrigins,
		AllowMethods:     methods,
		AllowHeaders:     c.AllowHeaders,
		ExposeHeaders:    c.ExposeHeaders,
		MaxAge:           c.MaxAge.D(),
		AllowCredentials: c.AllowCredentials,
	}, next)
}
