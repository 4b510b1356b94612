package integration

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseParameters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		key  string
		src  string
		want Mapping
		err  string
	}{
		{desc: "header from query", key: "integration.request.header.X-Kind", src: "method.request.querystring.kind",
			want: Mapping{TargetKind: "header", TargetName: "X-Kind", SourceKind: "querystring", SourceName: "kind"}},
		{desc: "query from path", key: "integration.request.querystring.id", src: "method.request.path.petId",
			want: Mapping{TargetKind: "querystring", TargetName: "id", SourceKind: "path", SourceName: "petId"}},
		{desc: "static", key: "integration.request.header.X-Src", src: "'gw'",
			want: Mapping{TargetKind: "header", TargetName: "X-Src", SourceKind: "literal", SourceName: "gw"}},
		{desc: "path target", key: "integration.request.path.id", src: "method.request.path.id", err: "mapped by upstream_path"},
		{desc: "smuggling header", key: "integration.request.header.transfer-encoding", src: "'chunked'", err: "cannot be mapped"},
		{desc: "request id", key: "integration.request.header.X-Req", src: "context.requestId",
			want: Mapping{TargetKind: "header", TargetName: "X-Req", SourceKind: "context", SourceName: "requestId"}},
		{desc: "source address", key: "integration.request.header.X-Client-Ip", src: "context.identity.sourceIp",
			want: Mapping{TargetKind: "header", TargetName: "X-Client-Ip", SourceKind: "context", SourceName: "identity.sourceIp"}},
		{desc: "unsupported context source", key: "integration.request.header.X", src: "context.authorizer.principalId", err: `source "context.authorizer.principalId"`},
		{desc: "header name with a space", key: "integration.request.header.X-A ", src: "'a'", err: `"X-A " is not a valid header name`},
		{desc: "literal with a line break", key: "integration.request.header.X-A", src: "'a\r\nX-Evil: 1'", err: "has control characters"},
		{desc: "literal with a line break to a query", key: "integration.request.querystring.a", src: "'a\r\nb'",
			want: Mapping{TargetKind: "querystring", TargetName: "a", SourceKind: "literal", SourceName: "a\r\nb"}},
		{desc: "Via", key: "integration.request.header.via", src: "'1.1 evil'", err: "cannot be mapped"},
		{desc: "Proxy-Authenticate", key: "integration.request.header.Proxy-Authenticate", src: "'x'", err: "cannot be mapped"},
		{desc: "X-Forwarded-Host", key: "integration.request.header.X-Forwarded-Host", src: "method.request.header.host", err: "cannot be mapped"},
		{desc: "X-Forwarded-Proto", key: "integration.request.header.x-forwarded-proto", src: "'http'", err: "cannot be mapped"},
		{desc: "not integration.request", key: "method.request.header.X", src: "'a'", err: "want integration.request.header.NAME"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			got, errs := ParseParameters(map[string]string{tc.key: tc.src})
			if tc.err != "" {
				if len(errs) != 1 || !strings.Contains(errs[0], tc.err) {
					t.Errorf("ParseParameters(%s=%s): errors %q, want one containing %q", tc.key, tc.src, errs, tc.err)
				}
				return
			}
			if len(errs) > 0 || len(got) != 1 || got[0] != tc.want {
				t.Errorf("ParseParameters(%s=%s) = %+v, %q; want %+v", tc.key, tc.src, got, errs, tc.want)
			}
		})
	}
}

func TestMapper(t *testing.T) {
	t.Parallel()
	params, errs := ParseParameters(map[string]string{
		"integration.request.header.X-Kind":        "method.request.querystring.kind",
		"integration.request.header.X-Id":          "method.request.path.id",
		"integration.request.querystring.tenant":   "method.request.header.X-Tenant",
		"integration.request.querystring.static":   "'yes'",
		"integration.request.header.X-Not-Present": "method.request.header.X-Absent",
	})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var got *http.Request
	h := New(Options{Parameters: params, Method: "POST"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r }))
	mux := http.NewServeMux()
	mux.Handle("/items/{id}", h)
	req := httptest.NewRequest("GET", "/items/42?kind=a&kind=b&keep=1", nil)
	req.Header.Set("X-Tenant", "acme")
	mux.ServeHTTP(httptest.NewRecorder(), req)
	if got == nil {
		t.Fatal("next was not called")
	}
	if got.Method != "POST" || got.Header.Get("X-Kind") != "a" || got.Header.Get("X-Id") != "42" || got.Header.Get("X-Not-Present") != "" {
		t.Errorf("mapped request: method %s, headers %v", got.Method, got.Header)
	}
	if q := got.URL.Query(); q.Get("tenant") != "acme" || q.Get("static") != "yes" || q.Get("keep") != "1" {
		t.Errorf("mapped query %q", got.URL.RawQuery)
	}
	if req.Method != "GET" || req.Header.Get("X-Kind") != "" {
		t.Errorf("the partner's request was changed: %s %v", req.Method, req.Header)
	}
}

// TestMapperOverridesPartnerValues: a mapped target is the gateway's, not
// the partner's, even when the mapping's source is absent.
func TestMapperOverridesPartnerValues(t *testing.T) {
	t.Parallel()
	params, errs := ParseParameters(map[string]string{
		"integration.request.header.X-Client-Ip":   "context.identity.sourceIp",
		"integration.request.header.X-Request":     "context.requestId",
		"integration.request.header.X-Tenant-Id":   "method.request.header.x-tenant",
		"integration.request.querystring.tenant":   "method.request.header.x-tenant",
		"integration.request.querystring.absent":   "method.request.querystring.nope",
		"integration.request.querystring.verified": "'yes'",
	})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var got *http.Request
	h := New(Options{Parameters: params}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r }))
	req := httptest.NewRequest("GET", "/a?z=1&tenant=evil&verified=no&absent=spoof&b=x;y&a=2", nil)
	req.RemoteAddr = "[::ffff:192.0.2.9]:4711"
	req.Header.Set("X-Client-Ip", "10.0.0.1")
	req.Header.Set("X-Request", "spoofed")
	req.Header.Set("X-Tenant-Id", "evil")
	rec := httptest.NewRecorder()
	rec.Header().Set("X-Amzn-Requestid", "req-1")
	h.ServeHTTP(rec, req)
	if got == nil {
		t.Fatal("next was not called")
	}
	for name, want := range map[string]string{"X-Client-Ip": "192.0.2.9", "X-Request": "req-1", "X-Tenant-Id": ""} {
		if v := got.Header.Values(name); (want == "" && len(v) != 0) || (want != "" && (len(v) != 1 || v[0] != want)) {
			t.Errorf("backend header %s = %q, want %q", name, v, want)
		}
	}
	// The partner's other pairs keep their order and bytes.
	if want := "z=1&b=x;y&a=2&verified=yes"; got.URL.RawQuery != want {
		t.Errorf("backend query %q, want %q", got.URL.RawQuery, want)
	}
}

// TestMapperKeepsRawQuery: with no query mapping, the partner's query
// reaches the backend byte for byte (url.Values.Encode would sort it and
// drop pairs with ';').
func TestMapperKeepsRawQuery(t *testing.T) {
	t.Parallel()
	params, _ := ParseParameters(map[string]string{"integration.request.header.X-A": "method.request.querystring.a"})
	var got *http.Request
	h := New(Options{Parameters: params}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r }))
	const raw = "z=1&b=x;y&a=%41&a=2"
	req := httptest.NewRequest("GET", "/q?"+raw, nil)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if got == nil || got.URL.RawQuery != raw || got.Header.Get("X-A") != "A" {
		t.Fatalf("backend request %v", got)
	}
	if req.Header.Get("X-A") != "" {
		t.Errorf("the partner's request was changed: %v", req.Header)
	}
}

// TestMapperRefusesInvalidHeaderValues: a partner's line break, decoded
// from the query or path into a mapped header, is the partner's mistake:
// 400, and the backend is not called.
func TestMapperRefusesInvalidHeaderValues(t *testing.T) {
	t.Parallel()
	params, errs := ParseParameters(map[string]string{"integration.request.header.X-Q": "method.request.querystring.q"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	called := false
	h := New(Options{Parameters: params}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true }))
	for _, q := range []string{"a%0d%0aX-Evil:%201", "a%00b", "a%0a"} {
		called = false
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/q?q="+q, nil))
		if rec.Code != 400 || called || rec.Header().Get("X-Amzn-Errortype") != "BadRequestException" {
			t.Errorf("q=%s: got %d %s (backend called: %v), want 400 BadRequestException", q, rec.Code, rec.Body, called)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/q?q=fine%20value", nil))
	if !called || rec.Code != 200 {
		t.Errorf("q=fine value: got %d, backend called %v", rec.Code, called)
	}
}

func TestMock(t *testing.T) {
	t.Parallel()
	h := NewMock(Mock{Status: 201, Body: `{"ok": true}`, Headers: map[string]string{"access-control-allow-origin": "*"}})
	for _, method := range []string{"GET", "HEAD"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/", nil))
		body, _ := io.ReadAll(rec.Body)
		wantBody := `{"ok": true}`
		if method == "HEAD" {
			wantBody = ""
		}
		if rec.Code != 201 || string(body) != wantBody || rec.Header().Get("Access-Control-Allow-Origin") != "*" ||
			rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Content-Length") != "12" {
			t.Errorf("%s: got %d %q %v", method, rec.Code, body, rec.Header())
		}
	}
}

func TestMockBodiless(t *testing.T) {
	t.Parallel()
	h := NewMock(Mock{Status: 204, Body: `{"ignored": true}`, Headers: map[string]string{"Content-Length": "2", "X-Ok": "yes"}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 204 || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != "" || rec.Header().Get("X-Ok") != "yes" {
		t.Errorf("mock 204: got %d %q %v; want 204, no body, no Content-Length", rec.Code, rec.Body, rec.Header())
	}
}

func TestStatusMap(t *testing.T) {
	t.Parallel()
	m, errs := StatusMap(map[string]int{`4\d{2}`: 400, "5..": 502, "default": 200})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for in, want := range map[int]int{404: 400, 418: 400, 503: 502, 200: 200, 201: 200, 302: 200} {
		if got := m(in); got != want {
			t.Errorf("status %d: got %d, want %d", in, got, want)
		}
	}
	noDefault, _ := StatusMap(map[string]int{"404": 200})
	// Without a default, an unmatched status is API Gateway's
	// configuration error: 0, which the proxy answers with 500.
	if noDefault(404) != 200 || noDefault(500) != 0 || noDefault(200) != 0 {
		t.Errorf("without default: 404 → %d, 500 → %d, 200 → %d; want 200, 0 and 0", noDefault(404), noDefault(500), noDefault(200))
	}
	if m, errs := StatusMap(nil); m != nil || errs != nil {
		t.Errorf("StatusMap(nil) = %v, %v; want nothing", m != nil, errs)
	}
	_, errs = StatusMap(map[string]int{"4(": 400, "default": 99})
	if len(errs) != 2 || !strings.Contains(errs[0], `status_map "4(": not a regular expression`) || !strings.Contains(errs[1], `status_map "default": 99 is not a final HTTP status`) {
		t.Errorf("errors %q", errs)
	}
}
