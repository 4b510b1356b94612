package proxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/drawbridge-gw/drawbridge/internal/proxy"
	"github.com/drawbridge-gw/drawbridge/internal/router"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

func TestNewRequiresPoolAndTransport(t *testing.T) {
	t.Parallel()
	pool, err := upstream.NewPool(upstream.PoolOptions{Name: "onprem", Targets: []string{"https://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc string
		opts proxy.Options
	}{
		{"no pool", proxy.Options{Route: "r", Transport: http.DefaultTransport}},
		{"no transport", proxy.Options{Route: "r", Pool: pool}},
	}
	for _, tc := range tests {
		if h, err := proxy.New(tc.opts); err == nil || h != nil {
			t.Errorf("New(%s): got %v, %v; want an error", tc.desc, h, err)
		}
	}
}

// TestUpstreamPath runs proxy stages behind a router, as the gateway does,
// so the path templates are filled from real path values.
func TestUpstreamPath(t *testing.T) {
	t.Parallel()
	cert := newCert(t)
	b := newBackend(t, cert, false, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"uri": r.RequestURI, "host": r.Host})
	})
	pool, err := upstream.NewPool(upstream.PoolOptions{Name: "onprem", Targets: []string{b.srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := transport.New(transport.Options{
		Upstream: "onprem", ServerName: "backend.internal",
		Pins: []string{transport.SPKIPin(cert.Cert)}, DialContext: pool.DialContext,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	stage := func(upstreamPath, hostHeader string) http.Handler {
		o := proxy.Options{Route: "r", Pool: pool, Transport: tr, HostHeader: hostHeader}
		if upstreamPath != "" {
			tmpl, err := router.ParseTemplate(upstreamPath)
			if err != nil {
				t.Fatalf("ParseTemplate(%q): %v", upstreamPath, err)
			}
			o.UpstreamPath = &tmpl
		}
		h, err := proxy.New(o)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	rt, err := router.New([]router.Route{
		{Name: "files", Methods: []string{router.AnyMethod}, Path: "/files/{proxy+}", Handler: stage("/api/v1/{proxy+}", "")},
		{Name: "order", Methods: []string{"GET"}, Path: "/orders/{id}", Handler: stage("/v2/orders/{id}/detail", "backend.internal")},
		{Name: "item", Methods: []string{"GET"}, Path: "/orders/{id}/items/{item}", Handler: stage("/items/{item}/of/{id}", "")},
		{Name: "plain", Methods: []string{"GET"}, Path: "/plain/{rest+}", Handler: stage("", "")},
	}, http.NotFoundHandler())
	if err != nil {
		t.Fatalf("router.New: %v", err)
	}
	front := httptest.NewServer(rt)
	t.Cleanup(front.Close)

	targetHost := b.srv.Listener.Addr().String()
	tests := []struct {
		desc     string
		target   string
		wantURI  string
		wantHost string
	}{
		{"greedy tail and query", "/files/a/b.txt?x=1&y=two", "/api/v1/a/b.txt?x=1&y=two", targetHost},
		{"greedy tail keeps an encoded slash", "/files/dir%2Fname/c?q=a%20b", "/api/v1/dir%2Fname/c?q=a%20b", targetHost},
		{"greedy single segment, empty query value", "/files/one?flag=", "/api/v1/one?flag=", targetHost},
		{"greedy with repeated query keys", "/files/x/y/z?k=1&k=2", "/api/v1/x/y/z?k=1&k=2", targetHost},
		{"param, host header set", "/orders/42?expand=items", "/v2/orders/42/detail?expand=items", "backend.internal"},
		{"param escaped as one segment", "/orders/a%20b", "/v2/orders/a%20b/detail", "backend.internal"},
		{"params reordered", "/orders/7/items/9?z", "/items/9/of/7?z", targetHost},
		{"no rewrite", "/plain/p/q?r=s", "/plain/p/q?r=s", targetHost},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			resp, err := front.Client().Get(front.URL + tc.target)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s: got %d %s, want 200", tc.target, resp.StatusCode, body)
			}
			var seen map[string]string
			if err := json.Unmarshal(body, &seen); err != nil {
				t.Fatalf("backend answer %q: %v", body, err)
			}
			if seen["uri"] != tc.wantURI {
				t.Errorf("GET %s: backend saw %q, want %q", tc.target, seen["uri"], tc.wantURI)
			}
			if seen["host"] != tc.wantHost {
				t.Errorf("GET %s: backend saw Host %q, want %q", tc.target, seen["host"], tc.wantHost)
			}
		})
	}
}

// TestClientAddressHeaders: the backend learns the partner's address only
// from X-Forwarded-For, whose rightmost entry drawbridge sets; headers the
// partner could fill with any address do not reach it.
func TestClientAddressHeaders(t *testing.T) {
	t.Parallel()
	cert := newCert(t)
	b := newBackend(t, cert, true, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(r.Header)
	})
	e := newEnv(t, envOptions{targets: []string{b.srv.URL}, pin: cert})
	tests := []struct {
		desc   string
		header http.Header
		want   http.Header // nil value = absent
	}{
		{
			desc: "spoofable headers dropped",
			header: http.Header{
				"Forwarded":  {"for=198.51.100.7;proto=https"},
				"X-Real-Ip":  {"198.51.100.7"},
				"X-Trace-Id": {"abc"},
			},
			want: http.Header{
				"Forwarded":       nil,
				"X-Real-Ip":       nil,
				"X-Forwarded-For": {"127.0.0.1"},
				"X-Trace-Id":      {"abc"},
			},
		},
		{
			desc:   "partner's X-Forwarded-For chain kept, client appended",
			header: http.Header{"X-Forwarded-For": {"203.0.113.9, 10.1.2.3"}, "X-Real-Ip": {"203.0.113.9"}},
			want:   http.Header{"X-Forwarded-For": {"203.0.113.9, 10.1.2.3, 127.0.0.1"}, "X-Real-Ip": nil},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest("GET", e.front.URL+"/orders/1", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tc.header
			resp, err := e.front.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var seen http.Header
			if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
				t.Fatalf("GET: decoding the backend's headers: %v", err)
			}
			for name, want := range tc.want {
				if got := seen[name]; !slices.Equal(got, want) {
					t.Errorf("GET with %v: backend saw %s %q, want %q", tc.header, name, got, want)
				}
			}
		})
	}
}
