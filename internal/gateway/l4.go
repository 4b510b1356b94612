package gateway

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/url"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/health"
	"github.com/drawbridge-gw/drawbridge/internal/l4"
	"github.com/drawbridge-gw/drawbridge/internal/listener"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// This file wires the L4 tier (tcp listeners, package l4) into the
// gateway: the same upstream pools, health checks, reload and shutdown as
// the HTTP path.

// l4Upstream builds what an upstream needs beyond its pool for the L4
// tier and TLS health checks: a Handshaker, verified as the HTTP
// transport verifies, when its targets are tls:// or its health check is
// a TLS handshake. tcp:// and tls:// upstreams get no HTTP transport.
func (bu *builtUpstream) l4Upstream(uc *config.Upstream, opts transport.Options) error {
	bu.opts = opts
	if uc.Scheme() == "tls" || (uc.Health != nil && uc.Health.Type == config.HealthTLS) {
		h, err := transport.NewHandshaker(opts)
		if err != nil {
			return err
		}
		bu.handshaker = h
	}
	return nil
}

// rawTCP reports whether uc's targets are not spoken to over HTTP.
func rawTCP(uc *config.Upstream) bool {
	s := uc.Scheme()
	return s == "tcp" || s == "tls"
}

// healthProbe is the active check of a tcp or tls health check, or nil
// for an HTTP GET.
func (bu *builtUpstream) healthProbe() func(context.Context, *url.URL) error {
	if bu.health == nil {
		return nil
	}
	switch bu.health.Type {
	case config.HealthTCP:
		return health.TCPProbe(bu.pool.DialContext)
	case config.HealthTLS:
		return health.TLSProbe(bu.pool.DialContext, bu.handshaker)
	}
	return nil
}

// buildL4Tables builds each tcp listener's SNI table from the chain's
// upstreams, keyed by listener name.
func buildL4Tables(cfg *config.Config, ups map[string]*builtUpstream) (map[string]*l4.Table, error) {
	tables := map[string]*l4.Table{}
	for _, lc := range cfg.Listeners {
		if lc.Type != config.ListenerTCP {
			continue
		}
		routes := make(map[string]*l4.Route, len(lc.SNI))
		for _, r := range lc.SNI {
			bu := ups[r.Upstream]
			if bu == nil {
				return nil, problem(cfg, r.Line, fmt.Errorf("listener %q: sni %q: upstream %q is not defined", lc.Name, r.Name, r.Upstream))
			}
			uc := cfg.Upstreams[r.Upstream]
			route := &l4.Route{Upstream: r.Upstream, Pool: bu.pool, DialTimeout: uc.DialTimeout.D(), MaxConns: uc.MaxConns}
			switch uc.ProxyProtocol {
			case "v1":
				route.ProxyProtocol = 1
			case "v2":
				route.ProxyProtocol = 2
			}
			if lc.TLS.Mode == config.ModeTerminate {
				// An https:// upstream of a terminate listener has an HTTP
				// transport too; its handshaker is made on first use.
				if bu.handshaker == nil {
					h, err := transport.NewHandshaker(bu.opts)
					if err != nil {
						return nil, problem(cfg, r.Line, err)
					}
					bu.handshaker = h
				}
				route.TLS = bu.handshaker
			}
			routes[r.Name] = route
		}
		t, err := l4.NewTable(routes)
		if err != nil {
			return nil, problem(cfg, lc.Line, fmt.Errorf("listener %q: %w", lc.Name, err))
		}
		tables[lc.Name] = t
	}
	return tables, nil
}

// newL4Server builds the server of tcp listener lc; in terminate mode it
// loads the certificate as http listeners do, with the same metrics and
// date warnings.
func newL4Server(lc config.Listener, g *Gateway) (*l4.Server, error) {
	o := l4.Options{
		Name:        lc.Name,
		Addr:        lc.Addr,
		IdleTimeout: lc.IdleTimeout.D(),
		// Load defaults it; a Config built by hand may leave it 0 (no cap).
		MaxConnections: lc.MaxConnections,
		Logger:         g.logger,
		Metrics:        g.metrics.L4().Listener(lc.Name),
	}
	if lc.TLS.Mode == config.ModeTerminate {
		certs, err := listener.LoadCerts(lc.TLS.Cert, lc.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", lc.Name, err)
		}
		o.Certs, o.MinVersion = certs, tlsVersion(lc.TLS.MinVersion)
		g.l4CertLoaded(lc.Name, certs.Leaf())
	}
	return l4.New(o)
}

// l4CertLoaded records a terminate listener's certificate as
// listenerOptions' OnCertLoaded does for http listeners.
func (g *Gateway) l4CertLoaded(name string, leaf *x509.Certificate) {
	if leaf == nil {
		return
	}
	g.metrics.CertExpiry("listener", name, leaf)
	if msg := certDateProblem(leaf, time.Now()); msg != "" {
		g.logger.Warn("listener certificate "+msg+"; partners' TLS handshakes will fail", "listener", name, "subject", leaf.Subject.String())
	}
}

// setL4Routes gives every tcp listener c's routes and access log.
func (g *Gateway) setL4Routes(c *chain) {
	for _, srv := range g.l4 {
		if err := srv.SetRoutes(c.l4Tables[srv.Name()], c.accessLog); err != nil {
			// Validation makes this unreachable; keep the old routes.
			g.logger.Error("tcp listener routes not updated", "listener", srv.Name(), "error", err.Error())
		}
	}
}

// serveL4 starts the tcp listeners and their certificate watches.
func (g *Gateway) serveL4(ctx context.Context, errs chan<- error) {
	for _, srv := range g.l4 {
		go func() { errs <- srv.Serve() }()
		if certs := srv.Certs(); certs != nil {
			go certs.Watch(ctx, g.logger, func(leaf *x509.Certificate, err error) {
				g.metrics.CertReload(srv.Name(), err)
				if err == nil {
					g.l4CertLoaded(srv.Name(), leaf)
				}
			})
		}
		g.logger.Info("listening", "listener", srv.Name(), "addr", srv.Addr().String(), "type", "tcp", "tls", map[bool]string{true: "terminate", false: "passthrough"}[srv.Terminates()])
	}
}

// reloadL4Certs re-reads terminate listeners' certificates, as reload
// does for http listeners.
func (g *Gateway) reloadL4Certs() []error {
	var errs []error
	for _, srv := range g.l4 {
		certs := srv.Certs()
		if certs == nil {
			continue
		}
		err := certs.Reload()
		g.metrics.CertReload(srv.Name(), err)
		if err != nil {
			errs = append(errs, fmt.Errorf("listener %q: %w", srv.Name(), err))
			continue
		}
		g.l4CertLoaded(srv.Name(), certs.Leaf())
	}
	return errs
}

// checkL4Listener is Check for a tcp listener: a terminate listener's
// certificate and key are loaded and their dates checked.
func checkL4Listener(lc config.Listener) error {
	if lc.TLS.Mode != config.ModeTerminate {
		return nil
	}
	certs, err := listener.LoadCerts(lc.TLS.Cert, lc.TLS.Key)
	if err != nil {
		return fmt.Errorf("listener %q: %w", lc.Name, err)
	}
	if msg := certDateProblem(certs.Leaf(), time.Now()); msg != "" {
		return fmt.Errorf("listener %q: certificate %q %s; partners' TLS handshakes would fail", lc.Name, lc.TLS.Cert, msg)
	}
	return nil
}
