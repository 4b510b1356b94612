package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/acme"
	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/listener"
)

// acmeListener is what a listener has beside its HTTPS socket: the ACME
// manager of its tls.acme domains and the plain-HTTP socket of its
// http_addr. Either may be nil.
type acmeListener struct {
	name    string
	manager *acme.Manager
	plain   *listener.PlainHTTP
	// server is the HTTPS listener, set by New as soon as it exists:
	// the redirect asks it which host names it has certificates for.
	server *listener.Server
}

// newACMEListener builds lc's ACME manager and plain-HTTP listener, and
// gives the manager to opts so that the HTTPS listener serves its
// certificates. Nothing is bound or contacted yet.
func (g *Gateway) newACMEListener(lc config.Listener, opts *listener.Options) (*acmeListener, error) {
	al := &acmeListener{name: lc.Name}
	httpsPort := portOf(lc.Addr)
	if a := lc.TLS.ACME; a != nil {
		host, _, _ := net.SplitHostPort(lc.Addr)
		httpHost, _, _ := net.SplitHostPort(lc.HTTPAddr)
		name := lc.Name
		disableALPN, why := tlsALPNOff(a.CA, httpsPort, lc.HTTPAddr != "")
		switch {
		case disableALPN && why != "":
			g.logger.Info("ACME TLS-ALPN-01 challenge disabled: "+why+"; HTTP-01 on http_addr validates the names", "listener", name, "addr", lc.Addr)
		case why != "":
			g.logger.Warn("ACME: "+why, "listener", name, "addr", lc.Addr)
		}
		m, err := acme.New(acme.Options{
			Name:           name,
			Domains:        a.Domains,
			Email:          a.Email,
			CA:             a.CA,
			CARootFile:     a.CARoot,
			Storage:        a.Storage,
			ListenHost:     host,
			HTTPListenHost: httpHost,
			TLSPort:        httpsPort,
			HTTPPort:       portOf(lc.HTTPAddr),
			DisableTLSALPN: disableALPN,
			Logger:         g.logger,
			OnCertificate: func(leaf *x509.Certificate) {
				g.metrics.CertExpiry("acme", name+"/"+firstName(leaf), leaf)
				if msg := certDateProblem(leaf, time.Now()); msg != "" {
					g.logger.Warn("ACME certificate "+msg, "listener", name, "names", leaf.DNSNames)
				}
			},
			OnResult: func(renewal bool, err error) { g.metrics.ACMEOrder(name, renewal, err) },
		})
		if err != nil {
			return nil, err
		}
		al.manager = m
		opts.Managed = m
	}
	if lc.HTTPAddr != "" {
		po := listener.PlainHTTPOptions{Name: lc.Name, Addr: lc.HTTPAddr, HTTPSPort: httpsPort, Logger: g.logger,
			ServesName: func(host string) bool { return al.server != nil && al.server.ServesName(host) }}
		if al.manager != nil {
			po.Challenge = al.manager.HTTPHandler
		}
		al.plain = listener.NewPlainHTTP(po)
	}
	return al, nil
}

// tlsALPNOff decides whether a listener on httpsPort answers TLS-ALPN-01
// challenges of the CA ca (empty: Let's Encrypt), and says why when the
// answer is worth a log line. A CA can only dial a fixed port: with port
// 0 (tests) only HTTP-01 can work. Let's Encrypt dials 443 only, so on
// another port each TLS-ALPN-01 attempt would fail and count against its
// rate limits, unless 443 is forwarded to the listener; with HTTP-01
// available it is turned off, otherwise it stays on for the forwarded
// case, with a warning.
func tlsALPNOff(ca string, httpsPort int, hasHTTP bool) (off bool, why string) {
	if httpsPort == 0 {
		return true, ""
	}
	if (ca != "" && ca != acme.LetsEncrypt && ca != acme.LetsEncryptStaging) || httpsPort == 443 {
		return false, ""
	}
	if hasHTTP {
		return true, fmt.Sprintf("Let's Encrypt validates TLS-ALPN-01 on port 443 only, and this listener is on port %d", httpsPort)
	}
	return false, fmt.Sprintf("Let's Encrypt validates TLS-ALPN-01 on port 443 only, and this listener is on port %d with no http_addr for HTTP-01: certificates can be issued only if port 443 is forwarded here", httpsPort)
}

// portOf is the port of a validated host:port, or 0.
func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

func firstName(leaf *x509.Certificate) string {
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames[0]
	}
	return leaf.Subject.CommonName
}

// listen binds the plain-HTTP socket, if any.
func (al *acmeListener) listen() error {
	if al.plain == nil {
		return nil
	}
	return al.plain.Listen()
}

// start serves plain HTTP and starts the ACME manager: stored certificates
// serve at once, missing ones are ordered in the background. Serve errors
// go to errs.
func (g *Gateway) startACME(errs chan<- error) {
	for _, al := range g.acme {
		if al.plain != nil {
			go func() {
				if err := al.plain.Serve(); err != nil {
					errs <- err
				}
			}()
			g.logger.Info("listening for plain HTTP (ACME HTTP-01 challenges, redirects to HTTPS)", "listener", al.name, "addr", al.plain.Addr().String())
		}
		if al.manager == nil {
			continue
		}
		if err := al.manager.Start(); err != nil {
			g.logger.Error("starting ACME certificate management", "listener", al.name, "error", err.Error())
		}
		for _, c := range al.manager.Certificates() {
			if c.Serial == "" {
				g.logger.Warn("no ACME certificate yet; handshakes for this name fail with an alert until the CA issues one (ordering in the background)",
					"listener", al.name, "domain", c.Domain)
			}
		}
	}
}

// stopACME stops plain HTTP and ACME maintenance.
func (g *Gateway) stopACME(ctx context.Context) {
	for _, al := range g.acme {
		if al.plain != nil {
			if err := al.plain.Shutdown(ctx); err != nil {
				g.logger.Warn("plain-HTTP listener did not stop in time", "listener", al.name, "error", err.Error())
			}
		}
		if al.manager != nil {
			al.manager.Stop()
		}
	}
}

// certificateStatus is one entry of GET /v1/certificates.
type certificateStatus struct {
	Listener string `json:"listener"`
	acme.Certificate
}

// certificates lists every certificate the gateway serves: each HTTPS
// listener's file certificate, if any, and one entry per ACME domain; each
// terminate-mode tcp listener's certificate; the admin API's, when it is
// served over TLS (listener "admin").
func (g *Gateway) certificates() []certificateStatus {
	out := []certificateStatus{}
	fileCert := func(listener string, certs *listener.Certs) {
		if certs == nil {
			return
		}
		if leaf := certs.Leaf(); leaf != nil {
			out = append(out, certificateStatus{Listener: listener, Certificate: acme.Describe("file", leaf)})
		}
	}
	for _, al := range g.acme { // one per HTTPS listener
		if al.server == nil {
			continue
		}
		fileCert(al.server.Name(), al.server.Certs())
		if al.manager == nil {
			continue
		}
		for _, c := range al.manager.Certificates() {
			out = append(out, certificateStatus{Listener: al.server.Name(), Certificate: c})
		}
	}
	for _, srv := range g.l4 {
		fileCert(srv.Name(), srv.Certs()) // nil in passthrough mode
	}
	fileCert("admin", g.adminCerts)
	return out
}

// RenewACME renews every ACME certificate now, even those not due: for
// tests and for an operator who must replace certificates at once.
func (g *Gateway) RenewACME(ctx context.Context) error {
	var errs []error
	for _, al := range g.acme {
		if al.manager != nil {
			errs = append(errs, al.manager.Renew(ctx))
		}
	}
	return errors.Join(errs...)
}

// sameACME compares two listeners' ACME settings, not the lines they were
// read from.
func sameACME(a, b *config.ACME) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Line, y.Line = 0, 0
	return reflect.DeepEqual(x, y)
}

// checkOnlyManaged stands in for an ACME manager when validating a config:
// validate must not create storage or contact the CA.
type checkOnlyManaged struct{}

func (checkOnlyManaged) Manages(string) bool { return false }

func (checkOnlyManaged) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return nil, errors.New("validation only")
}

// checkACME checks what of lc's tls.acme can be checked offline, without
// writing anything.
func checkACME(lc config.Listener) error {
	a := lc.TLS.ACME
	if a == nil {
		return nil
	}
	var msgs []string
	if a.CARoot != "" {
		if _, err := acme.LoadRoots(a.CARoot); err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if err := acme.CheckStorage(a.Storage); err != nil {
		msgs = append(msgs, err.Error())
	}
	if len(msgs) > 0 {
		return fmt.Errorf("listener %q: tls.acme: %s", lc.Name, strings.Join(msgs, "; "))
	}
	return nil
}
