package proxy_test

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/proxy"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/dnstest"
	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

// TestRoundRobinStartsAtFirstTarget guards the assumption the retry tests
// rest on: a fresh round-robin pool hands out its first target first, so
// the first request of a fresh [dead, live] pool hits the dead one.
func TestRoundRobinStartsAtFirstTarget(t *testing.T) {
	t.Parallel()
	p, err := upstream.NewPool(upstream.PoolOptions{Name: "u", Targets: []string{"https://127.0.0.1:1", "https://127.0.0.1:2"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Select(nil), p.Targets()[0]; got != want {
		t.Fatalf("first Select of a fresh pool: got %v, want %v", got, want)
	}
}

// TestRetryOnConnectFailure sends one request to a fresh pool whose first
// target refuses connections. Idempotent requests without a body, or with
// a small one of known length, go on to the live target; anything else
// gets the 502. Either way the dead
// target's failure is reported (max_fails 1 ejects it at once).
func TestRetryOnConnectFailure(t *testing.T) {
	t.Parallel()
	cert := newCert(t)
	tests := []struct {
		desc    string
		method  string
		body    string
		chunked bool // no Content-Length
		retry   bool
	}{
		{desc: "GET", method: "GET", retry: true},
		{desc: "HEAD", method: "HEAD", retry: true},
		{desc: "OPTIONS", method: "OPTIONS", retry: true},
		{desc: "PUT without body", method: "PUT", retry: true},
		{desc: "DELETE without body", method: "DELETE", retry: true},
		{desc: "POST with body", method: "POST", body: `{"order":1}`},
		{desc: "POST without body", method: "POST"},
		{desc: "PATCH with body", method: "PATCH", body: `{"x":1}`},
		// A small body of known length is kept as it is sent, so it can be
		// sent again; a large one, or one of unknown length, is not.
		{desc: "PUT with body", method: "PUT", body: `{"x":1}`, retry: true},
		{desc: "DELETE with body", method: "DELETE", body: `{"x":1}`, retry: true},
		{desc: "PUT with a body over 64 KiB", method: "PUT", body: strings.Repeat("x", 65<<10)},
		{desc: "PUT with a chunked body", method: "PUT", body: `{"x":1}`, chunked: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			live := newBackend(t, cert, false, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				io.WriteString(w, "live")
			})
			e := newEnv(t, envOptions{targets: []string{deadTarget(t), live.srv.URL}, maxFails: 1, pin: cert})
			dead := e.pool.Targets()[0]

			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			if tc.chunked {
				body = io.MultiReader(body) // a reader of unknown length
			}
			req, err := http.NewRequest(tc.method, e.front.URL+"/orders/1", body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := e.front.Client().Do(req)
			if err != nil {
				t.Fatalf("%s: %v", tc.method, err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()

			wantStatus, wantHits := http.StatusBadGateway, int64(0)
			if tc.retry {
				wantStatus, wantHits = http.StatusOK, 1
			}
			if resp.StatusCode != wantStatus {
				t.Errorf("%s with the first target dead: got %d %s, want %d", tc.method, resp.StatusCode, got, wantStatus)
			}
			if !tc.retry {
				if want := `{"message": "Internal server error"}`; string(got) != want {
					t.Errorf("%s with the first target dead: got body %s, want %s", tc.method, got, want)
				}
			}
			if n := live.hits.Load(); n != wantHits {
				t.Errorf("%s: live target got %d requests, want %d", tc.method, n, wantHits)
			}
			if !dead.Ejected() {
				t.Errorf("%s: dead target not ejected; its connect failure was not reported", tc.method)
			}
			if n := e.upstreamErrors("connect"); n != 1 {
				t.Errorf("drawbridge_upstream_errors_total{reason=connect}: got %v, want 1", n)
			}
			for _, tg := range e.pool.Targets() {
				if n := tg.InFlight(); n != 0 {
					t.Errorf("%s: target %s has %d in flight after the request, want 0", tc.method, tg, n)
				}
			}
		})
	}
}

// TestRetryOnEveryConnectFailure: whatever stops the connection before
// the request is written, a GET goes on to the live target and the failing
// one is reported (max_fails 1 ejects it at once).
func TestRetryOnEveryConnectFailure(t *testing.T) {
	t.Parallel()
	cert := newCert(t)
	tests := []struct {
		desc     string
		target   func(t *testing.T) string
		resolver bool
		metric   string
	}{
		{desc: "connection refused", target: deadTarget, metric: "connect"},
		{
			desc:     "host name does not resolve",
			target:   func(t *testing.T) string { return "https://missing.test:443" },
			resolver: true,
			metric:   "connect",
		},
		{desc: "TLS handshake times out", target: silentTarget, metric: "handshake"},
		{desc: "certificate refused", target: func(t *testing.T) string {
			return newBackend(t, newCert(t), false, func(w http.ResponseWriter, r *http.Request) {
				t.Errorf("rogue backend got a request")
			}).srv.URL
		}, metric: "tls"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			live := newBackend(t, cert, false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "live") })
			o := envOptions{
				targets:     []string{tc.target(t), live.srv.URL},
				maxFails:    1,
				dialTimeout: 200 * time.Millisecond,
				pin:         cert,
				opts:        proxy.Options{Timeout: 5 * time.Second},
			}
			if tc.resolver {
				o.resolver = dnstest.Start(t, "backend.test.").Addr()
			}
			e := newEnv(t, o)
			resp, err := e.front.Client().Get(e.front.URL + "/orders/1")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(got) != "live" {
				t.Errorf("GET with the first target failing (%s): got %d %s, want 200 live", tc.desc, resp.StatusCode, got)
			}
			if !e.pool.Targets()[0].Ejected() {
				t.Errorf("GET: failing target not ejected; its connect failure was not reported")
			}
			if n := e.upstreamErrors(tc.metric); n != 1 {
				t.Errorf("drawbridge_upstream_errors_total{reason=%q}: got %v, want 1", tc.metric, n)
			}
			if n := e.upstreamErrors("exchange"); n != 0 {
				t.Errorf("drawbridge_upstream_errors_total{reason=exchange}: got %v, want 0", n)
			}
		})
	}
}

// TestEjectAfterMaxFails: failures count up to max_fails, then the dead
// target is skipped without another connect attempt.
func TestEjectAfterMaxFails(t *testing.T) {
	t.Parallel()
	cert := newCert(t)
	live := newBackend(t, cert, true, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "live") })
	e := newEnv(t, envOptions{targets: []string{deadTarget(t), live.srv.URL}, maxFails: 2, pin: cert})
	dead := e.pool.Targets()[0]

	// Each request selects twice (dead, then live), so with round robin
	// every request starts at the dead target until it is ejected.
	wantEjected := []bool{false, true, true}
	wantConnectErrors := []float64{1, 2, 2}
	for i := range wantEjected {
		resp, err := e.front.Client().Get(e.front.URL + "/x")
		if err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(got) != "live" {
			t.Errorf("GET %d: got %d %q, want 200 live", i, resp.StatusCode, got)
		}
		if dead.Ejected() != wantEjected[i] {
			t.Errorf("after GET %d: dead target Ejected() = %v, want %v", i, dead.Ejected(), wantEjected[i])
		}
		if n := e.upstreamErrors("connect"); n != wantConnectErrors[i] {
			t.Errorf("after GET %d: connect errors %v, want %v", i, n, wantConnectErrors[i])
		}
	}
	if e.pool.Targets()[1].Ejected() {
		t.Errorf("live target ejected")
	}
}

// TestExchangeFailureNotRetried: once the request may have reached a
// backend (the connection was made), it is not sent again, and the target
// is not reported as failing to connect.
func TestExchangeFailureNotRetried(t *testing.T) {
	t.Parallel()
	cert := newCert(t)
	hangUp := newBackend(t, cert, false, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	other := newBackend(t, cert, false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "other") })
	e := newEnv(t, envOptions{targets: []string{hangUp.srv.URL, other.srv.URL}, maxFails: 1, pin: cert})

	resp, err := e.front.Client().Get(e.front.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || string(got) != `{"message": "Internal server error"}` {
		t.Errorf("GET with the backend hanging up: got %d %s, want 502 with the AWS body", resp.StatusCode, got)
	}
	if hangUp.hits.Load() != 1 || other.hits.Load() != 0 {
		t.Errorf("GET: backends got %d and %d requests, want 1 and 0 (no retry)", hangUp.hits.Load(), other.hits.Load())
	}
	if e.pool.Targets()[0].Ejected() {
		t.Errorf("a target that accepted the connection was ejected")
	}
	if n := e.upstreamErrors("exchange"); n != 1 {
		t.Errorf("drawbridge_upstream_errors_total{reason=exchange}: got %v, want 1", n)
	}
	waitFor(t, "access log line", func() bool { return strings.Contains(e.logs.String(), `"msg":"request"`) })
	if !strings.Contains(e.logs.String(), "upstream exchange failed") {
		t.Errorf("logs do not name the failure:\n%s", e.logs)
	}
}

// TestLeastRequestsInFlight: a streamed response counts as in flight until
// its body is done, and least_requests steers around it meanwhile.
func TestLeastRequestsInFlight(t *testing.T) {
	t.Parallel()
	cert := newCert(t)
	release := make(chan struct{})
	handler := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			if r.URL.Path != "/stream" {
				io.WriteString(w, name)
				return
			}
			io.WriteString(w, "first\n")
			http.NewResponseController(w).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "second\n")
		}
	}
	a := newBackend(t, cert, true, handler("a"))
	b := newBackend(t, cert, false, handler("b"))
	e := newEnv(t, envOptions{targets: []string{a.srv.URL, b.srv.URL}, balance: upstream.BalanceLeastRequests, pin: cert})
	byName := map[string]*upstream.Target{"a": e.pool.Targets()[0], "b": e.pool.Targets()[1]}

	resp, err := e.front.Client().Get(e.front.URL + "/stream")
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	streaming := resp.Header.Get("X-Backend")
	idle := map[string]string{"a": "b", "b": "a"}[streaming]
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "first\n" {
		close(release)
		t.Fatalf("first streamed line: got %q, %v", line, err)
	}
	if n := byName[streaming].InFlight(); n != 1 {
		t.Errorf("target %s while its response streams: InFlight() = %d, want 1", streaming, n)
	}
	for i := range 3 {
		r, err := e.front.Client().Get(e.front.URL + "/quick")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if got := r.Header.Get("X-Backend"); got != idle {
			t.Errorf("request %d while %s streams: went to %q, want the idle target %s", i, streaming, got, idle)
		}
	}
	close(release)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second\n" {
		t.Errorf("rest of the stream: got %q, %v", rest, err)
	}
	// The partner sees the end of the body only after the proxy stage has
	// returned, and the stage releases the target before that.
	for name, tg := range byName {
		if n := tg.InFlight(); n != 0 {
			t.Errorf("target %s after the stream completed: InFlight() = %d, want 0", name, n)
		}
	}
}
