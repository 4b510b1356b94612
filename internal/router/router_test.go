package router

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func mustNew(t testing.TB, routes []Route) *Router {
	t.Helper()
	r, err := New(routes, http.HandlerFunc(noMatch))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func noMatch(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("x-amzn-ErrorType", "MissingAuthenticationTokenException")
	http.Error(w, `{"message":"Missing Authentication Token"}`, http.StatusForbidden)
}

func route(name, host, path string, methods ...string) Route {
	return Route{Name: name, Host: host, Methods: methods, Path: path, Handler: named(name)}
}

// table is the routing table most matching tests run against.
var table = []Route{
	route("root", "", "/", "GET"),
	route("special", "", "/orders/special", "GET"),
	route("order", "", "/orders/{id}", "GET", "DELETE"),
	route("order-put", "", "/orders/{orderId}", "PUT"),
	route("items", "", "/orders/{id}/items", "GET"),
	route("item", "", "/orders/{id}/items/{item}", "GET"),
	route("files", "", "/files/{name}", "GET"),
	route("static", "", "/static/{path+}", "GET"),
	route("abc", "", "/a/b/c", "GET"),
	route("axd", "", "/a/{x}/d", "GET"),
	route("docs", "", "/my%20docs/{id}", "GET"),
	route("proxy", "", "/{proxy+}", "ANY"),
	route("host-order", "api.example.com", "/orders/{id}", "GET"),
	route("host-only", "api.example.com", "/only", "POST"),
	route("v6", "[::1]", "/v6", "GET"),
}

func TestMatch(t *testing.T) {
	t.Parallel()
	r := mustNew(t, table)
	tests := []struct {
		desc       string
		method     string
		host       string // default "example.com"
		target     string
		want       string // route name; "" means noMatch
		wantValues map[string]string
	}{
		// Specificity and backtracking.
		{desc: "literal beats param", method: "GET", target: "/orders/special", want: "special"},
		{desc: "param", method: "GET", target: "/orders/42", want: "order", wantValues: map[string]string{"id": "42"}},
		{desc: "param deeper", method: "GET", target: "/orders/42/items", want: "items", wantValues: map[string]string{"id": "42"}},
		{desc: "literal branch backtracks to param", method: "GET", target: "/orders/special/items", want: "items", wantValues: map[string]string{"id": "special"}},
		{desc: "two params", method: "GET", target: "/orders/1/items/2", want: "item", wantValues: map[string]string{"id": "1", "item": "2"}},
		{desc: "falls back to greedy", method: "GET", target: "/orders/42/items/2/x", want: "proxy", wantValues: map[string]string{"proxy": "orders/42/items/2/x"}},
		{desc: "literal path", method: "GET", target: "/a/b/c", want: "abc"},
		{desc: "literal fails deeper, param wins", method: "GET", target: "/a/b/d", want: "axd", wantValues: map[string]string{"x": "b"}},
		{desc: "literal and param fail, greedy wins", method: "GET", target: "/a/b/zzz", want: "proxy", wantValues: map[string]string{"proxy": "a/b/zzz"}},
		{desc: "greedy needs a segment", method: "GET", target: "/static", want: "proxy", wantValues: map[string]string{"proxy": "static"}},
		{desc: "greedy multi-segment", method: "GET", target: "/static/css/site.css", want: "static", wantValues: map[string]string{"path": "css/site.css"}},
		{desc: "root", method: "GET", target: "/", want: "root"},

		// Methods.
		{desc: "ANY matches any method", method: "PATCH", target: "/somewhere/else", want: "proxy", wantValues: map[string]string{"proxy": "somewhere/else"}},
		{desc: "second declared method", method: "DELETE", target: "/orders/42", want: "order", wantValues: map[string]string{"id": "42"}},
		{desc: "same shape, other route, own param name", method: "PUT", target: "/orders/42", want: "order-put", wantValues: map[string]string{"orderId": "42"}},
		{desc: "undeclared method does not fall back to greedy", method: "POST", target: "/orders/42"},
		{desc: "undeclared method on literal does not fall back to param", method: "DELETE", target: "/orders/special"},
		{desc: "HEAD not implied by GET", method: "HEAD", target: "/orders/42"},
		{desc: "undeclared method on root", method: "POST", target: "/"},

		// Trailing slash and empty segments.
		{desc: "one trailing slash ignored", method: "GET", target: "/orders/42/", want: "order", wantValues: map[string]string{"id": "42"}},
		{desc: "trailing slash on literal", method: "GET", target: "/orders/special/", want: "special"},
		{desc: "empty segment is no param", method: "GET", target: "/orders//items"},
		{desc: "two trailing slashes", method: "GET", target: "/orders/42//"},
		{desc: "empty segment inside greedy", method: "GET", target: "/static/a//b"},

		// Escaping.
		{desc: "encoded slash is one segment", method: "GET", target: "/files/a%2Fb", want: "files", wantValues: map[string]string{"name": "a/b"}},
		{desc: "encoded space", method: "GET", target: "/files/a%20b", want: "files", wantValues: map[string]string{"name": "a b"}},
		{desc: "encoded percent", method: "GET", target: "/files/100%25", want: "files", wantValues: map[string]string{"name": "100%"}},
		{desc: "encoded literal letter", method: "GET", target: "/orders/%73pecial", want: "special"},
		{desc: "encoded literal with encoded slash elsewhere", method: "GET", target: "/orders/%73pecial/items/a%2Fb", want: "item", wantValues: map[string]string{"id": "special", "item": "a/b"}},
		{desc: "escaped literal in template", method: "GET", target: "/my%20docs/1", want: "docs", wantValues: map[string]string{"id": "1"}},
		{desc: "greedy decodes, keeps separators", method: "GET", target: "/static/a%2Fb/c%20d", want: "static", wantValues: map[string]string{"path": "a/b/c d"}},
		{desc: "dot-dot segment matches nothing", method: "GET", target: "/static/../secret"},
		{desc: "encoded dot-dot matches nothing", method: "GET", target: "/static/%2e%2E/secret"},
		{desc: "dot segment is no param", method: "GET", target: "/files/."},
		{desc: "path is case-sensitive", method: "GET", target: "/ORDERS/special", want: "proxy", wantValues: map[string]string{"proxy": "ORDERS/special"}},
		{desc: "asterisk target", method: "OPTIONS", target: "*"},

		// Hosts.
		{desc: "host-specific route", method: "GET", host: "api.example.com", target: "/orders/42", want: "host-order", wantValues: map[string]string{"id": "42"}},
		{desc: "host with port and case", method: "GET", host: "API.Example.COM:8443", target: "/orders/42", want: "host-order", wantValues: map[string]string{"id": "42"}},
		{desc: "host with trailing dot", method: "GET", host: "api.example.com.", target: "/orders/42", want: "host-order", wantValues: map[string]string{"id": "42"}},
		{desc: "host tree first even if less specific", method: "GET", host: "api.example.com", target: "/orders/special", want: "host-order", wantValues: map[string]string{"id": "special"}},
		{desc: "host tree miss falls back to any host", method: "GET", host: "api.example.com", target: "/orders/42/items", want: "items", wantValues: map[string]string{"id": "42"}},
		{desc: "host resource decides method", method: "DELETE", host: "api.example.com", target: "/orders/42"},
		{desc: "host-only route", method: "POST", host: "api.example.com", target: "/only", want: "host-only"},
		{desc: "host-only route on other host", method: "POST", host: "other.example.com", target: "/only", want: "proxy", wantValues: map[string]string{"proxy": "only"}},
		{desc: "other host uses any-host tree", method: "GET", host: "www.example.com", target: "/orders/42", want: "order", wantValues: map[string]string{"id": "42"}},
		{desc: "IPv6 host", method: "GET", host: "[::1]:8443", target: "/v6", want: "v6"},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(test.method, test.target, nil)
			req.Host = "example.com"
			if test.host != "" {
				req.Host = test.host
			}
			rt, ok := r.Match(req)
			got := ""
			if ok {
				got = rt.Name
			}
			if got != test.want {
				t.Fatalf("Match(%s %s%s): got route %q, want %q", test.method, req.Host, test.target, got, test.want)
			}
			if !ok {
				return
			}
			gotValues := map[string]string{}
			for _, name := range []string{"id", "orderId", "item", "name", "path", "proxy", "x"} {
				if v := req.PathValue(name); v != "" {
					gotValues[name] = v
				}
			}
			want := test.wantValues
			if want == nil {
				want = map[string]string{}
			}
			if !maps.Equal(gotValues, want) {
				t.Errorf("Match(%s %s%s): got path values %v, want %v", test.method, req.Host, test.target, gotValues, want)
			}
		})
	}
}

func TestMatchRootNeedsOwnRoute(t *testing.T) {
	t.Parallel()
	r := mustNew(t, []Route{route("proxy", "", "/{proxy+}", "ANY")})
	for _, target := range []string{"/", "//"} {
		if rt, ok := r.Match(httptest.NewRequest("GET", target, nil)); ok {
			t.Errorf("Match(GET %s): got route %q, want no match", target, rt.Name)
		}
	}
}

// TestServeHTTP drives the router through a real server and client, so
// the paths go through real request-target parsing.
func TestServeHTTP(t *testing.T) {
	t.Parallel()
	routes := []Route{
		route("order", "", "/orders/{id}", "GET"),
		route("root", "", "/", "GET"),
		{
			Name: "echo", Methods: []string{"ANY"}, Path: "/echo/{proxy+}",
			Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				fmt.Fprintf(w, "echo %s %q", req.Method, req.PathValue("proxy"))
			}),
		},
		{
			Name: "show", Methods: []string{"GET"}, Path: "/show/{a}/{b}",
			Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				fmt.Fprintf(w, "show %q %q", req.PathValue("a"), req.PathValue("b"))
			}),
		},
	}
	r := mustNew(t, routes)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	tests := []struct {
		desc       string
		method     string
		target     string
		wantStatus int
		wantBody   string
	}{
		{desc: "param route", method: "GET", target: "/orders/42", wantStatus: 200, wantBody: "order"},
		{desc: "root", method: "GET", target: "/", wantStatus: 200, wantBody: "root"},
		{desc: "greedy value", method: "POST", target: "/echo/a/b%2Fc", wantStatus: 200, wantBody: `echo POST "a/b/c"`},
		{desc: "escaped params", method: "GET", target: "/show/a%20b/c%2Fd", wantStatus: 200, wantBody: `show "a b" "c/d"`},
		{desc: "unknown path", method: "GET", target: "/nowhere", wantStatus: 403, wantBody: `{"message":"Missing Authentication Token"}`},
		{desc: "undeclared method", method: "POST", target: "/orders/42", wantStatus: 403, wantBody: `{"message":"Missing Authentication Token"}`},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(test.method, srv.URL+test.target, nil)
			if err != nil {
				t.Fatalf("http.NewRequest(%s, %s): %v", test.method, test.target, err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("Do(%s %s): %v", test.method, test.target, err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading body of %s %s: %v", test.method, test.target, err)
			}
			if resp.StatusCode != test.wantStatus || strings.TrimSpace(string(body)) != test.wantBody {
				t.Errorf("%s %s: got %d %q, want %d %q", test.method, test.target, resp.StatusCode, body, test.wantStatus, test.wantBody)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc    string
		routes  []Route
		wantErr []string // substrings; nil means success
	}{
		{
			desc: "different methods on one shape form one resource",
			routes: []Route{
				route("get", "", "/orders/{id}", "GET"),
				route("put", "", "/orders/{oid}", "PUT", "PATCH"),
			},
		},
		{
			desc: "same path on different hosts",
			routes: []Route{
				route("a", "", "/orders/{id}", "GET"),
				route("b", "a.example.com", "/orders/{id}", "GET"),
				route("c", "b.example.com", "/orders/{id}", "ANY"),
			},
		},
		{
			desc: "same path and method",
			routes: []Route{
				route("first", "", "/orders/{id}", "GET"),
				route("second", "", "/orders/{id}", "GET"),
			},
			wantErr: []string{`route "second": duplicate of route "first": any host, path "/orders/{id}": method GET overlaps GET`},
		},
		{
			desc: "same shape, different param names",
			routes: []Route{
				route("first", "", "/orders/{id}", "GET", "POST"),
				route("second", "", "/orders/{orderId}", "POST"),
			},
			wantErr: []string{`route "second": duplicate of route "first"`, "method POST overlaps GET,POST"},
		},
		{
			desc: "ANY twice",
			routes: []Route{
				route("first", "", "/{proxy+}", "ANY"),
				route("second", "", "/{p+}", "ANY"),
			},
			wantErr: []string{`route "second": duplicate of route "first"`, "method ANY"},
		},
		{
			desc: "same host spelled differently",
			routes: []Route{
				route("first", "API.example.com", "/x", "GET"),
				route("second", "api.example.com.", "/x", "GET"),
			},
			wantErr: []string{`route "second": duplicate of route "first": host "api.example.com"`},
		},
		{
			desc: "unnamed routes are labelled by index",
			routes: []Route{
				route("", "", "/x", "GET"),
				route("", "", "/x", "GET"),
			},
			wantErr: []string{`route #1 (/x): duplicate of route #0 (/x)`},
		},
		{
			desc:    "bad template",
			routes:  []Route{route("bad", "", "/{proxy+}/x", "GET")},
			wantErr: []string{`route "bad": path template "/{proxy+}/x": segment "{proxy+}": greedy parameter {proxy+} must be the last segment`},
		},
		{
			desc:    "nil handler",
			routes:  []Route{{Name: "nil", Methods: []string{"GET"}, Path: "/"}},
			wantErr: []string{`route "nil": nil handler`},
		},
		{
			desc:    "no methods",
			routes:  []Route{route("none", "", "/")},
			wantErr: []string{`route "none": no methods`},
		},
		{
			desc:    "lower-case method",
			routes:  []Route{route("lower", "", "/", "get")},
			wantErr: []string{`route "lower": method "get": must be an upper-case HTTP method or ANY`},
		},
		{
			desc:    "method twice",
			routes:  []Route{route("twice", "", "/", "GET", "GET")},
			wantErr: []string{`route "twice": method GET listed twice`},
		},
		{
			desc:    "ANY with others",
			routes:  []Route{route("any", "", "/", "GET", "ANY")},
			wantErr: []string{`route "any": ANY already covers every method`},
		},
		{
			desc:    "host with port",
			routes:  []Route{route("port", "api.example.com:443", "/", "GET")},
			wantErr: []string{`route "port": host "api.example.com:443": must not include a port`},
		},
		{
			desc:    "wildcard host",
			routes:  []Route{route("wild", "*.example.com", "/", "GET")},
			wantErr: []string{`route "wild": host "*.example.com": wildcards are not supported`},
		},
		{
			desc: "every problem is reported",
			routes: []Route{
				route("one", "", "/{", "GET"),
				route("two", "", "/ok", "get"),
			},
			wantErr: []string{`route "one": path template "/{"`, `route "two": method "get"`},
		},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			t.Parallel()
			_, err := New(test.routes, http.HandlerFunc(noMatch))
			if test.wantErr == nil {
				if err != nil {
					t.Fatalf("New(%s): got error %v, want nil", test.desc, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New(%s): got nil error, want one containing %q", test.desc, test.wantErr)
			}
			for _, want := range test.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("New(%s): got error %q, want it to contain %q", test.desc, err, want)
				}
			}
		})
	}
}

func TestNewNilNoMatch(t *testing.T) {
	t.Parallel()
	if _, err := New(nil, nil); err == nil {
		t.Errorf("New(nil, nil): got nil error, want one")
	}
}

// TestNewCopiesRoutes checks that later changes to the caller's slice do
// not reach a built router.
func TestNewCopiesRoutes(t *testing.T) {
	t.Parallel()
	routes := []Route{route("orig", "", "/x", "GET")}
	r := mustNew(t, routes)
	routes[0].Name = "changed"
	routes[0].Methods[0] = "POST"
	rt, ok := r.Match(httptest.NewRequest("GET", "/x", nil))
	if !ok || rt.Name != "orig" {
		t.Errorf("Match(GET /x) after changing input: got (%v, %v), want route %q", rt, ok, "orig")
	}
}

func TestMatchAllocs(t *testing.T) {
	r := mustNew(t, benchRoutes())
	tests := []struct {
		desc   string
		target string
		want   float64
	}{
		{desc: "literal path", target: "/v1/catalog/products", want: 0},
		{desc: "no match", target: "/nowhere/at/all", want: 0},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			req := httptest.NewRequest("GET", test.target, nil)
			req.Host = "api.example.com"
			got := testing.AllocsPerRun(100, func() { r.Match(req) })
			if got != test.want {
				t.Errorf("AllocsPerRun(Match(GET %s)): got %v, want %v", test.target, got, test.want)
			}
		})
	}
}

// benchRoutes is a table shaped like a mid-sized partner API.
func benchRoutes() []Route {
	var routes []Route
	for _, res := range []string{"orders", "customers", "invoices", "products", "shipments", "returns", "payments", "accounts"} {
		routes = append(routes,
			route(res+"-list", "", "/v1/"+res, "GET", "POST"),
			route(res+"-one", "", "/v1/"+res+"/{id}", "GET", "PUT", "DELETE"),
			route(res+"-sub", "", "/v1/"+res+"/{id}/{sub}", "GET"),
			route(res+"-search", "", "/v1/"+res+"/search", "POST"),
		)
	}
	routes = append(routes,
		route("catalog", "", "/v1/catalog/products", "GET"),
		route("partner", "partner.example.com", "/v1/orders/{id}", "GET"),
		route("proxy", "", "/{proxy+}", "ANY"),
	)
	return routes
}

func BenchmarkMatch(b *testing.B) {
	r := mustNew(b, benchRoutes())
	for _, bm := range []struct{ desc, target string }{
		{"literal", "/v1/catalog/products"},
		{"param", "/v1/orders/12345"},
		{"two-params", "/v1/invoices/12345/lines"},
		{"greedy", "/legacy/reports/2024/q1.pdf"},
		{"escaped", "/v1/orders/a%2Fb"},
		{"miss", "/v1/orders/1/2/3/4"},
	} {
		b.Run(bm.desc, func(b *testing.B) {
			req := httptest.NewRequest("GET", bm.target, nil)
			req.Host = "api.example.com"
			b.ReportAllocs()
			for b.Loop() {
				r.Match(req)
			}
		})
	}
}

// FuzzMatch checks that no template or request path makes the router
// panic, and that a match always yields a declared method.
func FuzzMatch(f *testing.F) {
	for _, s := range []string{"/", "/orders/{id}", "/a/%2F/{p+}", "/{", "//", "/static/%2e%2e/x", "/files/a%2Fb/"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, tmpl, path string) {
		routes := append([]Route{route("fuzz", "", tmpl, "GET")}, table...)
		r, err := New(routes, http.HandlerFunc(noMatch))
		if err != nil {
			r = mustNew(t, table)
		}
		req, err := http.NewRequest("GET", "http://example.com"+path, nil)
		if err != nil {
			return
		}
		if rt, ok := r.Match(req); ok && rt.Methods[0] != "GET" && rt.Methods[0] != AnyMethod {
			t.Errorf("Match(GET %s): got route %q with methods %v", path, rt.Name, rt.Methods)
		}
		if t, err := ParseTemplate(tmpl); err == nil {
			t.Expand(req)
		}
	})
}

// TestSpecificMethodBesideANY: as in API Gateway, a resource may declare
// ANY beside specific methods, and a specific method wins.
func TestSpecificMethodBesideANY(t *testing.T) {
	t.Parallel()
	r, err := New([]Route{
		route("any", "", "/x", "ANY"),
		route("get", "", "/x", "GET"),
	}, http.NotFoundHandler())
	if err != nil {
		t.Fatalf("New(ANY and GET on /x): %v", err)
	}
	for method, want := range map[string]string{"GET": "get", "POST": "any", "DELETE": "any"} {
		req := httptest.NewRequest(method, "/x", nil)
		rt, ok := r.Match(req)
		if !ok || rt.Name != want {
			t.Errorf("Match(%s /x): got %v %v, want route %q", method, rt, ok, want)
		}
	}
}
