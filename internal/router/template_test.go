package router

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseTemplate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc       string
		in         string
		wantParams []string
		wantErr    string // substring; "" means success
	}{
		{desc: "root", in: "/"},
		{desc: "literals", in: "/orders/special"},
		{desc: "param", in: "/orders/{id}", wantParams: []string{"id"}},
		{desc: "params and greedy", in: "/a/{x}/b/{y-z}/{rest_1+}", wantParams: []string{"x", "y-z", "rest_1"}},
		{desc: "escaped literal", in: "/my%20docs/{id}", wantParams: []string{"id"}},
		{desc: "empty", in: "", wantErr: "empty template"},
		{desc: "no leading slash", in: "orders", wantErr: `must start with "/"`},
		{desc: "trailing slash", in: "/orders/", wantErr: `trailing "/"`},
		{desc: "double slash", in: "/orders//x", wantErr: "empty segment"},
		{desc: "query", in: "/orders?x=1", wantErr: "query"},
		{desc: "greedy not last", in: "/{proxy+}/x", wantErr: "greedy parameter {proxy+} must be the last segment"},
		{desc: "unclosed brace", in: "/orders/{id", wantErr: `unclosed "{"`},
		{desc: "stray close brace", in: "/orders/id}", wantErr: "whole segment"},
		{desc: "param inside segment", in: "/orders/x{id}", wantErr: "whole segment"},
		{desc: "param with suffix", in: "/orders/{id}.json", wantErr: "whole segment"},
		{desc: "empty name", in: "/orders/{}", wantErr: "empty parameter name"},
		{desc: "empty greedy name", in: "/{+}", wantErr: "empty parameter name"},
		{desc: "bad name", in: "/orders/{a b}", wantErr: `parameter name "a b"`},
		{desc: "duplicate param", in: "/{id}/x/{id}", wantErr: `duplicate parameter name "id"`},
		{desc: "duplicate param and greedy", in: "/{id}/{id+}", wantErr: `duplicate parameter name "id"`},
		{desc: "dot segment", in: "/a/../b", wantErr: "dot segments"},
		{desc: "bad escape", in: "/a%zz", wantErr: "percent-encoding"},
		{desc: "too many params", in: "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}/{n}/{o}/{p}/{q}", wantErr: "more than 16"},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			t.Parallel()
			tmpl, err := ParseTemplate(test.in)
			if test.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), test.wantErr) {
					t.Fatalf("ParseTemplate(%q): got error %v, want one containing %q", test.in, err, test.wantErr)
				}
				if !strings.Contains(err.Error(), strconv.Quote(test.in)) {
					t.Errorf("ParseTemplate(%q): error %q does not name the template", test.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTemplate(%q): got error %v, want nil", test.in, err)
			}
			if got := tmpl.Params(); !slices.Equal(got, test.wantParams) {
				t.Errorf("ParseTemplate(%q).Params(): got %q, want %q", test.in, got, test.wantParams)
			}
			if got := tmpl.String(); got != test.in {
				t.Errorf("ParseTemplate(%q).String(): got %q, want %q", test.in, got, test.in)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc     string
		route    string // route template the request is matched against
		target   string // request-target as sent on the wire
		upstream string // template to expand
		wantPath string
		wantRaw  string
	}{
		{
			desc: "root", route: "/", target: "/", upstream: "/",
			wantPath: "/", wantRaw: "/",
		},
		{
			desc: "literal only", route: "/orders/{id}", target: "/orders/42", upstream: "/v1/status",
			wantPath: "/v1/status", wantRaw: "/v1/status",
		},
		{
			desc: "single param", route: "/orders/{id}", target: "/orders/42", upstream: "/v1/orders/{id}",
			wantPath: "/v1/orders/42", wantRaw: "/v1/orders/42",
		},
		{
			desc: "param with space", route: "/orders/{id}", target: "/orders/a%20b", upstream: "/v1/{id}",
			wantPath: "/v1/a b", wantRaw: "/v1/a%20b",
		},
		{
			desc: "param with encoded slash stays one segment", route: "/files/{name}", target: "/files/a%2Fb", upstream: "/store/{name}/meta",
			wantPath: "/store/a/b/meta", wantRaw: "/store/a%2Fb/meta",
		},
		{
			desc: "params reordered", route: "/{a}/{b}", target: "/x/y", upstream: "/{b}/{a}",
			wantPath: "/y/x", wantRaw: "/y/x",
		},
		{
			desc: "greedy multi-segment", route: "/api/{proxy+}", target: "/api/orders/42/items", upstream: "/backend/{proxy+}",
			wantPath: "/backend/orders/42/items", wantRaw: "/backend/orders/42/items",
		},
		{
			desc: "greedy keeps client escaping", route: "/api/{proxy+}", target: "/api/a%20b/c%2Fd", upstream: "/backend/{proxy+}",
			wantPath: "/backend/a b/c/d", wantRaw: "/backend/a%20b/c%2Fd",
		},
		{
			desc: "greedy ignores trailing slash", route: "/api/{proxy+}", target: "/api/a/b/", upstream: "/{proxy+}",
			wantPath: "/a/b", wantRaw: "/a/b",
		},
		{
			desc: "escaped literal in upstream", route: "/orders/{id}", target: "/orders/1", upstream: "/my%20orders/{id}",
			wantPath: "/my orders/1", wantRaw: "/my%20orders/1",
		},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			t.Parallel()
			r := mustNew(t, []Route{{Name: "r", Methods: []string{"GET"}, Path: test.route, Handler: named("r")}})
			req := httptest.NewRequest("GET", test.target, nil)
			if _, ok := r.Match(req); !ok {
				t.Fatalf("Match(%s): no match for route %s", test.target, test.route)
			}
			up, err := ParseTemplate(test.upstream)
			if err != nil {
				t.Fatalf("ParseTemplate(%q): %v", test.upstream, err)
			}
			path, raw := up.Expand(req)
			if path != test.wantPath || raw != test.wantRaw {
				t.Errorf("ParseTemplate(%q).Expand(%s): got (%q, %q), want (%q, %q)",
					test.upstream, test.target, path, raw, test.wantPath, test.wantRaw)
			}
			// The pair must be one that url.URL accepts as consistent.
			u := &url.URL{Path: path, RawPath: raw}
			if got := u.EscapedPath(); got != raw {
				t.Errorf("url.URL{Path: %q, RawPath: %q}.EscapedPath(): got %q, want %q", path, raw, got, raw)
			}
		})
	}
}

// TestExpandWithoutRequestPath covers path values that do not come from
// the request's own path, e.g. set by an earlier stage.
func TestExpandWithoutRequestPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc     string
		values   map[string]string
		upstream string
		wantPath string
		wantRaw  string
	}{
		{
			desc: "greedy segments escaped one by one", values: map[string]string{"p": "a b/c?d/e%f"}, upstream: "/x/{p+}",
			wantPath: "/x/a b/c?d/e%f", wantRaw: "/x/a%20b/c%3Fd/e%25f",
		},
		{
			desc: "greedy dot segments escaped", values: map[string]string{"p": "a/../b"}, upstream: "/x/{p+}",
			wantPath: "/x/a/../b", wantRaw: "/x/a/%2E%2E/b",
		},
		{
			desc: "single param with slash", values: map[string]string{"id": "1/2"}, upstream: "/x/{id}",
			wantPath: "/x/1/2", wantRaw: "/x/1%2F2",
		},
		{
			desc: "missing value", values: nil, upstream: "/x/{id}",
			wantPath: "/x/", wantRaw: "/x/",
		},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("GET", "/unrelated", nil)
			for k, v := range test.values {
				req.SetPathValue(k, v)
			}
			up, err := ParseTemplate(test.upstream)
			if err != nil {
				t.Fatalf("ParseTemplate(%q): %v", test.upstream, err)
			}
			path, raw := up.Expand(req)
			if path != test.wantPath || raw != test.wantRaw {
				t.Errorf("ParseTemplate(%q).Expand(%v): got (%q, %q), want (%q, %q)",
					test.upstream, test.values, path, raw, test.wantPath, test.wantRaw)
			}
		})
	}
}

func TestDecodedEqual(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		esc  string
		s    string
		want bool
	}{
		{desc: "plain", esc: "abc", s: "abc", want: true},
		{desc: "escaped", esc: "a%20c", s: "a c", want: true},
		{desc: "lower hex", esc: "%2f", s: "/", want: true},
		{desc: "longer", esc: "abc", s: "ab", want: false},
		{desc: "shorter", esc: "a%20", s: "a bc", want: false},
		{desc: "truncated escape", esc: "a%2", s: "a%2", want: false},
		{desc: "bad hex", esc: "%zz", s: "%zz", want: false},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			t.Parallel()
			if got := decodedEqual(test.esc, test.s); got != test.want {
				t.Errorf("decodedEqual(%q, %q): got %v, want %v", test.esc, test.s, got, test.want)
			}
		})
	}
}

func named(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(name))
	})
}
