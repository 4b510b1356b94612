package observe_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"
	"github.com/drawbridge-gw/drawbridge/internal/observe"

	"github.com/google/uuid"
)

func TestRequestIDs(t *testing.T) {
	t.Parallel()
	// The inner handler reports the X-Request-Id it saw, which is what the
	// proxy forwards to the backend.
	f := newFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen := r.Header.Get("X-Request-Id")
		if r.URL.Path == "/error" {
			w.Header().Set("X-Seen", seen)
			gwresponse.Write(w, gwresponse.Throttled)
			return
		}
		io.WriteString(w, seen)
	}))

	valid128 := strings.Repeat("a", 128)
	tests := []struct {
		desc     string
		path     string
		clientID string // "" sends none
		keep     bool   // the client's ID is echoed
	}{
		{desc: "no client id", path: "/ok"},
		{desc: "no client id, inner handler errors", path: "/error"},
		{desc: "client id kept", path: "/ok", clientID: "partner-trace-42", keep: true},
		{desc: "client id kept on error", path: "/error", clientID: "partner-trace-43", keep: true},
		{desc: "client id of 128 chars kept", path: "/ok", clientID: valid128, keep: true},
		{desc: "client id of 129 chars replaced", path: "/ok", clientID: valid128 + "a"},
		{desc: "client id with a space replaced", path: "/ok", clientID: "two words"},
		{desc: "client id with a tab replaced", path: "/ok", clientID: "a\tb"},
		{desc: "client id with non-ASCII replaced", path: "/ok", clientID: "caf\xc3\xa9"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest("GET", f.srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.clientID != "" {
				req.Header.Set("X-Request-Id", tc.clientID)
			}
			resp, err := f.client.Do(req)
			if err != nil {
				t.Fatalf("GET %s: %v", tc.path, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen := string(body)
			if tc.path == "/error" {
				if resp.StatusCode != http.StatusTooManyRequests {
					t.Fatalf("GET %s: got status %d, want 429 from the inner handler", tc.path, resp.StatusCode)
				}
				seen = resp.Header.Get("X-Seen")
			}

			amzn := resp.Header.Get("x-amzn-RequestId")
			id, err := uuid.Parse(amzn)
			if err != nil || id.Version() != 4 || id.Variant() != uuid.RFC4122 {
				t.Errorf("GET %s: x-amzn-RequestId %q is not a UUID v4 (err %v)", tc.path, amzn, err)
			}
			want := amzn
			if tc.keep {
				want = tc.clientID
			}
			if got := resp.Header.Get("X-Request-Id"); got != want {
				t.Errorf("GET %s with X-Request-Id %q: got X-Request-Id %q, want %q", tc.path, tc.clientID, got, want)
			}
			if seen != want {
				t.Errorf("GET %s with X-Request-Id %q: inner handler saw %q, want %q", tc.path, tc.clientID, seen, want)
			}
		})
	}
}

func TestRequestIDsAreUnique(t *testing.T) {
	t.Parallel()
	f := newFront(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	seen := map[string]bool{}
	for range 20 {
		resp, err := f.client.Get(f.srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		id := resp.Header.Get("x-amzn-RequestId")
		if seen[id] {
			t.Fatalf("x-amzn-RequestId %q handed out twice", id)
		}
		seen[id] = true
	}
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	const (
		apiKey = "k3y-VALUE-never-logged"
		token  = "Bearer t0ken-VALUE-never-logged"
	)
	tests := []struct {
		desc        string
		method      string
		target      string
		body        io.Reader
		header      map[string]string
		route       bool // the inner handler stamps route "r1"
		status      int
		wantPath    string
		wantRoute   string
		wantBytesIn float64
		wantClient  string // client_request_id; "" = absent
	}{
		{desc: "GET with query and secrets", method: "GET", target: "/orders/42?verbose=1",
			header: map[string]string{"x-api-key": apiKey, "Authorization": token},
			route:  true, status: 200, wantPath: "/orders/42", wantRoute: "r1"},
		{desc: "POST with Content-Length", method: "POST", target: "/orders",
			body: strings.NewReader("hello"), route: true, status: 201, wantPath: "/orders", wantRoute: "r1", wantBytesIn: 5},
		{desc: "POST chunked", method: "POST", target: "/upload",
			body:   io.MultiReader(strings.NewReader(strings.Repeat("x", 70000))), // hides the length
			status: 200, wantPath: "/upload", wantBytesIn: 70000},
		{desc: "unmatched", method: "GET", target: "/nope", status: 403, wantPath: "/nope"},
		{desc: "client request id", method: "GET", target: "/id", header: map[string]string{"X-Request-Id": "partner-1"},
			status: 200, wantPath: "/id", wantClient: "partner-1"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			rm := observe.NewMetrics("test").Route("r1")
			const answer = "answer body"
			f := newFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.route {
					observe.RecordFrom(r.Context()).Route = rm
				}
				io.Copy(io.Discard, r.Body)
				w.WriteHeader(tc.status)
				io.WriteString(w, answer)
			}))
			req, err := http.NewRequest(tc.method, f.srv.URL+tc.target, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := f.client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.target, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: got status %d, want %d", tc.method, tc.target, resp.StatusCode, tc.status)
			}

			line := f.accessLines(1)[0]
			want := map[string]any{
				"msg":        "request",
				"level":      "INFO",
				"request_id": resp.Header.Get("x-amzn-RequestId"),
				"listener":   "public",
				"method":     tc.method,
				"path":       tc.wantPath,
				"route":      tc.wantRoute,
				"status":     float64(tc.status),
				"bytes_in":   tc.wantBytesIn,
				"bytes_out":  float64(len(answer)),
				"client_ip":  "127.0.0.1",
				"tls_client": "TLS 1.3",
				"proto":      "HTTP/1.1",
			}
			if tc.wantClient != "" {
				want["client_request_id"] = tc.wantClient
			}
			for k, v := range want {
				if line[k] != v {
					t.Errorf("access log %s: got %v (%T), want %v (%T)", k, line[k], line[k], v, v)
				}
			}
			if _, ok := line["client_request_id"]; ok && tc.wantClient == "" {
				t.Errorf("access log has client_request_id %v, want none", line["client_request_id"])
			}
			if d, ok := line["duration_ms"].(float64); !ok || d < 0 {
				t.Errorf("access log duration_ms: got %v, want a non-negative number", line["duration_ms"])
			}
			if _, ok := line["upstream"]; ok {
				t.Errorf("access log has upstream %v for a request that went nowhere", line["upstream"])
			}
			for _, secret := range []string{apiKey, token, "t0ken-VALUE"} {
				if strings.Contains(f.log.String(), secret) {
					t.Errorf("access log contains the client's secret %q:\n%s", secret, f.log)
				}
			}
		})
	}
}

// TestAccessLogUpstreamFields: what the proxy stage records below the
// middleware appears in the line.
func TestAccessLogUpstreamFields(t *testing.T) {
	t.Parallel()
	f := newFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.RecordFrom(r.Context())
		rec.Upstream, rec.Target = "onprem", "10.0.0.5:443"
		rec.UpstreamDuration = 1500 * time.Microsecond
		rec.UpstreamTLS = 0x0304
		rec.Error = "upstream tls: pin mismatch"
		w.WriteHeader(http.StatusBadGateway)
	}))
	resp, err := f.client.Get(f.srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	line := f.accessLines(1)[0]
	want := map[string]any{
		"upstream": "onprem", "target": "10.0.0.5:443", "upstream_ms": 1.5,
		"tls_upstream": "TLS 1.3", "error": "upstream tls: pin mismatch", "status": float64(502),
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("access log %s: got %v, want %v", k, line[k], v)
		}
	}
}

// TestRecordNotShared: each request gets its own Record even though they
// are pooled; a field set by one request never leaks into the next.
func TestRecordNotShared(t *testing.T) {
	t.Parallel()
	f := newFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := observe.RecordFrom(r.Context())
		if rec.Upstream != "" || rec.Error != "" || rec.Route != nil {
			w.WriteHeader(http.StatusConflict)
			return
		}
		if r.URL.Path == "/dirty" {
			rec.Upstream, rec.Error = "onprem", "dirty"
		}
	}))
	for i := range 10 {
		resp, err := f.client.Get(f.srv.URL + []string{"/dirty", "/clean"}[i%2])
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: got %d: the Record carried fields from an earlier request", i, resp.StatusCode)
		}
	}
}

func TestRecordFromWithoutMiddleware(t *testing.T) {
	t.Parallel()
	req, err := http.NewRequest("GET", "http://127.0.0.1/", nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := observe.RecordFrom(req.Context())
	if rec == nil {
		t.Fatal("RecordFrom(context without a Record): got nil, want a throwaway Record")
	}
	rec.Error = "x" // must not panic
	if other := observe.RecordFrom(req.Context()); other == rec {
		t.Errorf("RecordFrom(context without a Record): got the same Record twice, want a throwaway each time")
	}
}

func TestPanicRecovered(t *testing.T) {
	t.Parallel()
	var rm *observe.RouteMetrics
	f := newFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		observe.RecordFrom(r.Context()).Route = rm
		if r.URL.Path == "/panic" {
			w.Header().Set("Content-Type", "text/plain") // must not survive into the error answer
			panic("boom")
		}
		io.WriteString(w, "fine")
	}))
	rm = f.metrics.Route("r1")

	resp, err := f.client.Get(f.srv.URL + "/panic")
	if err != nil {
		t.Fatalf("GET /panic: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `{"message": "Internal server error"}`; resp.StatusCode != 500 || string(body) != want {
		t.Errorf("GET /panic: got %d %s, want 500 %s", resp.StatusCode, body, want)
	}
	if ct, et := resp.Header.Get("Content-Type"), resp.Header.Get("x-amzn-ErrorType"); ct != "application/json" || et != "InternalServerErrorException" {
		t.Errorf("GET /panic: got Content-Type %q, x-amzn-ErrorType %q, want application/json, InternalServerErrorException", ct, et)
	}
	if resp.Header.Get("x-amzn-RequestId") == "" {
		t.Errorf("GET /panic: no x-amzn-RequestId")
	}

	// The server lives on.
	resp, err = f.client.Get(f.srv.URL + "/after")
	if err != nil {
		t.Fatalf("GET /after a panic: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /after a panic: got %d, want 200", resp.StatusCode)
	}

	lines := f.accessLines(2)
	if lines[0]["status"] != float64(500) || lines[0]["error"] != "panic" || lines[0]["route"] != "r1" {
		t.Errorf("access log of the panic: got status %v error %v route %v, want 500 panic r1", lines[0]["status"], lines[0]["error"], lines[0]["route"])
	}
	if got := counter(t, f.metrics, "drawbridge_requests_total", map[string]string{"route": "r1", "method": "GET", "code": "5xx"}); got != 1 {
		t.Errorf(`drawbridge_requests_total{route="r1",method="GET",code="5xx"}: got %v, want 1`, got)
	}
	if got := counter(t, f.metrics, "drawbridge_requests_in_flight", nil); got != 0 {
		t.Errorf("drawbridge_requests_in_flight after a panic: got %v, want 0", got)
	}
}

// TestAbortHandler: http.ErrAbortHandler (ReverseProxy's way of cutting a
// response whose backend failed midway) reaches net/http, so the partner
// sees a broken response rather than a truncated one that looks whole,
// and the request is still logged.
func TestAbortHandler(t *testing.T) {
	t.Parallel()
	f := newFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}))
	resp, err := f.client.Get(f.srv.URL + "/abort")
	if err != nil {
		t.Fatalf("GET /abort: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Errorf("GET /abort: read %q with no error, want the response cut off", body)
	}
	line := f.accessLines(1)[0]
	if line["error"] != "response aborted" || line["status"] != float64(200) || line["bytes_out"] != float64(len("partial")) {
		t.Errorf("access log of the aborted response: got error %v status %v bytes_out %v, want response aborted 200 7", line["error"], line["status"], line["bytes_out"])
	}
	if got := counter(t, f.metrics, "drawbridge_requests_in_flight", nil); got != 0 {
		t.Errorf("drawbridge_requests_in_flight after an abort: got %v, want 0", got)
	}
}

// TestStreamingFlush: a handler below the middleware can flush, through
// http.ResponseController or http.Flusher, so a streamed answer reaches
// the partner before the handler returns.
func TestStreamingFlush(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc  string
		flush func(w http.ResponseWriter) error
	}{
		{"ResponseController", func(w http.ResponseWriter) error { return http.NewResponseController(w).Flush() }},
		{"http.Flusher", func(w http.ResponseWriter) error {
			fl, ok := w.(http.Flusher)
			if !ok {
				return errors.New("not an http.Flusher")
			}
			fl.Flush()
			return nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			handlerErr := make(chan error, 1)
			f := newFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// Deadlines reach the real writer through Unwrap too.
				if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
					handlerErr <- fmt.Errorf("SetWriteDeadline: %w", err)
				}
				io.WriteString(w, "first\n")
				if err := tc.flush(w); err != nil {
					handlerErr <- err
				}
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				io.WriteString(w, "second\n")
			}))
			resp, err := f.client.Get(f.srv.URL + "/stream")
			if err != nil {
				close(release)
				t.Fatalf("GET /stream: %v", err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			line, err := br.ReadString('\n')
			close(release)
			if err != nil || line != "first\n" {
				t.Fatalf("first streamed line before the handler returned: got %q, %v", line, err)
			}
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "second\n" {
				t.Errorf("rest of the stream: got %q, %v, want %q", rest, err, "second\n")
			}
			select {
			case err := <-handlerErr:
				t.Errorf("in the handler: %v", err)
			default:
			}
			l := f.accessLines(1)[0]
			if l["status"] != float64(200) || l["bytes_out"] != float64(len("first\nsecond\n")) {
				t.Errorf("access log of the stream: got status %v bytes_out %v, want 200 %d", l["status"], l["bytes_out"], len("first\nsecond\n"))
			}
		})
	}
}

// TestInformationalStatusNotFinal: a 1xx sent before the answer is not
// what the access log reports.
func TestInformationalStatusNotFinal(t *testing.T) {
	t.Parallel()
	f := newFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusAccepted)
	}))
	resp, err := f.client.Get(f.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("GET /: got %d, want 202", resp.StatusCode)
	}
	if got := f.accessLines(1)[0]["status"]; got != float64(http.StatusAccepted) {
		t.Errorf("access log status after 103 then 202: got %v, want 202", got)
	}
}
