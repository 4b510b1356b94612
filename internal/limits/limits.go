package limits

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"
	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// Counter is what limits needs from the store: token buckets and quota
// counters. Every store.Store is a Counter. A Counter that also implements
// store.Meter is asked for all of a request's limits in one Meter call
// instead of an Allow per bucket and a Consume: one round trip to Redis
// instead of up to four, with the same answers.
type Counter interface {
	Allow(ctx context.Context, bucket string, t store.Throttle) (store.Decision, error)
	Consume(ctx context.Context, keyID string, w *store.Window, now time.Time) (store.QuotaDecision, error)
}

// PlanSource finds usage plans by name. Plan must return an error matching
// store.ErrNotFound for a plan that does not exist. The lead passes a
// cached view of the store, e.g. NewPlanCache(st, 0).
type PlanSource interface {
	Plan(ctx context.Context, name string) (store.Plan, error)
}

var (
	_ Counter    = store.Store(nil)
	_ PlanSource = store.Store(nil)
)

// Options configures the limits stage of one route. It must not be
// modified after New.
type Options struct {
	// Counter holds the buckets and quota counters. Required.
	Counter Counter
	// Plans finds the plan of an identified key. Required when Identity is
	// set.
	Plans PlanSource
	// Identity reports the caller's API key ID and plan name ("" = the key
	// is in no plan); ok is false for anonymous requests, which only meet
	// the route and gateway throttles. If nil, every request is anonymous.
	// The gateway passes a func over auth.IdentityFrom.
	Identity func(ctx context.Context) (keyID, plan string, ok bool)
	// Gateway is the account-level throttle: one bucket ("gateway") shared
	// by every request of every route. Nil means none.
	Gateway *store.Throttle
	// Route is this route's throttle (API Gateway's stage/method level):
	// one bucket ("route:"+RouteName) for all callers. Nil means none.
	Route *store.Throttle
	// RouteName names the route in bucket names and metrics. Required when
	// Route is set, since routes with the same name share a bucket.
	RouteName string
	// RouteBucket names the route's bucket ("route:"+RouteBucket); routes
	// given the same name share one bucket. "" uses RouteName.
	RouteBucket string
	// MethodKey ("GET /orders/{id}") selects a plan's per-method override
	// in store.Plan.Methods.
	MethodKey string
	// FailOpen decides what happens when the Counter or Plans fail: true
	// lets the request through (reported to OnStoreError), false answers
	// 503 with gwresponse.ServiceUnavailable.
	FailOpen bool
	// Headers adds Retry-After on 429 answers and the IETF RateLimit-Policy
	// and RateLimit fields (draft-ietf-httpapi-ratelimit-headers-10) on
	// every answer. Off by default because API Gateway sends neither and
	// partners compare responses.
	Headers bool
	// Now is the clock for quota windows; if nil, time.Now.
	Now func() time.Time
	// Logger receives the one-time warning about a key whose plan does
	// not exist or is invalid; if nil, slog.Default().
	Logger *slog.Logger

	// Hooks for metrics; any may be nil. They are called on the request's
	// goroutine and must be quick.

	// OnThrottled is called for each 429 Too Many Requests with the
	// caller's plan ("" when none).
	OnThrottled func(plan, level string)
	// OnQuotaExceeded is called for each 429 Limit Exceeded.
	OnQuotaExceeded func(plan string)
	// OnStoreError is called once per request whose Counter or Plans
	// call failed, whichever FailOpen says to do next.
	OnStoreError func(err error)
}

// Bucket names; replicas sharing a store must agree on them.
const (
	gatewayBucket = "gateway"
	routePrefix   = "route:"
	keyPrefix     = "key:"
)

// handler is the limits stage built by New.
type handler struct {
	o           Options
	next        http.Handler
	now         func() time.Time
	log         *slog.Logger
	routeBucket string
	// meter is Counter as a store.Meter, or nil when it is not one.
	meter store.Meter
	// warned holds plan names already logged as missing or invalid, so a
	// busy key with a bad plan logs once, not once per request.
	warned sync.Map
}

// New returns a handler that applies o's throttles and quotas and passes
// the requests they allow to next. Invalid throttles are errors here, not
// on a request.
func New(o Options, next http.Handler) (http.Handler, error) {
	if next == nil {
		return nil, errors.New("limits: next handler is nil")
	}
	if o.Counter == nil {
		return nil, errors.New("limits: no counter store")
	}
	if o.Identity != nil && o.Plans == nil {
		return nil, errors.New("limits: identity set but no plan source")
	}
	if o.Gateway != nil {
		if err := checkThrottle(*o.Gateway); err != nil {
			return nil, fmt.Errorf("limits: gateway throttle: %w", err)
		}
	}
	if o.Route != nil {
		if o.RouteName == "" {
			return nil, errors.New("limits: route throttle needs a route name")
		}
		if err := checkThrottle(*o.Route); err != nil {
			return nil, fmt.Errorf("limits: route %q throttle: %w", o.RouteName, err)
		}
	}
	bucket := o.RouteBucket
	if bucket == "" {
		bucket = o.RouteName
	}
	h := &handler{o: o, next: next, now: o.Now, log: o.Logger, routeBucket: routePrefix + bucket}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.meter, _ = o.Counter.(store.Meter)
	return h, nil
}

// ServeHTTP applies the limits in this order:
//
//  1. The key's own bucket ("key:"+keyID, or "key:"+keyID+":"+MethodKey
//     with the plan's per-method throttle when it overrides this method).
//     It goes first because it is the narrowest: a partner over its own
//     rate is refused before it spends tokens of the shared route and
//     gateway buckets, so one noisy partner cannot starve the others.
//  2. The route's bucket, then the gateway's. Narrow before wide again:
//     a route over its limit must not drain the bucket every other route
//     depends on.
//  3. The key's quota. Last, because a quota count is never given back:
//     a request refused by a throttle must not be charged to the partner
//     (API Gateway does not count throttled requests either). Usage is
//     counted even when the plan has no quota.
//
// A bucket that refuses takes nothing, but buckets earlier in the order
// have already spent their token; that is the price of not locking
// several buckets at once, and errs toward refusing, never toward
// letting more through.
//
// With a Counter that is a store.Meter, all of it is one Meter call (one
// Redis round trip) with the same buckets in the same order and the same
// answers.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rec := observe.RecordFrom(ctx)

	keyID, planName, identified := "", "", false
	if h.o.Identity != nil {
		keyID, planName, identified = h.o.Identity(ctx)
	}
	var plan store.Plan
	if identified && planName == "" {
		// API Gateway refuses a key that is in no usage plan with 403
		// Forbidden; such a key would otherwise pass unthrottled.
		rec.Error = "key in no usage plan"
		gwresponse.Write(w, gwresponse.InvalidAPIKey)
		return
	}
	if identified {
		p, err := h.o.Plans.Plan(ctx, planName)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// AWS refuses a key that is not in a usage plan for the stage
			// with 403 Forbidden; a key pointing at a deleted plan is the
			// same situation, and the operator needs to hear about it.
			h.warnPlan(planName, "key's usage plan does not exist; refusing its requests", err)
			rec.Error = "plan not found"
			gwresponse.Write(w, gwresponse.InvalidAPIKey)
			return
		case err != nil:
			if h.storeFailed(w, r, err) {
				h.next.ServeHTTP(w, r)
			}
			return
		}
		plan = p
	}

	if h.meter != nil && (!identified || keyID != "") {
		h.serveMetered(w, r, keyID, planName, identified, plan)
		return
	}
	h.serveByParts(w, r, keyID, planName, identified, plan)
}

// serveByParts applies the limits with one Counter call per bucket and
// one for the quota, stopping at the first refusal.
func (h *handler) serveByParts(w http.ResponseWriter, r *http.Request, keyID, planName string, identified bool, plan store.Plan) {
	ctx := r.Context()
	rec := observe.RecordFrom(ctx)
	var hdr rateHeaders

	// 1. The key's bucket.
	if identified {
		bucket, t, ok := keyThrottle(keyID, plan, h.o.MethodKey)
		if ok {
			if err := checkThrottle(t); err != nil {
				h.badPlan(w, rec, planName, fmt.Errorf("throttle for %q: %w", bucket, err))
				return
			}
			d, err := h.o.Counter.Allow(ctx, bucket, t)
			if err != nil {
				if h.storeFailed(w, r, err) {
					h.next.ServeHTTP(w, r)
				}
				return
			}
			if h.o.Headers {
				hdr.addThrottle("key", t, d)
			}
			if !d.Allowed {
				h.throttled(w, rec, &hdr, planName, "key", d)
				return
			}
		}
	}

	// 2. The route's bucket, then the gateway's.
	for _, b := range [...]struct {
		bucket, policy string
		t              *store.Throttle
	}{
		{h.routeBucket, "route", h.o.Route},
		{gatewayBucket, "gateway", h.o.Gateway},
	} {
		if b.t == nil {
			continue
		}
		d, err := h.o.Counter.Allow(ctx, b.bucket, *b.t)
		if err != nil {
			if h.storeFailed(w, r, err) {
				h.next.ServeHTTP(w, r)
			}
			return
		}
		if h.o.Headers {
			hdr.addThrottle(b.policy, *b.t, d)
		}
		if !d.Allowed {
			h.throttled(w, rec, &hdr, planName, b.policy, d)
			return
		}
	}

	// 3. The key's quota.
	if identified {
		now := h.now()
		var win *store.Window
		if plan.Quota != nil {
			wv, err := QuotaWindow(*plan.Quota, now)
			if err != nil {
				h.badPlan(w, rec, planName, err)
				return
			}
			win = &wv
		}
		qd, err := h.o.Counter.Consume(ctx, keyID, win, now)
		if err != nil {
			if h.storeFailed(w, r, err) {
				h.next.ServeHTTP(w, r)
			}
			return
		}
		if !h.quotaAllows(w, rec, &hdr, planName, win, qd, now) {
			return
		}
	}

	if h.o.Headers {
		hdr.write(w.Header())
	}
	h.next.ServeHTTP(w, r)
}

// serveMetered applies the same limits, in the same order and with the
// same bucket names, as serveByParts, in one Meter call.
func (h *handler) serveMetered(w http.ResponseWriter, r *http.Request, keyID, planName string, identified bool, plan store.Plan) {
	ctx := r.Context()
	rec := observe.RecordFrom(ctx)

	var bucketArr [3]store.BucketCheck
	var policyArr [3]string
	buckets, policies := bucketArr[:0], policyArr[:0]
	if identified {
		bucket, t, ok := keyThrottle(keyID, plan, h.o.MethodKey)
		if ok {
			if err := checkThrottle(t); err != nil {
				h.badPlan(w, rec, planName, fmt.Errorf("throttle for %q: %w", bucket, err))
				return
			}
			buckets = append(buckets, store.BucketCheck{Bucket: bucket, Throttle: t})
			policies = append(policies, "key")
		}
	}
	if h.o.Route != nil {
		buckets = append(buckets, store.BucketCheck{Bucket: h.routeBucket, Throttle: *h.o.Route})
		policies = append(policies, "route")
	}
	if h.o.Gateway != nil {
		buckets = append(buckets, store.BucketCheck{Bucket: gatewayBucket, Throttle: *h.o.Gateway})
		policies = append(policies, "gateway")
	}

	var now time.Time
	var win *store.Window
	var quotaErr error
	countID := ""
	if identified {
		now = h.now()
		countID = keyID
		if plan.Quota != nil {
			wv, err := QuotaWindow(*plan.Quota, now)
			if err != nil {
				// As serveByParts, the buckets still answer first: a
				// throttled request is refused as such, and only one
				// they allow is answered 500. Nothing is counted.
				quotaErr, countID = err, ""
			} else {
				win = &wv
			}
		}
	}

	res := store.MeterResult{Refused: -1}
	if len(buckets) > 0 || countID != "" {
		var err error
		res, err = h.meter.Meter(ctx, buckets, countID, win, now)
		if err == nil {
			err = checkMeterResult(res, len(buckets), countID != "")
		}
		if err != nil {
			if h.storeFailed(w, r, err) {
				h.next.ServeHTTP(w, r)
			}
			return
		}
	}

	var hdr rateHeaders
	if h.o.Headers {
		for i, d := range res.Decisions {
			hdr.addThrottle(policies[i], buckets[i].Throttle, d)
		}
	}
	if res.Refused >= 0 {
		h.throttled(w, rec, &hdr, planName, policies[res.Refused], res.Decisions[res.Refused])
		return
	}
	if quotaErr != nil {
		h.badPlan(w, rec, planName, quotaErr)
		return
	}
	if res.Counted && !h.quotaAllows(w, rec, &hdr, planName, win, res.Quota, now) {
		return
	}

	if h.o.Headers {
		hdr.write(w.Header())
	}
	h.next.ServeHTTP(w, r)
}

// checkMeterResult rejects a Meter answer that does not fit the question
// (n buckets, counted or not), so that a broken store is a store error
// rather than an index out of range.
func checkMeterResult(res store.MeterResult, n int, count bool) error {
	ok := len(res.Decisions) <= n
	if res.Refused >= 0 {
		ok = ok && res.Refused == len(res.Decisions)-1 && !res.Decisions[res.Refused].Allowed && !res.Counted
	} else {
		ok = ok && res.Refused == -1 && len(res.Decisions) == n && res.Counted == count
	}
	if !ok {
		return fmt.Errorf("limits: store's Meter answered %d decisions, refused %d, counted %v for %d buckets and counting %v",
			len(res.Decisions), res.Refused, res.Counted, n, count)
	}
	return nil
}

// quotaAllows handles the quota's answer qd for window win (nil: none):
// it adds the quota to hdr and, when qd refuses, answers 429 Limit
// Exceeded and reports false.
func (h *handler) quotaAllows(w http.ResponseWriter, rec *observe.Record, hdr *rateHeaders, planName string, win *store.Window, qd store.QuotaDecision, now time.Time) bool {
	if win != nil && h.o.Headers {
		hdr.addQuota(*win, qd, now)
	}
	if qd.Allowed {
		return true
	}
	rec.Error = "quota exceeded"
	if h.o.OnQuotaExceeded != nil {
		h.o.OnQuotaExceeded(planName)
	}
	if h.o.Headers {
		hdr.write(w.Header())
		if win != nil {
			w.Header().Set("Retry-After", ceilSeconds(win.End.Sub(now)))
		}
	}
	gwresponse.Write(w, gwresponse.QuotaExceeded)
	return false
}

// keyThrottle picks the key's bucket: the plan's override for methodKey
// when there is one, else the plan's throttle; ok is false when neither
// exists.
func keyThrottle(keyID string, p store.Plan, methodKey string) (bucket string, t store.Throttle, ok bool) {
	if methodKey != "" {
		if mt, found := p.Methods[methodKey]; found {
			return keyPrefix + keyID + ":" + methodKey, mt, true
		}
	}
	if p.Throttle != nil {
		return keyPrefix + keyID, *p.Throttle, true
	}
	return "", store.Throttle{}, false
}

// throttled answers 429 Too Many Requests; level is the bucket that
// refused: key, route or gateway.
func (h *handler) throttled(w http.ResponseWriter, rec *observe.Record, hdr *rateHeaders, plan, level string, d store.Decision) {
	rec.Error = "throttled: " + level
	if h.o.OnThrottled != nil {
		h.o.OnThrottled(plan, level)
	}
	if h.o.Headers {
		hdr.write(w.Header())
		w.Header().Set("Retry-After", ceilSeconds(d.RetryAfter))
	}
	gwresponse.Write(w, gwresponse.Throttled)
}

// storeFailed handles a failed Counter or Plans call and reports whether
// the request may go on to next (FailOpen). A request whose client has
// gone away is dropped without blaming the store.
func (h *handler) storeFailed(w http.ResponseWriter, r *http.Request, err error) (pass bool) {
	rec := observe.RecordFrom(r.Context())
	if r.Context().Err() != nil {
		rec.Error = "client gone"
		return false
	}
	if h.o.OnStoreError != nil {
		h.o.OnStoreError(err)
	}
	if h.o.FailOpen {
		return true
	}
	rec.Error = "store unavailable"
	gwresponse.Write(w, gwresponse.ServiceUnavailable)
	return false
}

// badPlan answers 500 for a plan whose throttle or quota cannot be
// applied: the operator's mistake, which the partner cannot fix.
func (h *handler) badPlan(w http.ResponseWriter, rec *observe.Record, plan string, err error) {
	h.warnPlan(plan, "key's usage plan is invalid; refusing its requests", err)
	rec.Error = "plan invalid"
	gwresponse.Write(w, gwresponse.APIConfigurationError)
}

// warnPlan logs msg once per plan name for the life of the handler.
func (h *handler) warnPlan(plan, msg string, err error) {
	if _, seen := h.warned.LoadOrStore(plan, struct{}{}); seen {
		return
	}
	h.log.Warn(msg, "plan", plan, "route", h.o.RouteName, "error", err)
}
