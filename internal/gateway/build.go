package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/auth"
	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"
	"github.com/drawbridge-gw/drawbridge/internal/health"
	"github.com/drawbridge-gw/drawbridge/internal/integration"
	"github.com/drawbridge-gw/drawbridge/internal/l4"
	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/proxy"
	"github.com/drawbridge-gw/drawbridge/internal/router"
	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

// chain is everything one config builds for the request path. It is
// immutable once built; a reload builds a new chain and swaps it in.
type chain struct {
	cfg *config.Config
	// handler is the router behind the path guard.
	handler    http.Handler
	upstreams  []*builtUpstream
	accessLog  *slog.Logger
	accessFile io.Closer // nil unless the access log is a file we opened
	cancel     context.CancelFunc
	// seedPlans, if set, still has to write the config's plans to the
	// store (it was unreachable when the chain was built).
	seedPlans func(context.Context) error
	// l4Tables are the tcp listeners' SNI routes, by listener name.
	l4Tables map[string]*l4.Table
}

// seedRetry is how often plans are retried while the store is down.
const seedRetry = 2 * time.Second

type builtUpstream struct {
	pool *upstream.Pool
	// transport is rotated when a host-name target's addresses change, so
	// that new requests dial the new address (see transport.Rotating).
	transport *transport.Rotating
	// healthTransport makes the active checks' connections: the same
	// verification, but its own pool, so checks never wait behind partner
	// traffic for a max_conns slot (a busy target is not a dead one).
	healthTransport *transport.Rotating
	health          *config.HealthCheck
	metrics         *observe.UpstreamMetrics
	hostHeader      string // the upstream's server_name, or "" for the target's host
	// opts is how targets are verified; handshaker verifies that way over
	// a connection dialed by the L4 tier or a TLS health check (nil when
	// nothing needs it), and transport is nil for tcp:// and tls://
	// upstreams, which carry no HTTP.
	opts       transport.Options
	handshaker *transport.Handshaker
}

// buildChain builds the handler chain for cfg without starting anything:
// it does no network I/O, so it doubles as the deep check behind
// `drawbridge validate` (certificates, keys and pins are parsed here).
func buildChain(cfg *config.Config, st store.Store, keys *auth.KeyCache, metrics *observe.Metrics, logger *slog.Logger) (*chain, error) {
	c := &chain{cfg: cfg}
	pc, err := newPartnerControls(cfg, st, keys, metrics, logger)
	if err != nil {
		return nil, err
	}
	ups := make(map[string]*builtUpstream, len(cfg.Upstreams))
	for _, name := range slices.Sorted(maps.Keys(cfg.Upstreams)) {
		u, err := buildUpstream(cfg.Upstreams[name], metrics, logger)
		if err != nil {
			return nil, problem(cfg, cfg.Upstreams[name].Line, err)
		}
		ups[name] = u
		c.upstreams = append(c.upstreams, u)
	}

	if c.l4Tables, err = buildL4Tables(cfg, ups); err != nil {
		return nil, err
	}

	routes := make([]router.Route, 0, len(cfg.Routes))
	optionsTaken := optionsRoutes(cfg)
	for _, rc := range cfg.Routes {
		h, err := buildRoute(cfg, rc, ups[rc.Upstream], pc, metrics, logger)
		if err != nil {
			return nil, problem(cfg, rc.Line, err)
		}
		routes = append(routes, router.Route{Name: rc.Name, Host: rc.Host, Methods: routeMethods(rc, optionsTaken), Path: rc.Path, Handler: h})
	}
	// API Gateway answers an unknown resource, and a known resource with an
	// undeclared method, with 403 Missing Authentication Token.
	r, err := router.New(routes, noRoute)
	if err != nil {
		return nil, fmt.Errorf("%s: routes: %w", cfg.File, err)
	}
	// Outermost but for the access log, so that every answer drawbridge
	// writes itself, the path guard's included, can be customized.
	c.handler = gatewayResponses(cfg).Middleware(guardPath(r))
	return c, nil
}

func buildUpstream(uc *config.Upstream, metrics *observe.Metrics, logger *slog.Logger) (*builtUpstream, error) {
	bu := &builtUpstream{health: uc.Health, metrics: metrics.Upstream(uc.Name), hostHeader: uc.TLS.ServerName}
	pool, err := upstream.NewPool(upstream.PoolOptions{
		Name:       uc.Name,
		Targets:    uc.Targets,
		Balance:    uc.Balance,
		DNSRefresh: uc.DNSRefresh.D(),
		Resolver:   uc.Resolver,
		Passive: upstream.PassiveOptions{
			MaxFails:   uc.Passive.MaxFails,
			FailWindow: uc.Passive.FailWindow.D(),
			EjectFor:   uc.Passive.EjectFor.D(),
		},
		Logger: logger,
		// Kept-alive connections still go to the old address, and a busy
		// HTTP/2 one is never idle: a fresh pool makes the next request
		// (or health check) dial the new one.
		OnAddrChange: func(*upstream.Target) {
			if bu.transport != nil {
				bu.transport.Rotate()
			}
			if bu.healthTransport != nil {
				bu.healthTransport.Rotate()
			}
		},
	})
	if err != nil {
		return nil, err
	}
	opts, err := TransportOptions(uc)
	if err != nil {
		return nil, err
	}
	opts.DialContext = pool.DialContext
	opts.OnVerified = bu.metrics.CertSeen
	if err := bu.l4Upstream(uc, opts); err != nil {
		return nil, err
	}
	if rawTCP(uc) {
		bu.pool = pool
		return bu, nil
	}
	tr, err := transport.New(opts)
	if err != nil {
		return nil, err
	}
	bu.pool, bu.transport = pool, transport.NewRotating(tr)
	if uc.Health != nil {
		opts.MaxIdleConnsPerHost, opts.MaxConnsPerHost = 1, 0
		htr, err := transport.New(opts)
		if err != nil {
			return nil, err
		}
		bu.healthTransport = transport.NewRotating(htr)
	}
	return bu, nil
}

// TransportOptions is how the gateway connects to and verifies uc's
// targets. Tools that must verify exactly as the gateway does (doctor)
// use it too. DialContext and OnVerified are left for the caller.
func TransportOptions(uc *config.Upstream) (transport.Options, error) {
	minVersion, err := transport.ParseVersion(uc.TLS.MinVersion)
	if err != nil {
		return transport.Options{}, fmt.Errorf("upstream %q: tls.min_version: %w", uc.Name, err)
	}
	return transport.Options{
		Upstream:            uc.Name,
		ServerName:          uc.TLS.ServerName,
		CAFile:              uc.TLS.CA,
		Pins:                uc.TLS.Pins,
		SystemRoots:         uc.TLS.SystemRoots,
		ClientCertFile:      uc.TLS.ClientCert,
		ClientKeyFile:       uc.TLS.ClientKey,
		InsecureSkipVerify:  uc.TLS.InsecureSkipVerify && uc.AllowInsecure,
		AllowPlaintext:      uc.AllowInsecure && hasPlaintext(uc.Targets),
		DisableHTTP2:        !uc.HTTP2Enabled(),
		MinVersion:          minVersion,
		LegacyCiphers:       uc.TLS.LegacyCiphers,
		LegacyCommonName:    uc.TLS.LegacyCommonName,
		AcceptExpired:       uc.TLS.AcceptExpired,
		DialTimeout:         uc.DialTimeout.D(),
		MaxIdleConnsPerHost: uc.MaxIdleConns,
		MaxConnsPerHost:     uc.MaxConns,
	}, nil
}

// buildRoute builds one route's stages, innermost first.
func buildRoute(cfg *config.Config, rc *config.Route, bu *builtUpstream, pc *partnerControls, metrics *observe.Metrics, logger *slog.Logger) (http.Handler, error) {
	backend, err := routeBackend(cfg, rc, bu, logger)
	if err != nil {
		return nil, err
	}
	// The request validator and parameter mappings run after the partner
	// checks, as in API Gateway: an unkeyed request gets 403, not 400.
	if backend, err = withMethodRequest(cfg, rc, backend); err != nil {
		return nil, fmt.Errorf("route %q: %w", rc.Name, err)
	}
	h, err := perMethod(rc, func(methodKey string) (http.Handler, error) { return pc.wrap(rc, methodKey, backend) })
	if err == nil {
		h, err = withCORS(rc, pc.methodsOnPath[rc.Host+" "+rc.Path], h)
	}
	if err != nil {
		return nil, fmt.Errorf("route %q: %w", rc.Name, err)
	}
	return stampRoute(metrics.Route(rc.Name), h), nil
}

// routeBackend is what a route's requests reach after every check: the
// proxy to its upstream, or its mock answer.
func routeBackend(cfg *config.Config, rc *config.Route, bu *builtUpstream, logger *slog.Logger) (http.Handler, error) {
	if rc.Mock != nil {
		return integration.NewMock(integration.Mock{Status: rc.Mock.Status, Body: rc.Mock.Body, Headers: rc.Mock.Headers}), nil
	}
	var rewrite *router.Template
	if rc.UpstreamPath != "" {
		t, err := router.ParseTemplate(rc.UpstreamPath)
		if err != nil {
			return nil, fmt.Errorf("route %q: upstream_path: %w", rc.Name, err)
		}
		rewrite = &t
	}
	uc := cfg.Upstreams[rc.Upstream]
	statusMap, errs := integration.StatusMap(rc.StatusMap)
	if len(errs) > 0 {
		return nil, fmt.Errorf("route %q: %s", rc.Name, errs[0])
	}
	p, err := proxy.New(proxy.Options{
		Route:        rc.Name,
		Pool:         bu.pool,
		Transport:    bu.transport,
		Metrics:      bu.metrics,
		HostHeader:   uc.TLS.ServerName,
		UpstreamPath: rewrite,
		Timeout:      rc.Timeout.D(),
		MaxBodyBytes: maxBodyBytes(cfg),
		Logger:       logger,
		StatusMap:    statusMap,
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// perMethod builds the partner checks once per method the route declares,
// because a usage plan may throttle "GET /orders/{id}" differently from
// "PUT /orders/{id}" (API Gateway's method-level throttling).
func perMethod(rc *config.Route, build func(methodKey string) (http.Handler, error)) (http.Handler, error) {
	// An imported route is known to plans by its definition's path, under
	// whichever base path it is served.
	path := rc.Path
	if rc.PlanPath != "" {
		path = rc.PlanPath
	}
	// One method and no OPTIONS added for CORS: the router passes only
	// that method, so no dispatch is needed.
	if len(rc.Methods) == 1 && (rc.CORS == nil || rc.Methods[0] == "ANY" || rc.Methods[0] == "OPTIONS") {
		return build(rc.Methods[0] + " " + path)
	}
	byMethod := make(map[string]http.Handler, len(rc.Methods))
	for _, m := range rc.Methods {
		h, err := build(m + " " + path)
		if err != nil {
			return nil, err
		}
		byMethod[m] = h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := byMethod[r.Method]
		if !ok {
			// An OPTIONS the router let through for CORS, but that was
			// not a preflight.
			noRoute(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}), nil
}

// routeMethods are the methods the router sends to rc: its own, plus
// OPTIONS for a CORS route, so that browsers' preflights reach the CORS
// stage, unless some route of the same path already takes OPTIONS.
func routeMethods(rc *config.Route, optionsTaken map[string]bool) []string {
	key := rc.Host + " " + rc.Path
	if rc.CORS == nil || optionsTaken[key] || slices.Contains(rc.Methods, "OPTIONS") || slices.Contains(rc.Methods, "ANY") {
		return rc.Methods
	}
	optionsTaken[key] = true
	return append(slices.Clone(rc.Methods), "OPTIONS")
}

// optionsRoutes lists the host and path of every route that declares
// OPTIONS or ANY itself.
func optionsRoutes(cfg *config.Config) map[string]bool {
	taken := map[string]bool{}
	for _, rc := range cfg.Routes {
		if slices.Contains(rc.Methods, "OPTIONS") || slices.Contains(rc.Methods, "ANY") {
			taken[rc.Host+" "+rc.Path] = true
		}
	}
	return taken
}

var missingToken = gwresponse.Default(gwresponse.MissingAuthenticationToken)

// guardPath refuses paths that the router and a backend could read
// differently, before any route is chosen. An encoded slash or backslash
// is one segment to the router, but two to a backend that decodes it
// (nginx proxy_pass with a URI, many frameworks); a ";" parameter is part
// of a segment to the router, but stripped by Java servlet containers. So
// /admin%2Fsecret or /admin;x=1/secret could match a catch-all route
// without an API key and still reach /admin/secret. Such requests get 400.
func guardPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Both forms: the decoded path shows a ';' sent as %3B, the raw
		// one an encoded slash (and %25-encoded ones, for a load
		// balancer that decodes once before the backend decodes again).
		if ambiguousPath(r.URL.Path) || ambiguousPath(r.URL.RawPath) {
			observe.RecordFrom(r.Context()).Error = "ambiguous path: encoded slash, backslash or ';'"
			gwresponse.Write(w, gwresponse.Default4XX)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ambiguousPath reports a ';' or '\\', or an escape of '/', '\\' or ';'
// (%2F, %5C, %3B), also escaped twice (%252F), in any letter case.
func ambiguousPath(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case ';', '\\':
			return true
		case '%':
			rest := p[i+1:]
			if len(rest) >= 4 && rest[:2] == "25" {
				rest = rest[2:] // %25XX decodes to %XX
			}
			if len(rest) >= 2 && isSeparatorEscape(rest[:2]) {
				return true
			}
		}
	}
	return false
}

func isSeparatorEscape(hex string) bool {
	switch strings.ToUpper(hex) {
	case "2F", "5C", "3B":
		return true
	}
	return false
}

// noRoute answers requests no route takes, and says why in the access log.
var noRoute = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	observe.RecordFrom(r.Context()).Error = "no route for method and path"
	missingToken.Write(w)
})

// stampRoute tells the access log and metrics which route matched. It is
// the first stage of every route so that even a request refused by a later
// stage is counted under its route.
func stampRoute(rm *observe.RouteMetrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		observe.RecordFrom(r.Context()).Route = rm
		next.ServeHTTP(w, r)
	})
}

// maxBodyBytes is the body cap: one gateway-wide value today, the smallest
// any listener asks for, since a route can be reached from every listener.
func maxBodyBytes(cfg *config.Config) int64 {
	var limit int64
	for _, l := range cfg.Listeners {
		if l.MaxBodyBytes > 0 && (limit == 0 || l.MaxBodyBytes < limit) {
			limit = l.MaxBodyBytes
		}
	}
	return limit
}

// inherit carries the state of targets that old also had (same upstream,
// same host:port) over to c, before c takes traffic.
func (c *chain) inherit(old *chain) {
	prev := map[string]*upstream.Target{}
	for _, u := range old.upstreams {
		for _, t := range u.pool.Targets() {
			prev[u.pool.Name()+" "+t.String()] = t
		}
	}
	for _, u := range c.upstreams {
		for _, t := range u.pool.Targets() {
			if o, ok := prev[u.pool.Name()+" "+t.String()]; ok {
				t.InheritState(o)
				if u.health == nil {
					// No active checks any more: nothing would ever mark
					// the target up again (removing a broken health check
					// is how an operator gets traffic back).
					t.SetHealthy(true)
				}
			}
		}
	}
}

// start launches the chain's background work: DNS refresh and active
// health checks. cancel stops it.
func (c *chain) start(logger *slog.Logger) {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if c.seedPlans != nil {
		go retrySeed(ctx, c.seedPlans, logger)
	}
	for _, u := range c.upstreams {
		u.pool.Start(ctx)
		if u.health == nil {
			continue
		}
		checks := make([]health.Check, 0, len(u.pool.Targets()))
		for _, t := range u.pool.Targets() {
			checks = append(checks, health.Check{URL: t.URL(), Target: t, Name: t.String()})
		}
		um := u.metrics
		go health.Run(ctx, health.Options{
			Path:               u.health.Path,
			Interval:           u.health.Interval.D(),
			Timeout:            u.health.Timeout.D(),
			HealthyThreshold:   u.health.HealthyThreshold,
			UnhealthyThreshold: u.health.UnhealthyThreshold,
			Logger:             logger,
			Upstream:           u.pool.Name(),
			// The same Host the proxy sends, or a virtual-host load
			// balancer would fail every check that real traffic passes.
			Host: u.hostHeader,
			OnResult: func(target string, up bool, _ time.Duration, _ error) {
				um.HealthCheck(target, up)
			},
			Probe: u.healthProbe(),
		}, &http.Client{Transport: u.healthTransport}, checks)
	}
}

func retrySeed(ctx context.Context, seed func(context.Context) error, logger *slog.Logger) {
	tick := time.NewTicker(seedRetry)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := seed(ctx); err == nil {
				logger.Info("store is back: the config's plans are written")
				return
			}
		}
	}
}

// closeAccessLog closes the access log file of a chain that never went
// live.
func (c *chain) closeAccessLog() {
	if c.accessFile != nil {
		c.accessFile.Close()
	}
}

// stop ends the chain's background work and its idle upstream
// connections. Requests still in flight on it finish normally.
func (c *chain) stop() {
	if c.cancel != nil {
		c.cancel()
	}
	for _, u := range c.upstreams {
		if u.transport != nil {
			u.transport.CloseIdleConnections()
		}
		if u.healthTransport != nil {
			u.healthTransport.CloseIdleConnections()
		}
	}
}

func (c *chain) targetStates() []observe.TargetState {
	var states []observe.TargetState
	for _, u := range c.upstreams {
		for _, t := range u.pool.Targets() {
			states = append(states, observe.TargetState{Upstream: u.pool.Name(), Target: t.String(), Healthy: t.Healthy(), Ejected: t.Ejected()})
		}
	}
	return states
}

// openAccessLog returns the access logger cfg asks for, and the file to
// close when it is replaced, if any.
func openAccessLog(cfg *config.Config) (*slog.Logger, io.Closer, error) {
	var w io.Writer
	var closer io.Closer
	switch cfg.Log.Access {
	case "off":
		return nil, nil, nil
	case "", "stderr":
		w = os.Stderr
	case "stdout":
		w = os.Stdout
	default:
		f, err := os.OpenFile(cfg.Log.Access, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("opening access log: %w", err)
		}
		w, closer = f, f
	}
	return slog.New(slog.NewJSONHandler(w, nil)), closer, nil
}

func problem(cfg *config.Config, line int, err error) error {
	return fmt.Errorf("%s:%d: %w", cfg.File, line, err)
}

func hasPlaintext(targets []string) bool {
	for _, t := range targets {
		if strings.HasPrefix(t, "http://") {
			return true
		}
	}
	return false
}
