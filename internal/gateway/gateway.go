package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/auth"
	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/l4"
	"github.com/drawbridge-gw/drawbridge/internal/listener"
	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/memory"
)

// Options configures a Gateway.
type Options struct {
	// Version is reported in metrics and /healthz.
	Version string
	// Logger receives operational logs (not access logs). If nil,
	// slog.Default() is used.
	Logger *slog.Logger
	// Load reads the config again on Reload. If nil, config.Load of the
	// initial config's file is used.
	Load func() (*config.Config, error)
}

// Gateway is a running drawbridge.
type Gateway struct {
	opts    Options
	logger  *slog.Logger
	metrics *observe.Metrics

	listeners []*listener.Server
	// l4 are the tcp listeners (the L4 tier).
	l4 []*l4.Server
	// partnerAddrs are the bound partner sockets, http and tcp, in config
	// order.
	partnerAddrs []func() net.Addr
	admin        *http.Server
	adminLn      net.Listener
	// adminCerts serves the admin API over HTTPS when admin.tls is set.
	adminCerts *listener.Certs
	// store lives as long as the process: a reload cannot move it (bolt
	// holds a file lock; counters must not be lost).
	store store.Store
	// keys caches key lookups for every route, across reloads.
	keys *auth.KeyCache

	current  atomic.Pointer[chain]
	reloadMu sync.Mutex // one reload at a time, and none once stopping
	// seedMu orders writes of config plans to the store: a chain's
	// deferred write (store was down) must not land after a newer chain
	// wrote its plans, so writing and going live happen under it.
	seedMu   sync.Mutex
	stopping bool // guarded by reloadMu
	ready    atomic.Bool

	// acme holds each listener's ACME manager and plain-HTTP socket, in
	// the order of listeners.
	acme []*acmeListener
}

// New builds the gateway for cfg and binds its sockets, so an address in
// use fails here, before anything serves. Nothing is served until Run.
func New(cfg *config.Config, o Options) (*Gateway, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Load == nil {
		file := cfg.File
		o.Load = func() (*config.Config, error) { return config.Load(file) }
	}
	g := &Gateway{opts: o, logger: o.Logger, metrics: observe.NewMetrics(o.Version)}
	st, err := OpenStore(cfg, o.Logger)
	if err != nil {
		return nil, err
	}
	g.store = st
	g.keys = auth.NewKeyCache(auth.KeyCacheOptions{Store: st})
	c, err := g.build(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	// From here on a failure must release what was opened: the sockets,
	// the store (bolt's file lock) and the access log file.
	fail := func(err error) (*Gateway, error) {
		c.closeAccessLog()
		g.closeListeners()
		return nil, err
	}
	for _, lc := range cfg.Listeners {
		if lc.Type == config.ListenerTCP {
			srv, err := newL4Server(lc, g)
			if err != nil {
				return fail(fmt.Errorf("%s:%d: %w", cfg.File, lc.Line, err))
			}
			g.l4 = append(g.l4, srv)
			g.partnerAddrs = append(g.partnerAddrs, srv.Addr)
			if err := srv.Listen(); err != nil {
				return fail(fmt.Errorf("%s:%d: %w", cfg.File, lc.Line, err))
			}
			continue
		}
		opts := listenerOptions(lc, g)
		al, err := g.newACMEListener(lc, &opts)
		if err != nil {
			return fail(fmt.Errorf("%s:%d: %w", cfg.File, lc.Line, err))
		}
		g.acme = append(g.acme, al) // before anything else can fail: fail stops it
		// The listener package names the listener in its errors.
		srv, err := listener.New(opts, http.NotFoundHandler())
		if err != nil {
			return fail(fmt.Errorf("%s:%d: %w", cfg.File, lc.Line, err))
		}
		al.server = srv
		g.listeners = append(g.listeners, srv)
		g.partnerAddrs = append(g.partnerAddrs, srv.Addr)
		if err := srv.Listen(); err != nil {
			return fail(fmt.Errorf("%s:%d: %w", cfg.File, lc.Line, err))
		}
		if err := al.listen(); err != nil {
			return fail(fmt.Errorf("%s:%d: %w", cfg.File, lc.Line, err))
		}
	}
	if cfg.Admin.Addr != "off" {
		ln, err := net.Listen("tcp", cfg.Admin.Addr)
		if err != nil {
			return fail(fmt.Errorf("%s:%d: admin: %w", cfg.File, cfg.Admin.Line, err))
		}
		g.adminLn = ln
		if t := cfg.Admin.TLS; t != nil {
			certs, err := listener.LoadCerts(t.Cert, t.Key)
			if err != nil {
				return fail(fmt.Errorf("%s:%d: admin: %w", cfg.File, t.Line, err))
			}
			g.adminCerts = certs
			g.adminLn = tls.NewListener(ln, &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tlsVersion(t.MinVersion)})
		}
		g.admin = &http.Server{
			Handler:           g.adminHandler(cfg.Admin.Token),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(g.logger.Handler(), slog.LevelDebug),
		}
	}
	if err := g.goLive(c); err != nil {
		return fail(err)
	}
	return g, nil
}

// tlsVersion maps a listener's validated min_version to crypto/tls.
func tlsVersion(v string) uint16 {
	if v == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

func listenerOptions(lc config.Listener, g *Gateway) listener.Options {
	return listener.Options{
		Name:              lc.Name,
		Addr:              lc.Addr,
		CertFile:          lc.TLS.Cert,
		KeyFile:           lc.TLS.Key,
		MinVersion:        tlsVersion(lc.TLS.MinVersion),
		ReadHeaderTimeout: lc.ReadHeaderTimeout.D(),
		IdleTimeout:       lc.IdleTimeout.D(),
		MaxHeaderBytes:    lc.MaxHeaderBytes,
		ClientCAFile:      lc.TLS.ClientCA,
		ClientAuth:        lc.TLS.ClientAuth,
		RevokedFile:       lc.TLS.Revoked,
		Logger:            g.logger,
		OnCertLoaded: func(name string, leaf *x509.Certificate) {
			g.metrics.CertExpiry("listener", name, leaf)
			if msg := certDateProblem(leaf, time.Now()); msg != "" {
				g.logger.Warn("listener certificate "+msg+"; partners' TLS handshakes will fail", "listener", name, "subject", leaf.Subject.String())
			}
		},
	}
}

// build makes a chain for cfg, writes its plans to the store, and logs
// the insecure opt-ins it uses.
func (g *Gateway) build(cfg *config.Config) (*chain, error) {
	c, err := buildChain(cfg, g.store, g.keys, g.metrics, g.logger)
	if err != nil {
		return nil, err
	}
	c.accessLog, c.accessFile, err = openAccessLog(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s:%d: log: %w", cfg.File, cfg.Log.Line, err)
	}
	// Every start and every reload says it again: an unverified hop must
	// never become something the operator forgot about.
	for _, w := range cfg.Warnings() {
		g.logger.Warn("insecure opt-in: a hop is not verified or not encrypted", "detail", w)
	}
	return c, nil
}

// seedPlans writes c's config plans to the store. It runs last before
// swap, once nothing else can fail: the store is shared with the live
// chain and other replicas, so a config that never goes live must not
// change it. A store outage defers the writing instead of failing, so it
// cannot block a start or an urgent reload.
func (g *Gateway) seedPlans(c *chain) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := SeedPlans(ctx, c.cfg, g.store)
	if errors.Is(err, store.ErrUnavailable) {
		g.logger.Warn("store unavailable: the config's plans will be written when it returns", "error", err.Error())
		cfg := c.cfg
		c.seedPlans = func(ctx context.Context) error {
			g.seedMu.Lock()
			defer g.seedMu.Unlock()
			if g.current.Load() != c {
				return nil // a newer config is live and wrote its own plans
			}
			return SeedPlans(ctx, cfg, g.store)
		}
		return nil
	}
	return err
}

// goLive writes c's plans and makes c the live chain, under seedMu.
func (g *Gateway) goLive(c *chain) error {
	g.seedMu.Lock()
	defer g.seedMu.Unlock()
	if err := g.seedPlans(c); err != nil {
		return err
	}
	g.swap(c)
	return nil
}

// swap makes c the live chain on every listener and stops the old one.
func (g *Gateway) swap(c *chain) {
	if old := g.current.Load(); old != nil {
		c.inherit(old)
	}
	c.start(g.logger)
	for _, srv := range g.listeners {
		srv.SetHandler(observe.Middleware(observe.MiddlewareOptions{
			AccessLog: c.accessLog,
			Metrics:   g.metrics,
			Listener:  srv.Name(),
		}, c.handler))
	}
	g.setL4Routes(c)
	g.metrics.SetTargetStates(c.targetStates)
	old := g.current.Swap(c)
	if old == nil {
		return
	}
	old.stop()
	if old.accessFile != nil && old.accessFile != c.accessFile {
		// Requests already on the old chain may still log; give them the
		// longest route timeout to finish before closing their file.
		f := old.accessFile
		time.AfterFunc(maxRouteTimeout(old.cfg)+time.Second, func() { f.Close() })
	}
}

func maxRouteTimeout(cfg *config.Config) time.Duration {
	var d time.Duration
	for _, r := range cfg.Routes {
		d = max(d, r.Timeout.D())
	}
	return d
}

// Reload reads the config again and, if it is valid, swaps it in; on any
// error the running config keeps serving untouched. Listener certificates
// are re-read from disk too (what SIGHUP does).
func (g *Gateway) Reload() error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if g.stopping {
		return errors.New("reload refused: the gateway is shutting down")
	}
	err := g.reload()
	g.metrics.ConfigReload(err)
	if err != nil {
		g.logger.Error("config reload failed; the previous config keeps serving", "error", err.Error())
		return err
	}
	g.logger.Info("config reloaded", "file", g.current.Load().cfg.File)
	return nil
}

func (g *Gateway) reload() error {
	cfg, err := g.opts.Load()
	if err != nil {
		return err
	}
	if err := sameSockets(g.current.Load().cfg, cfg); err != nil {
		return err
	}
	c, err := g.build(cfg)
	if err != nil {
		return err
	}
	var certErrs []error
	for _, srv := range g.listeners {
		err := srv.Certs().Reload()
		g.metrics.CertReload(srv.Name(), err)
		if err != nil {
			certErrs = append(certErrs, fmt.Errorf("listener %q: %w", srv.Name(), err))
		}
	}
	certErrs = append(certErrs, g.reloadL4Certs()...)
	if g.adminCerts != nil {
		err := g.adminCerts.Reload()
		g.metrics.CertReload("admin", err)
		if err != nil {
			certErrs = append(certErrs, fmt.Errorf("admin: %w", err))
		}
	}
	if err := g.goLive(c); err != nil {
		c.closeAccessLog()
		return err
	}
	// The new routes are live; a certificate that failed to reload keeps
	// its old version serving, which is reported but not fatal.
	return errors.Join(certErrs...)
}

// sameSockets refuses a reload that changes what is listened on: moving a
// socket means dropping connections, which is a restart's job.
func sameSockets(old, cfg *config.Config) error {
	if len(old.Listeners) != len(cfg.Listeners) {
		return fmt.Errorf("%s: listeners changed (%d → %d); restart drawbridge to apply", cfg.File, len(old.Listeners), len(cfg.Listeners))
	}
	for i, l := range cfg.Listeners {
		if changed := listenerChanges(old.Listeners[i], l); len(changed) > 0 {
			return fmt.Errorf("%s:%d: listener %q: %s changed; restart drawbridge to apply (certificate files themselves are re-read on reload)", cfg.File, l.Line, l.Name, strings.Join(changed, ", "))
		}
	}
	if old.Admin.Addr != cfg.Admin.Addr || old.Admin.Token != cfg.Admin.Token || !sameListenerTLS(old.Admin.TLS, cfg.Admin.TLS) {
		return fmt.Errorf("%s:%d: admin addr, token or tls changed; restart drawbridge to apply", cfg.File, cfg.Admin.Line)
	}
	if !sameStore(old.Store, cfg.Store) {
		return fmt.Errorf("%s:%d: store changed; restart drawbridge to apply", cfg.File, cfg.Store.Line)
	}
	return nil
}

// sameStore reports whether two store settings open the same store.
// on_error may change on reload: it is read per request.
func sameStore(a, b config.Store) bool {
	return a.Type == b.Type && a.Path == b.Path && a.FlushInterval == b.FlushInterval &&
		slices.Equal(a.Addrs, b.Addrs) && a.MasterName == b.MasterName && a.Username == b.Username &&
		a.Password == b.Password && a.DB == b.DB && a.Prefix == b.Prefix && a.Timeout == b.Timeout &&
		a.AllowInsecure == b.AllowInsecure && sameUpstreamTLS(a.TLS, b.TLS)
}

// sameListenerTLS and sameUpstreamTLS compare TLS settings, not the YAML
// lines they were read from: moving a block is not changing it.
func sameListenerTLS(a, b *config.ListenerTLS) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Line, y.Line = 0, 0
	return x == y
}

func sameUpstreamTLS(a, b *config.UpstreamTLS) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Line, y.Line = 0, 0
	return reflect.DeepEqual(x, y)
}

// listenerChanges names the settings that differ between two versions of
// a listener and cannot change on a live socket.
func listenerChanges(o, l config.Listener) []string {
	var changed []string
	for _, f := range []struct {
		name string
		diff bool
	}{
		{"name", o.Name != l.Name},
		{"addr", o.Addr != l.Addr},
		{"tls file paths", o.TLS.Cert != l.TLS.Cert || o.TLS.Key != l.TLS.Key || o.TLS.ClientCA != l.TLS.ClientCA || o.TLS.Revoked != l.TLS.Revoked},
		{"tls.min_version", o.TLS.MinVersion != l.TLS.MinVersion},
		{"tls.client_auth", o.TLS.ClientAuth != l.TLS.ClientAuth},
		{"tls.acme", !sameACME(o.TLS.ACME, l.TLS.ACME)},
		{"http_addr", o.HTTPAddr != l.HTTPAddr},
		{"type", o.Type != l.Type},
		{"tls.mode", o.TLS.Mode != l.TLS.Mode},
		{"read_header_timeout", o.ReadHeaderTimeout != l.ReadHeaderTimeout},
		{"idle_timeout", o.IdleTimeout != l.IdleTimeout},
		{"max_header_bytes", o.MaxHeaderBytes != l.MaxHeaderBytes},
		{"max_connections", o.MaxConnections != l.MaxConnections},
	} {
		if f.diff {
			changed = append(changed, f.name)
		}
	}
	return changed
}

// Run serves until ctx is done, then drains: it stops accepting, waits up
// to the config's shutdown_grace for in-flight requests, and returns.
func (g *Gateway) Run(ctx context.Context) error {
	errs := make(chan error, 2*len(g.listeners)+len(g.l4)+1)
	// ACME first: stored certificates are in place before the first
	// handshake is accepted.
	g.startACME(errs)
	g.serveL4(ctx, errs)
	for _, srv := range g.listeners {
		go func() { errs <- srv.Serve() }()
		go srv.Certs().Watch(ctx, g.logger, func(leaf *x509.Certificate, err error) {
			g.metrics.CertReload(srv.Name(), err)
		})
		g.logger.Info("listening", "listener", srv.Name(), "addr", srv.Addr().String())
	}
	if g.admin != nil {
		go func() {
			if err := g.admin.Serve(g.adminLn); !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("admin: %w", err)
			}
		}()
		if g.adminCerts != nil {
			go g.adminCerts.Watch(ctx, g.logger, func(_ *x509.Certificate, err error) { g.metrics.CertReload("admin", err) })
		}
		g.logger.Info("admin listening", "addr", g.adminLn.Addr().String(), "tls", g.adminCerts != nil)
	}
	g.ready.Store(true)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-errs:
		runErr = err
	}
	g.ready.Store(false)
	// No reload may start health checks or open files on a chain that
	// is being stopped; one in progress finishes first.
	g.reloadMu.Lock()
	g.stopping = true
	g.reloadMu.Unlock()
	grace := g.current.Load().cfg.ShutdownGrace.D()
	g.logger.Info("shutting down; draining in-flight requests", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range g.listeners {
		wg.Go(func() {
			if err := srv.Shutdown(sctx); err != nil {
				g.logger.Warn("listener did not drain in time; connections closed", "listener", srv.Name(), "error", err.Error())
			}
		})
	}
	for _, srv := range g.l4 {
		wg.Go(func() {
			if err := srv.Shutdown(sctx); err != nil {
				g.logger.Warn("listener did not drain in time; connections closed", "listener", srv.Name(), "error", err.Error())
			}
		})
	}
	wg.Wait()
	g.stopACME(sctx)
	if g.admin != nil {
		g.admin.Shutdown(sctx)
	}
	g.current.Load().stop()
	// Closing the store flushes bolt's counters: a clean stop loses none.
	if err := g.store.Close(); err != nil {
		g.logger.Error("closing the store", "error", err.Error())
	}
	g.logger.Info("stopped")
	return runErr
}

// Store is the gateway's state store, for tools that run in the same
// process (the quickstart creates its demo key with it).
func (g *Gateway) Store() store.Store { return g.store }

// ListenerAddrs are the bound partner addresses, in config order.
func (g *Gateway) ListenerAddrs() []net.Addr {
	addrs := make([]net.Addr, len(g.partnerAddrs))
	for i, addr := range g.partnerAddrs {
		addrs[i] = addr()
	}
	return addrs
}

// AdminAddr is the bound admin address, or nil when the admin is off.
func (g *Gateway) AdminAddr() net.Addr {
	if g.adminLn == nil {
		return nil
	}
	return g.adminLn.Addr()
}

func (g *Gateway) closeListeners() {
	for _, srv := range g.listeners {
		srv.Shutdown(context.Background())
	}
	for _, srv := range g.l4 {
		srv.Shutdown(context.Background())
	}
	g.stopACME(context.Background())
	if g.adminLn != nil {
		g.adminLn.Close()
	}
	if g.store != nil {
		g.store.Close()
	}
}

// certDateProblem says what is wrong with cert's validity dates at now,
// or "" when they are fine.
func certDateProblem(cert *x509.Certificate, now time.Time) string {
	switch {
	case now.After(cert.NotAfter):
		return "expired on " + cert.NotAfter.UTC().Format(time.RFC3339)
	case now.Before(cert.NotBefore):
		return "is not valid before " + cert.NotBefore.UTC().Format(time.RFC3339)
	}
	return ""
}

// Check builds everything cfg describes without binding a socket or
// touching the network: certificates, keys, CA files and pins are parsed.
// It is what `drawbridge validate` runs after config.Load, and it reports
// every problem it finds as a *config.Error, FILE:LINE first.
func Check(cfg *config.Config) error {
	var problems []config.Problem
	add := func(line int, err error) {
		problems = append(problems, config.Problem{File: cfg.File, Line: line, Msg: err.Error()})
	}
	metrics := observe.NewMetrics("check")
	discard := slog.New(slog.DiscardHandler)
	for _, name := range slices.Sorted(maps.Keys(cfg.Upstreams)) {
		u, err := buildUpstream(cfg.Upstreams[name], metrics, discard)
		if err != nil {
			add(cfg.Upstreams[name].TLS.Line, err)
			continue
		}
		if u.transport != nil {
			u.transport.CloseIdleConnections()
		}
	}
	for _, lc := range cfg.Listeners {
		if lc.Type == config.ListenerTCP {
			if err := checkL4Listener(lc); err != nil {
				add(lc.TLS.Line, err)
			}
			continue
		}
		// listener.New reads and checks every file (certificate, key,
		// client CAs, revoked list) without binding the socket.
		opts := listenerOptions(lc, &Gateway{metrics: metrics, logger: discard})
		opts.OnCertLoaded = nil
		if lc.TLS.ACME != nil {
			opts.Managed = checkOnlyManaged{}
			if err := checkACME(lc); err != nil {
				add(lc.TLS.ACME.Line, err)
			}
		}
		srv, err := listener.New(opts, http.NotFoundHandler())
		if err != nil {
			add(lc.TLS.Line, err)
			continue
		}
		if leaf := srv.Certs().Leaf(); leaf == nil {
			// ACME only: the certificates come at run time.
		} else if msg := certDateProblem(leaf, time.Now()); msg != "" {
			add(lc.TLS.Line, fmt.Errorf("listener %q: certificate %q %s; partners' TLS handshakes would fail", lc.Name, lc.TLS.Cert, msg))
		}
	}
	if t := cfg.Admin.TLS; t != nil {
		certs, err := listener.LoadCerts(t.Cert, t.Key)
		switch {
		case err != nil:
			add(t.Line, fmt.Errorf("admin: %w", err))
		case certDateProblem(certs.Leaf(), time.Now()) != "":
			add(t.Line, fmt.Errorf("admin: certificate %q %s", t.Cert, certDateProblem(certs.Leaf(), time.Now())))
		}
	}
	if s := cfg.Store; s.Type == "redis" && s.TLS != nil {
		if _, err := storeTLS(&s, s.Addrs); err != nil {
			add(s.TLS.Line, fmt.Errorf("store: %w", err))
		}
	}
	if len(problems) > 0 {
		return &config.Error{Problems: problems}
	}
	// Routes are only checked once their upstreams build. A memory store
	// stands in for the real one, which validate must not open (bolt's
	// lock is held by the running gateway).
	st := memory.New(memory.Options{})
	c, err := buildChain(cfg, st, auth.NewKeyCache(auth.KeyCacheOptions{Store: st}), metrics, discard)
	if err != nil {
		return err
	}
	c.stop()
	return nil
}
