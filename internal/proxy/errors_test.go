package proxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/proxy"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/dnstest"
)

const internalError = `{"message": "Internal server error"}`

// TestErrorMapping: each way an exchange fails gets API Gateway's answer,
// the real reason in the logs, and its metric.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc      string
		setup     func(t *testing.T) *env
		path      string
		status    int
		body      string
		errorType string
		reason    string // in the warning and the access log
		metric    string // drawbridge_upstream_errors_total reason; "" = not checked
	}{
		{
			desc: "route timeout before the answer",
			setup: func(t *testing.T) *env {
				cert := newCert(t)
				b := newBackend(t, cert, true, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
				return newEnv(t, envOptions{targets: []string{b.srv.URL}, pin: cert, opts: proxy.Options{Timeout: 100 * time.Millisecond}})
			},
			status: 504, body: `{"message": "Endpoint request timed out"}`, errorType: "InternalServerErrorException",
			reason: "route timeout", metric: "timeout",
		},
		{
			desc: "no available target",
			setup: func(t *testing.T) *env {
				cert := newCert(t)
				b := newBackend(t, cert, false, func(w http.ResponseWriter, r *http.Request) { t.Errorf("backend reached with its target down") })
				e := newEnv(t, envOptions{targets: []string{b.srv.URL}, pin: cert})
				e.pool.Targets()[0].SetHealthy(false)
				return e
			},
			status: 503, body: internalError, errorType: "InternalServerErrorException",
			reason: "no available target", metric: "no_target",
		},
		{
			desc: "pin mismatch",
			setup: func(t *testing.T) *env {
				rogue := newCert(t)
				b := newBackend(t, rogue, true, func(w http.ResponseWriter, r *http.Request) { t.Errorf("rogue backend got a request") })
				return newEnv(t, envOptions{targets: []string{b.srv.URL}, pin: newCert(t)})
			},
			status: 502, body: internalError, errorType: "InternalServerErrorException",
			reason: "upstream tls: pin mismatch", metric: "tls",
		},
		{
			desc: "connection refused",
			setup: func(t *testing.T) *env {
				return newEnv(t, envOptions{targets: []string{deadTarget(t)}, pin: newCert(t)})
			},
			status: 502, body: internalError, errorType: "InternalServerErrorException",
			reason: "upstream connect", metric: "connect",
		},
		{
			desc: "host name does not resolve",
			setup: func(t *testing.T) *env {
				dns := dnstest.Start(t, "backend.test.")
				return newEnv(t, envOptions{targets: []string{"https://missing.test:443"}, resolver: dns.Addr(), pin: newCert(t)})
			},
			status: 502, body: internalError, errorType: "InternalServerErrorException",
			reason: "upstream connect", metric: "connect",
		},
		{
			desc: "TLS handshake times out",
			setup: func(t *testing.T) *env {
				return newEnv(t, envOptions{targets: []string{silentTarget(t)}, dialTimeout: 200 * time.Millisecond,
					pin: newCert(t), opts: proxy.Options{Timeout: 5 * time.Second}})
			},
			status: 502, body: internalError, errorType: "InternalServerErrorException",
			reason: "upstream handshake", metric: "handshake",
		},
		{
			desc: "route timeout during the TLS handshake",
			setup: func(t *testing.T) *env {
				return newEnv(t, envOptions{targets: []string{silentTarget(t)}, dialTimeout: 5 * time.Second,
					pin: newCert(t), opts: proxy.Options{Timeout: 100 * time.Millisecond}})
			},
			status: 504, body: `{"message": "Endpoint request timed out"}`, errorType: "InternalServerErrorException",
			reason: "route timeout", metric: "timeout",
		},
		{
			desc: "target does not speak TLS",
			setup: func(t *testing.T) *env {
				plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					t.Errorf("plaintext backend got a request")
				}))
				t.Cleanup(plain.Close)
				return newEnv(t, envOptions{targets: []string{strings.Replace(plain.URL, "http:", "https:", 1)}, pin: newCert(t)})
			},
			status: 502, body: internalError, errorType: "InternalServerErrorException",
			reason: "upstream handshake", metric: "handshake",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			e := tc.setup(t)
			resp, err := e.front.Client().Get(e.front.URL + "/orders/1")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || string(got) != tc.body {
				t.Errorf("GET: got %d %s, want %d %s", resp.StatusCode, got, tc.status, tc.body)
			}
			if et := resp.Header.Get("x-amzn-ErrorType"); et != tc.errorType {
				t.Errorf("GET: x-amzn-ErrorType got %q, want %q", et, tc.errorType)
			}
			if resp.Header.Get("x-amzn-RequestId") == "" {
				t.Errorf("GET: no x-amzn-RequestId on the error")
			}
			waitFor(t, "access log line", func() bool { return strings.Contains(e.logs.String(), `"msg":"request"`) })
			logs := e.logs.String()
			for _, want := range []string{
				`"msg":"upstream request failed"`,
				`"reason":"` + tc.reason,
				`"error":"` + tc.reason,
				`"route":"r1"`,
			} {
				if !strings.Contains(logs, want) {
					t.Errorf("logs lack %s:\n%s", want, logs)
				}
			}
			if n := e.upstreamErrors(tc.metric); tc.metric != "" && n != 1 {
				t.Errorf("drawbridge_upstream_errors_total{reason=%q}: got %v, want 1", tc.metric, n)
			}
			for _, tg := range e.pool.Targets() {
				if n := tg.InFlight(); n != 0 {
					t.Errorf("target %s: %d in flight after the failure, want 0", tg, n)
				}
			}
		})
	}
}

// TestTimeoutDuringBody: the route timeout covers the body too. Once the
// status is sent the partner can only see the response cut off.
func TestTimeoutDuringBody(t *testing.T) {
	t.Parallel()
	cert := newCert(t)
	b := newBackend(t, cert, false, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "start")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
	e := newEnv(t, envOptions{targets: []string{b.srv.URL}, pin: cert, opts: proxy.Options{Timeout: 200 * time.Millisecond}})
	resp, err := e.front.Client().Get(e.front.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err == nil {
		t.Errorf("GET with the backend stalling mid-body: got %d %q, read error %v; want 200 and the body cut off", resp.StatusCode, got, err)
	}
	if n := e.pool.Targets()[0].InFlight(); n != 0 {
		t.Errorf("target: %d in flight after the aborted stream, want 0", n)
	}
}

// TestClientCancel: when the partner goes away nothing is answered and
// nothing is reported as an upstream failure.
func TestClientCancel(t *testing.T) {
	t.Parallel()
	cert := newCert(t)
	entered := make(chan struct{})
	b := newBackend(t, cert, true, func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done()
	})
	e := newEnv(t, envOptions{targets: []string{b.srv.URL}, maxFails: 1, pin: cert})

	rec := &observe.Record{}
	ctx, cancel := context.WithCancel(observe.WithRecord(t.Context(), rec))
	req := httptest.NewRequestWithContext(ctx, "GET", "/orders/1", nil)
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.handler.ServeHTTP(w, req)
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("request never reached the backend")
	}
	cancel()
	<-done

	if w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Errorf("after the client went away: wrote headers %v and body %q, want nothing", w.Header(), w.Body)
	}
	if rec.Error != "client closed request" {
		t.Errorf("Record.Error: got %q, want %q", rec.Error, "client closed request")
	}
	if strings.Contains(e.logs.String(), "upstream request failed") {
		t.Errorf("client cancel logged as an upstream failure:\n%s", e.logs)
	}
	for _, reason := range []string{"timeout", "connect", "exchange", "tls"} {
		if n := e.upstreamErrors(reason); n != 0 {
			t.Errorf("drawbridge_upstream_errors_total{reason=%q} after a client cancel: got %v, want 0", reason, n)
		}
	}
	if tg := e.pool.Targets()[0]; tg.Ejected() || tg.InFlight() != 0 {
		t.Errorf("target after a client cancel: ejected %v, in flight %d; want false, 0", tg.Ejected(), tg.InFlight())
	}
}

// TestBodyLimit: bodies over MaxBodyBytes get 413; with a Content-Length
// the backend is never contacted.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	const limit = 1024
	tests := []struct {
		desc    string
		size    int
		chunked bool
		h2      bool // backend speaks HTTP/2
		status  int
	}{
		{desc: "length at the limit", size: limit, status: 200},
		{desc: "length over the limit", size: limit + 1, status: 413},
		{desc: "length far over the limit", size: 1 << 20, status: 413},
		{desc: "chunked at the limit", size: limit, chunked: true, status: 200},
		{desc: "chunked over the limit, HTTP/1.1 backend", size: 64 << 10, chunked: true, status: 413},
		{desc: "chunked over the limit, HTTP/2 backend", size: 64 << 10, chunked: true, h2: true, status: 413},
		{desc: "chunked just over the limit", size: limit + 1, chunked: true, status: 413},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			cert := newCert(t)
			b := newBackend(t, cert, tc.h2, func(w http.ResponseWriter, r *http.Request) {
				n, _ := io.Copy(io.Discard, r.Body)
				io.WriteString(w, strings.Repeat("r", int(n)%7))
			})
			e := newEnv(t, envOptions{targets: []string{b.srv.URL}, pin: cert, opts: proxy.Options{MaxBodyBytes: limit}})
			var body io.Reader = strings.NewReader(strings.Repeat("a", tc.size))
			if tc.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			resp, err := e.front.Client().Post(e.front.URL+"/upload", "application/octet-stream", body)
			if err != nil {
				t.Fatalf("POST %d bytes: %v", tc.size, err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("POST %d bytes (chunked %v): got %d %s, want %d", tc.size, tc.chunked, resp.StatusCode, got, tc.status)
			}
			if tc.status != 413 {
				return
			}
			if want := `{"message":"Request Too Long"}`; string(got) != want {
				t.Errorf("POST %d bytes: got body %s, want %s", tc.size, got, want)
			}
			if et := resp.Header.Get("x-amzn-ErrorType"); et != "RequestTooLargeException" {
				t.Errorf("POST %d bytes: x-amzn-ErrorType got %q, want RequestTooLargeException", tc.size, et)
			}
			if !tc.chunked && b.hits.Load() != 0 {
				t.Errorf("POST %d bytes with Content-Length: backend got %d requests, want 0", tc.size, b.hits.Load())
			}
			if tg := e.pool.Targets()[0]; tg.InFlight() != 0 {
				t.Errorf("target: %d in flight after the 413, want 0", tg.InFlight())
			}
			for _, reason := range []string{"exchange", "connect", "timeout"} {
				if n := e.upstreamErrors(reason); n != 0 {
					t.Errorf("drawbridge_upstream_errors_total{reason=%q} after a 413: got %v, want 0", reason, n)
				}
			}
		})
	}
}
