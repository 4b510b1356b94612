package observe_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/drawbridge-gw/drawbridge/internal/observe"
)

func TestRequestMetrics(t *testing.T) {
	t.Parallel()
	var r1 *observe.RouteMetrics
	// /r1/<status> is routed to r1 and answers <status>; anything else is
	// left unmatched and answers 403 as the router's noMatch does.
	f := newFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, ok := strings.CutPrefix(r.URL.Path, "/r1/"); ok {
			observe.RecordFrom(r.Context()).Route = r1
			status, _ := strconv.Atoi(code)
			w.WriteHeader(status)
			return
		}
		w.WriteHeader(http.StatusForbidden)
	}))
	r1 = f.metrics.Route("r1")

	requests := []struct{ method, path string }{
		{"GET", "/r1/200"}, {"GET", "/r1/200"}, {"GET", "/r1/204"},
		{"POST", "/r1/201"}, {"DELETE", "/r1/404"}, {"GET", "/r1/503"},
		{"PURGE", "/r1/200"}, {"BREW", "/r1/418"},
		{"GET", "/nowhere"}, {"PATCH", "/nowhere"},
	}
	for _, rq := range requests {
		req, err := http.NewRequest(rq.method, f.srv.URL+rq.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", rq.method, rq.path, err)
		}
		resp.Body.Close()
	}
	f.accessLines(len(requests)) // every request is done and counted

	tests := []struct {
		desc                string
		route, method, code string
		want                float64
	}{
		{"GET 2xx", "r1", "GET", "2xx", 3},
		{"POST 2xx", "r1", "POST", "2xx", 1},
		{"DELETE 4xx", "r1", "DELETE", "4xx", 1},
		{"GET 5xx", "r1", "GET", "5xx", 1},
		{"unknown methods are OTHER, 2xx", "r1", "OTHER", "2xx", 1},
		{"unknown methods are OTHER, 4xx", "r1", "OTHER", "4xx", 1},
		{"unmatched GET", "(none)", "GET", "4xx", 1},
		{"unmatched PATCH", "(none)", "PATCH", "4xx", 1},
		{"no unmatched 2xx", "(none)", "GET", "2xx", 0},
		{"made-up method is no label", "r1", "PURGE", "2xx", 0},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			labels := map[string]string{"route": tc.route, "method": tc.method, "code": tc.code}
			if got := counter(t, f.metrics, "drawbridge_requests_total", labels); got != tc.want {
				t.Errorf("drawbridge_requests_total%v: got %v, want %v", labels, got, tc.want)
			}
		})
	}
	if got := counter(t, f.metrics, "drawbridge_request_duration_seconds", map[string]string{"route": "r1"}); got != 8 {
		t.Errorf(`drawbridge_request_duration_seconds{route="r1"} count: got %v, want 8`, got)
	}
	if got := counter(t, f.metrics, "drawbridge_requests_in_flight", nil); got != 0 {
		t.Errorf("drawbridge_requests_in_flight when idle: got %v, want 0", got)
	}
}

func TestRequestsInFlight(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	f := newFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	done := make(chan error, 2)
	for range 2 {
		go func() {
			resp, err := f.client.Get(f.srv.URL + "/")
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
	}
	<-entered
	<-entered
	if got := counter(t, f.metrics, "drawbridge_requests_in_flight", nil); got != 2 {
		t.Errorf("drawbridge_requests_in_flight with two requests held: got %v, want 2", got)
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("GET /: %v", err)
		}
	}
	f.accessLines(2)
	if got := counter(t, f.metrics, "drawbridge_requests_in_flight", nil); got != 0 {
		t.Errorf("drawbridge_requests_in_flight after both finished: got %v, want 0", got)
	}
}

func TestMiddlewareWithoutLogOrMetrics(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(observe.Middleware(observe.MiddlewareOptions{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		io.WriteString(w, "ok")
	})))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		path   string
		status int
	}{{"/", 200}, {"/panic", 500}} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("x-amzn-RequestId") == "" {
			t.Errorf("GET %s: got %d with x-amzn-RequestId %q, want %d with an ID", tc.path, resp.StatusCode, resp.Header.Get("x-amzn-RequestId"), tc.status)
		}
	}
}

func TestUpstreamAndLifecycleMetrics(t *testing.T) {
	t.Parallel()
	m := observe.NewMetrics("v1.2.3")
	u := m.Upstream("onprem")
	u.Error("connect")
	u.Error("connect")
	u.Error("tls")
	u.HealthCheck("10.0.0.5:443", true)
	u.HealthCheck("10.0.0.5:443", false)
	u.HealthCheck("10.0.0.5:443", false)
	u.ObserveDuration(0)
	m.ConfigReload(nil)
	m.ConfigReload(errors.New("bad"))
	m.CertReload("public", nil)
	m.SetTargetStates(func() []observe.TargetState {
		return []observe.TargetState{
			{Upstream: "onprem", Target: "a:443", Healthy: true},
			{Upstream: "onprem", Target: "b:443", Healthy: false, Ejected: true},
		}
	})

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"drawbridge_upstream_errors_total", map[string]string{"upstream": "onprem", "reason": "connect"}, 2},
		{"drawbridge_upstream_errors_total", map[string]string{"upstream": "onprem", "reason": "tls"}, 1},
		{"drawbridge_health_checks_total", map[string]string{"upstream": "onprem", "target": "10.0.0.5:443", "result": "ok"}, 1},
		{"drawbridge_health_checks_total", map[string]string{"upstream": "onprem", "target": "10.0.0.5:443", "result": "fail"}, 2},
		{"drawbridge_upstream_duration_seconds", map[string]string{"upstream": "onprem"}, 1},
		{"drawbridge_config_reloads_total", map[string]string{"result": "ok"}, 1},
		{"drawbridge_config_reloads_total", map[string]string{"result": "error"}, 1},
		{"drawbridge_cert_reloads_total", map[string]string{"listener": "public", "result": "ok"}, 1},
		{"drawbridge_upstream_target_up", map[string]string{"upstream": "onprem", "target": "a:443"}, 1},
		{"drawbridge_upstream_target_up", map[string]string{"upstream": "onprem", "target": "b:443"}, 0},
		{"drawbridge_upstream_target_ejected", map[string]string{"upstream": "onprem", "target": "a:443"}, 0},
		{"drawbridge_upstream_target_ejected", map[string]string{"upstream": "onprem", "target": "b:443"}, 1},
		{"drawbridge_build_info", map[string]string{"version": "v1.2.3"}, 1},
	}
	for _, tc := range tests {
		if got := counter(t, m, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v: got %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}

	// The handler serves the same registry in the text format.
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `drawbridge_upstream_target_ejected{target="b:443",upstream="onprem"} 1`; !strings.Contains(string(body), want) {
		t.Errorf("GET /metrics lacks %s", want)
	}
}
