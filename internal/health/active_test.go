package health

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// newCert generates a self-signed certificate for the loopback addresses and
// a pool that trusts it.
func newCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "health test backend"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("creating certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// backend is a TLS server whose health answer the test can switch.
type backend struct {
	srv       *httptest.Server
	status    atomic.Int32
	requests  atomic.Int64
	mu        sync.Mutex
	lastURI   string
	lastHost  string
	lastProto string
}

// startBackend serves on addr ("" for any loopback port) with cert.
func startBackend(t *testing.T, cert tls.Certificate, addr string) *backend {
	t.Helper()
	return startBackendH2(t, cert, addr, false)
}

// startBackendH2 is startBackend that also offers HTTP/2 when h2 is set.
func startBackendH2(t *testing.T, cert tls.Certificate, addr string, h2 bool) *backend {
	t.Helper()
	b := &backend{}
	b.status.Store(http.StatusOK)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.requests.Add(1)
		b.mu.Lock()
		b.lastURI = r.RequestURI
		b.lastHost = r.Host
		b.lastProto = r.Proto
		b.mu.Unlock()
		status := int(b.status.Load())
		if status >= 300 && status < 400 {
			// A followed redirect would land on a 500.
			w.Header().Set("Location", "/broken")
		}
		if r.URL.Path == "/broken" {
			status = http.StatusInternalServerError
		}
		w.WriteHeader(status)
	}))
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listening again on %s: %v", addr, err)
		}
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.EnableHTTP2 = h2
	// Handshakes refused by untrusting clients are expected here.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	b.srv = srv
	return b
}

func (b *backend) uri() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastURI
}

// host returns the Host and protocol of the last request.
func (b *backend) host() (host, proto string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastHost, b.lastProto
}

func clientFor(t *testing.T, roots *x509.CertPool) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// recorder is a StatusSetter that keeps every verdict.
type recorder struct {
	mu      sync.Mutex
	history []bool
}

func (r *recorder) SetHealthy(up bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.history = append(r.history, up)
}

// up reports the latest verdict; a target starts healthy.
func (r *recorder) up() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.history) == 0 || r.history[len(r.history)-1]
}

func (r *recorder) verdicts() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.history)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", s, err)
	}
	return u
}

// runAsync starts Run and returns a function that cancels it and waits for
// it to return.
func runAsync(t *testing.T, o Options, client *http.Client, checks []Check) (stop func()) {
	t.Helper()
	stop, _ = runAsync2(t, o, client, checks)
	return stop
}

// runAsync2 is runAsync that also reports whether Run is still running.
func runAsync2(t *testing.T, o Options, client *http.Client, checks []Check) (stop func(), running func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, o, client, checks)
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Run did not return after its context was cancelled")
		}
	}
	t.Cleanup(stop)
	running = func() bool {
		select {
		case <-done:
			return false
		default:
			return true
		}
	}
	return stop, running
}

func TestRunDownAndUp(t *testing.T) {
	cert, roots := newCert(t)
	b := startBackend(t, cert, "")
	addr := b.srv.Listener.Addr().String()
	rec := &recorder{}
	opts := Options{
		Path: "/healthz?deep=1", Interval: 20 * time.Millisecond, Timeout: time.Second,
		HealthyThreshold: 2, UnhealthyThreshold: 2, Upstream: "onprem",
		Logger: slog.New(slog.DiscardHandler),
	}
	runAsync(t, opts, clientFor(t, roots), []Check{{URL: mustURL(t, b.srv.URL), Target: rec}})

	waitFor(t, "a first check", func() bool { return b.requests.Load() > 0 })
	if got, want := b.uri(), "/healthz?deep=1"; got != want {
		t.Errorf("request URI of the check: got %q, want %q", got, want)
	}
	if !rec.up() {
		t.Fatalf("verdict while backend answers 200: got down, want up")
	}

	b.status.Store(http.StatusInternalServerError)
	waitFor(t, "down after 500s", func() bool { return !rec.up() })
	b.status.Store(http.StatusOK)
	waitFor(t, "up after 200s", rec.up)

	b.srv.Close()
	waitFor(t, "down with the server gone", func() bool { return !rec.up() })
	startBackend(t, cert, addr)
	waitFor(t, "up with a new server on the same port", rec.up)

	// Verdicts only change at the thresholds: no repeated calls between.
	want := []bool{true, false, true, false, true}
	if got := rec.verdicts(); !slices.Equal(got, want) {
		t.Errorf("SetHealthy calls: got %v, want %v", got, want)
	}
}

func TestRunThresholds(t *testing.T) {
	script := []int{200, 500, 200, 500, 500, 200, 500, 200, 200}
	want := []bool{true, true, true, true, false, false, false, false, true}

	cert, roots := newCert(t)
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		status := http.StatusOK
		if i < len(script) {
			status = script[i]
		}
		w.WriteHeader(status)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	rec := &recorder{}
	states := make(chan bool, len(script)+16)
	opts := Options{
		Path: "/healthz", Interval: 20 * time.Millisecond, HealthyThreshold: 2, UnhealthyThreshold: 2,
		Logger: slog.New(slog.DiscardHandler),
		OnResult: func(_ string, up bool, _ time.Duration, err error) {
			if up != (err == nil) {
				t.Errorf("OnResult(up=%v, err=%v): err must be nil exactly when up", up, err)
			}
			select {
			case states <- rec.up():
			default:
			}
		},
	}
	runAsync(t, opts, clientFor(t, roots), []Check{{URL: mustURL(t, srv.URL), Target: rec}})
	var got []bool
	for range script {
		select {
		case s := <-states:
			got = append(got, s)
		case <-time.After(5 * time.Second):
			t.Fatalf("timed out after %d results", len(got))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("state after each check of %v: got %v, want %v", script, got, want)
	}
}

func TestRunStatusCodes(t *testing.T) {
	cert, roots := newCert(t)
	tests := []struct {
		desc   string
		status int
		wantUp bool
	}{
		{desc: "200 is up", status: http.StatusOK, wantUp: true},
		{desc: "204 is up", status: http.StatusNoContent, wantUp: true},
		{desc: "302 is up and not followed", status: http.StatusFound, wantUp: true},
		{desc: "404 is down", status: http.StatusNotFound},
		{desc: "500 is down", status: http.StatusInternalServerError},
		{desc: "503 is down", status: http.StatusServiceUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b := startBackend(t, cert, "")
			b.status.Store(int32(tc.status))
			type result struct {
				up  bool
				err error
			}
			results := make(chan result, 1)
			opts := Options{
				Interval: time.Hour, UnhealthyThreshold: 1, Logger: slog.New(slog.DiscardHandler),
				OnResult: func(_ string, up bool, _ time.Duration, err error) {
					select {
					case results <- result{up, err}:
					default:
					}
				},
			}
			rec := &recorder{}
			stop := runAsync(t, opts, clientFor(t, roots), []Check{{URL: mustURL(t, b.srv.URL), Target: rec}})
			var r result
			select {
			case r = <-results:
			case <-time.After(5 * time.Second):
				t.Fatalf("no check result")
			}
			stop()
			if r.up != tc.wantUp || rec.up() != tc.wantUp {
				t.Errorf("check of a %d answer: got up=%v (verdict %v, err %v), want %v", tc.status, r.up, rec.up(), r.err, tc.wantUp)
			}
			if !tc.wantUp && !errors.Is(r.err, errStatus) {
				t.Errorf("check of a %d answer: got err %v, want one wrapping errStatus", tc.status, r.err)
			}
		})
	}
}

func TestRunUntrustedCertificate(t *testing.T) {
	cert, _ := newCert(t)
	_, otherRoots := newCert(t)
	b := startBackend(t, cert, "")
	errs := make(chan error, 1)
	opts := Options{
		Interval: time.Hour, UnhealthyThreshold: 1, Logger: slog.New(slog.DiscardHandler),
		OnResult: func(_ string, _ bool, _ time.Duration, err error) {
			select {
			case errs <- err:
			default:
			}
		},
	}
	rec := &recorder{}
	runAsync(t, opts, clientFor(t, otherRoots), []Check{{URL: mustURL(t, b.srv.URL), Target: rec}})
	var err error
	select {
	case err = <-errs:
	case <-time.After(5 * time.Second):
		t.Fatalf("no check result")
	}
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Errorf("check of a server with an untrusted certificate: got err %v, want a *tls.CertificateVerificationError", err)
	}
	waitFor(t, "down verdict", func() bool { return !rec.up() })
	if got := b.requests.Load(); got != 0 {
		t.Errorf("requests reaching the untrusted server: got %d, want 0", got)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	cert, roots := newCert(t)
	b := startBackend(t, cert, "")
	recs := []*recorder{{}, {}, {}}
	var checks []Check
	for i, r := range recs {
		checks = append(checks, Check{URL: mustURL(t, b.srv.URL), Target: r, Name: "t" + string(rune('0'+i))})
	}
	opts := Options{Interval: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	stop, running := runAsync2(t, opts, clientFor(t, roots), checks)
	waitFor(t, "several checks", func() bool { return b.requests.Load() >= 6 })
	if !running() {
		t.Fatalf("Run returned before its context was cancelled")
	}
	stop() // fails the test if Run has not returned, goroutines included
	// A request sent just before cancel may still reach the handler.
	time.Sleep(50 * time.Millisecond)
	before := b.requests.Load()
	time.Sleep(100 * time.Millisecond) // ten intervals
	if after := b.requests.Load(); after != before {
		t.Errorf("checks after Run returned: got %d, want 0", after-before)
	}
}

func TestRunInvalidInput(t *testing.T) {
	cert, roots := newCert(t)
	b := startBackend(t, cert, "")
	tests := []struct {
		desc   string
		opts   Options
		checks []Check
	}{
		{desc: "relative path", opts: Options{Path: "healthz"}, checks: []Check{{URL: mustURL(t, b.srv.URL), Target: &recorder{}}}},
		{desc: "absolute URL as path", opts: Options{Path: "https://elsewhere/x"}, checks: []Check{{URL: mustURL(t, b.srv.URL), Target: &recorder{}}}},
		{desc: "negative interval", opts: Options{Interval: -time.Second}, checks: []Check{{URL: mustURL(t, b.srv.URL), Target: &recorder{}}}},
		{desc: "host with a space", opts: Options{Host: "backend internal"}, checks: []Check{{URL: mustURL(t, b.srv.URL), Target: &recorder{}}}},
		{desc: "nil URL and nil target", checks: []Check{{Target: &recorder{}}, {URL: mustURL(t, b.srv.URL)}}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			tc.opts.Logger = slog.New(slog.DiscardHandler)
			done := make(chan struct{})
			go func() {
				defer close(done)
				// A context that never ends: Run must return on its own.
				Run(context.Background(), tc.opts, clientFor(t, roots), tc.checks)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("Run(%+v) with invalid input did not return", tc.opts)
			}
		})
	}
	if got := b.requests.Load(); got != 0 {
		t.Errorf("checks sent for invalid input: got %d, want 0", got)
	}
}

func TestJoinURL(t *testing.T) {
	tests := []struct {
		desc, base, path, want string
	}{
		{desc: "host only", base: "https://10.0.0.5:443", path: "/healthz", want: "https://10.0.0.5:443/healthz"},
		{desc: "trailing slash", base: "https://h:443/", path: "/healthz", want: "https://h:443/healthz"},
		{desc: "base path", base: "https://h:443/api", path: "/ping", want: "https://h:443/api/ping"},
		{desc: "query", base: "https://h:443", path: "/ping?x=1", want: "https://h:443/ping?x=1"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			if got := joinURL(mustURL(t, tc.base), mustURL(t, tc.path)); got != tc.want {
				t.Errorf("joinURL(%q, %q): got %q, want %q", tc.base, tc.path, got, tc.want)
			}
		})
	}
}

// TestRunHost: checks carry the Host real traffic carries, so a
// virtual-host load balancer routes them alike, over HTTP/1.1 and HTTP/2.
func TestRunHost(t *testing.T) {
	cert, roots := newCert(t)
	tests := []struct {
		desc string
		host string
		h2   bool
		want string // "" = the target's host:port
	}{
		{desc: "target's host:port by default"},
		{desc: "configured name", host: "backend.internal", want: "backend.internal"},
		{desc: "configured name and port", host: "backend.internal:8443", want: "backend.internal:8443"},
		{desc: "configured name over HTTP/2", host: "backend.internal", h2: true, want: "backend.internal"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			b := startBackendH2(t, cert, "", tc.h2)
			client := clientFor(t, roots)
			client.Transport.(*http.Transport).ForceAttemptHTTP2 = tc.h2
			want := tc.want
			if want == "" {
				want = b.srv.Listener.Addr().String()
			}
			rec := &recorder{}
			stop := runAsync(t, Options{
				Host:     tc.host,
				Interval: time.Hour,
				Logger:   slog.New(slog.DiscardHandler),
			}, client, []Check{{URL: mustURL(t, b.srv.URL), Target: rec}})
			waitFor(t, "first check", func() bool { return b.requests.Load() >= 1 })
			stop()
			wantProto := "HTTP/1.1"
			if tc.h2 {
				wantProto = "HTTP/2.0"
			}
			if got, proto := b.host(); got != want || proto != wantProto {
				t.Errorf("check with Options.Host %q: backend saw Host %q over %s, want %q over %s", tc.host, got, proto, want, wantProto)
			}
			if !rec.up() {
				t.Errorf("check with Options.Host %q: target down, want up", tc.host)
			}
		})
	}
}

// knownDown is a target that reports its own state, as upstream.Target
// does, and starts down (carried over a reload while dead).
type knownDown struct{ recorder }

func (k *knownDown) Healthy() bool { return false }

// TestRunStartsFromTargetState: a target known to be down stays down
// until HealthyThreshold checks pass, instead of being declared healthy
// when checking starts.
func TestRunStartsFromTargetState(t *testing.T) {
	cert, roots := newCert(t)
	b := startBackend(t, cert, "")
	target := &knownDown{}
	opts := Options{
		Path: "/healthz", Interval: 20 * time.Millisecond, Timeout: time.Second,
		HealthyThreshold: 3, UnhealthyThreshold: 1, Upstream: "onprem",
		Logger: slog.New(slog.DiscardHandler),
	}
	runAsync(t, opts, clientFor(t, roots), []Check{{URL: mustURL(t, b.srv.URL), Target: target}})
	waitFor(t, "up after three passing checks", func() bool { return b.requests.Load() >= 3 && target.up() })
	if got := target.verdicts(); len(got) < 2 || got[0] != false {
		t.Errorf("SetHealthy calls: got %v, want a first false (the carried-over state), then true", got)
	}
}

var waitFor = testutil.WaitFor
