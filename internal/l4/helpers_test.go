package l4

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

var loopback = net.IPv4(127, 0, 0, 1)

// backend is a real TLS server on loopback with its own self-signed
// certificate. Each connection reads until the client half-closes, then
// answers "backend=ID client=ADDR sni=NAME got=DATA" and closes: so an
// answer proves the half-close reached the backend, and says who served.
type backend struct {
	id   string
	cert *certs.Cert
	ln   net.Listener
	wg   sync.WaitGroup
	once sync.Once
}

// startBackend serves names (and 127.0.0.1). With proxy, it expects a
// PROXY protocol header before TLS and reports the address it carries.
func startBackend(t *testing.T, id string, proxy bool, names ...string) *backend {
	t.Helper()
	b := &backend{id: id, cert: certs.SelfSigned(t, certs.Options{CommonName: id, DNSNames: names, IPs: []net.IP{loopback}})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.ln = ln
	b.wg.Go(func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			b.wg.Go(func() { b.serve(raw, proxy) })
		}
	})
	t.Cleanup(b.stop)
	return b
}

func (b *backend) serve(raw net.Conn, proxy bool) {
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	var c net.Conn = raw
	if proxy {
		// go-proxyproto parses the header; RemoteAddr is then the
		// client's address it carries.
		c = proxyproto.NewConn(raw, proxyproto.SetReadHeaderTimeout(5*time.Second))
	}
	tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{b.cert.TLS}})
	if err := tc.Handshake(); err != nil {
		return
	}
	got, err := io.ReadAll(tc)
	if err != nil {
		return
	}
	fmt.Fprintf(tc, "backend=%s client=%s sni=%s got=%s", b.id, c.RemoteAddr(), tc.ConnectionState().ServerName, got)
	tc.Close()
}

func (b *backend) addr() string { return b.ln.Addr().String() }

// stop closes the listener, so new connections are refused.
func (b *backend) stop() {
	b.once.Do(func() {
		b.ln.Close()
		b.wg.Wait()
	})
}

// pool is an upstream pool of tcp:// targets at addrs.
func pool(t *testing.T, name string, passive upstream.PassiveOptions, addrs ...string) *upstream.Pool {
	t.Helper()
	targets := make([]string, len(addrs))
	for i, a := range addrs {
		targets[i] = "tcp://" + a
	}
	p, err := upstream.NewPool(upstream.PoolOptions{Name: name, Targets: targets, Passive: passive, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// gateway is a running l4 Server with its access log and metrics.
type gateway struct {
	srv     *Server
	log     *testutil.SyncBuffer
	metrics *observe.Metrics
}

// startServer runs a Server with routes until the test ends; certs set
// selects terminate mode.
func startServer(t *testing.T, o Options, routes map[string]*Route) *gateway {
	t.Helper()
	g := &gateway{log: &testutil.SyncBuffer{}, metrics: observe.NewMetrics("test")}
	o.Name = "nlb"
	o.Addr = "127.0.0.1:0"
	o.Metrics = g.metrics.L4().Listener("nlb")
	o.Logger = slog.New(slog.DiscardHandler)
	srv, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	g.srv = srv
	g.setRoutes(t, routes)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return g
}

func (g *gateway) setRoutes(t *testing.T, routes map[string]*Route) {
	t.Helper()
	table, err := NewTable(routes)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.srv.SetRoutes(table, slog.New(slog.NewJSONHandler(g.log, nil))); err != nil {
		t.Fatal(err)
	}
}

func (g *gateway) addr() string { return g.srv.Addr().String() }

// entries returns the access-log lines written so far.
func (g *gateway) entries(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(g.log.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// waitEntry waits for the n-th access-log line (1-based) and returns it.
func (g *gateway) waitEntry(t *testing.T, n int) map[string]any {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("access log line %d", n), func() bool { return len(g.entries(t)) >= n })
	return g.entries(t)[n-1]
}

// waitEntryFor waits for the access-log line of the connection from
// client (ip:port) and returns it.
func (g *gateway) waitEntryFor(t *testing.T, client string) map[string]any {
	t.Helper()
	var found map[string]any
	testutil.WaitFor(t, "the access log line of "+client, func() bool {
		for _, e := range g.entries(t) {
			if e["client"] == client {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// counter returns the value of the metric name with labels, or 0.
func (g *gateway) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	return testutil.MetricValue(t, g.metrics.Registry(), name, labels)
}

// session is a client's TLS connection through the gateway.
type session struct {
	raw net.Conn
	tls *tls.Conn
}

// dialTLS connects to addr and completes a TLS handshake for serverName
// ("127.0.0.1" sends no SNI) trusting only roots.
func dialTLS(t *testing.T, addr, serverName string, roots *x509.CertPool) (*session, error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(raw, &tls.Config{ServerName: serverName, RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	t.Cleanup(func() { raw.Close() })
	return &session{raw: raw, tls: tc}, nil
}

// exchange sends msg, half-closes at the TCP level (no close_notify, so
// only the FIN can tell the backend the client is done) and reads the
// answer to the end.
func (s *session) exchange(msg string) (string, error) {
	if _, err := io.WriteString(s.tls, msg); err != nil {
		return "", err
	}
	if err := s.raw.(*net.TCPConn).CloseWrite(); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	_, err := io.Copy(&buf, s.tls)
	return buf.String(), err
}

// roundTrip dials, handshakes and exchanges msg, failing the test on error.
func roundTrip(t *testing.T, addr, serverName string, roots *x509.CertPool, msg string) (answer string, peer *x509.Certificate) {
	t.Helper()
	s, err := dialTLS(t, addr, serverName, roots)
	if err != nil {
		t.Fatalf("TLS handshake through the gateway for %q: %v", serverName, err)
	}
	answer, err = s.exchange(msg)
	if err != nil {
		t.Fatalf("exchange through the gateway for %q: %v", serverName, err)
	}
	return answer, s.tls.ConnectionState().PeerCertificates[0]
}

// poolOf trusts every backend's certificate.
func poolOf(bs ...*backend) *x509.CertPool {
	p := x509.NewCertPool()
	for _, b := range bs {
		p.AddCert(b.cert.Cert)
	}
	return p
}
