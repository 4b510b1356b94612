package proxy_test

import (
	"cmp"
	"crypto/tls"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/proxy"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

// newCert returns a backend certificate for backend.internal.
func newCert(t *testing.T) *certs.Cert {
	return certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}})
}

// backend is a real HTTPS server on loopback serving cert, counting the
// requests that reach it.
type backend struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newBackend(t *testing.T, cert *certs.Cert, h2 bool, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		h(w, r)
	}))
	b.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	b.srv.EnableHTTP2 = h2
	b.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	b.srv.StartTLS()
	t.Cleanup(b.srv.Close)
	return b
}

// deadTarget returns an https URL on loopback where nothing listens.
func deadTarget(t *testing.T) string {
	t.Helper()
	return "https://" + testutil.FreeAddr(t)
}

// silentTarget returns an https URL on loopback that accepts TCP
// connections and never reads or writes: a TLS handshake there never ends.
func silentTarget(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return "https://" + ln.Addr().String()
}

// env is one route's proxy stage over a real pool and verified transport,
// served behind observe.Middleware on a loopback front.
type env struct {
	t       *testing.T
	pool    *upstream.Pool
	handler *proxy.Handler
	front   *httptest.Server
	logs    *syncBuffer // proxy warnings and the access log
	metrics *observe.Metrics
}

type envOptions struct {
	targets     []string
	balance     string
	maxFails    int
	resolver    string        // DNS server for host-name targets; "" = none may be used
	dialTimeout time.Duration // defaults to 5 s
	pin         *certs.Cert   // the key the transport trusts
	opts        proxy.Options
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, logs: &syncBuffer{}, metrics: observe.NewMetrics("test")}
	logger := slog.New(slog.NewJSONHandler(e.logs, nil))
	var err error
	e.pool, err = upstream.NewPool(upstream.PoolOptions{
		Name:     "onprem",
		Targets:  o.targets,
		Balance:  o.balance,
		Passive:  upstream.PassiveOptions{MaxFails: o.maxFails, EjectFor: time.Minute},
		Resolver: o.resolver,
		Logger:   logger,
	})
	if err != nil {
		t.Fatalf("upstream.NewPool: %v", err)
	}
	tr, err := transport.New(transport.Options{
		Upstream:    "onprem",
		ServerName:  "backend.internal",
		Pins:        []string{transport.SPKIPin(o.pin.Cert)},
		DialContext: e.pool.DialContext,
		DialTimeout: cmp.Or(o.dialTimeout, 5*time.Second),
	})
	if err != nil {
		t.Fatalf("transport.New: %v", err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	po := o.opts
	po.Route, po.Pool, po.Transport, po.Logger = "r1", e.pool, tr, logger
	po.Metrics = e.metrics.Upstream("onprem")
	e.handler, err = proxy.New(po)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	e.front = httptest.NewServer(observe.Middleware(observe.MiddlewareOptions{AccessLog: logger, Metrics: e.metrics}, e.handler))
	t.Cleanup(e.front.Close)
	return e
}

// upstreamErrors is drawbridge_upstream_errors_total{upstream="onprem",reason=reason}.
func (e *env) upstreamErrors(reason string) float64 {
	e.t.Helper()
	return testutil.MetricValue(e.t, e.metrics.Registry(), "drawbridge_upstream_errors_total", map[string]string{"upstream": "onprem", "reason": reason})
}

var waitFor = testutil.WaitFor

type syncBuffer = testutil.SyncBuffer
