package validate

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const petSchema = `{"type":"object","required":["name"],"properties":{"name":{"type":"string","minLength":1},"age":{"type":"integer","minimum":0}}}`

func TestValidator(t *testing.T) {
	t.Parallel()
	var reached string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reached = string(b)
		w.WriteHeader(204)
	})
	h, err := New(Options{RequiredHeaders: []string{"x-tenant", "x-trace"}, RequiredQuery: []string{"page"}, BodySchema: petSchema, MaxBodyBytes: 64}, next)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc, method, query, body, ctype string
		headers                          map[string]string
		status                           int
		want                             string
	}{
		{desc: "valid", query: "?page=1", body: `{"name":"rex","age":3}`, headers: map[string]string{"x-tenant": "a", "x-trace": "b"}, status: 204},
		{desc: "all params missing: headers first, then query", body: `{}`, status: 400,
			want: `{"message": "Missing required request parameters: [x-tenant, x-trace, page]"}`},
		{desc: "empty value counts as missing", query: "?page=", headers: map[string]string{"x-tenant": "a", "x-trace": "b"}, status: 400,
			want: `{"message": "Missing required request parameters: [page]"}`},
		{desc: "schema violation", query: "?page=1", body: `{"name":"","age":-1}`, headers: map[string]string{"x-tenant": "a", "x-trace": "b"}, status: 400,
			want: `{"message": "Invalid request body"}`},
		{desc: "two JSON values", query: "?page=1", body: `{"name":"a"} {}`, headers: map[string]string{"x-tenant": "a", "x-trace": "b"}, status: 400,
			want: `{"message": "Invalid request body"}`},
		{desc: "empty body", query: "?page=1", headers: map[string]string{"x-tenant": "a", "x-trace": "b"}, status: 400,
			want: `{"message": "Invalid request body"}`},
		{desc: "GET without a body is not checked", method: "GET", query: "?page=1", headers: map[string]string{"x-tenant": "a", "x-trace": "b"}, status: 204},
		{desc: "other content type is not checked", query: "?page=1", body: `not json`, ctype: "text/plain", headers: map[string]string{"x-tenant": "a", "x-trace": "b"}, status: 204},
		{desc: "too large", query: "?page=1", body: `{"name":"` + strings.Repeat("a", 100) + `"}`, headers: map[string]string{"x-tenant": "a", "x-trace": "b"}, status: 413,
			want: `{"message":"Request Too Long"}`},
	}
	for _, tc := range tests {
		reached = ""
		method, body := "POST", io.Reader(strings.NewReader(tc.body))
		if tc.method != "" {
			method, body = tc.method, nil
		}
		req := httptest.NewRequest(method, "/pets"+tc.query, body)
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		for k, v := range tc.headers {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.status || (tc.want != "" && rec.Body.String() != tc.want) {
			t.Errorf("%s: got %d %s, want %d %s", tc.desc, rec.Code, rec.Body, tc.status, tc.want)
		}
		if tc.status == 204 && reached != tc.body {
			t.Errorf("%s: next got body %q, want %q", tc.desc, reached, tc.body)
		}
		if tc.status == 400 && rec.Header().Get("X-Amzn-Errortype") != "BadRequestException" {
			t.Errorf("%s: x-amzn-ErrorType %q", tc.desc, rec.Header().Get("X-Amzn-Errortype"))
		}
	}
}

// TestContentTypeBypass: a body the backend may read as JSON is checked,
// however its Content-Type is written.
func TestContentTypeBypass(t *testing.T) {
	t.Parallel()
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	h, err := New(Options{BodySchema: petSchema, MaxBodyBytes: 1 << 10}, next)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc   string
		ctypes []string
		status int
	}{
		{"plain", []string{"application/json"}, 400},
		{"upper case", []string{"Application/JSON"}, 400},
		{"charset", []string{"application/json; charset=utf-8"}, 400},
		{"parameter without a value", []string{"application/json; charset"}, 400},
		{"empty parameters", []string{"application/json;;"}, 400},
		{"a list naming JSON", []string{"application/json, text/plain"}, 400},
		{"a list naming JSON second", []string{"text/plain, application/json"}, 400},
		{"two headers", []string{"text/plain", "application/json"}, 400},
		{"two JSON headers", []string{"application/json", "application/json"}, 400},
		{"text/plain is not checked, as on AWS", []string{"text/plain"}, 204},
		{"+json is not checked, as on AWS", []string{"application/vnd.api+json"}, 204},
	}
	for _, tc := range tests {
		req := httptest.NewRequest("POST", "/pets", strings.NewReader(`{"evil":1}`))
		req.Header["Content-Type"] = tc.ctypes
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Errorf("%s: Content-Type %q: got %d %s, want %d", tc.desc, tc.ctypes, rec.Code, rec.Body, tc.status)
		}
	}
}

func TestCompileSchema(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{`{`, `{"type":"banana"}`, `{} {}`} {
		if _, err := CompileSchema(bad); err == nil {
			t.Errorf("CompileSchema(%s): no error", bad)
		}
	}
	if _, err := CompileSchema(petSchema); err != nil {
		t.Errorf("CompileSchema(petSchema): %v", err)
	}
}

func TestNothingToCheckReturnsNext(t *testing.T) {
	t.Parallel()
	next := http.NotFoundHandler()
	h, err := New(Options{}, next)
	if err != nil || h == nil {
		t.Fatalf("New(empty) = %v, %v", h, err)
	}
	if _, err := New(Options{BodySchema: petSchema}, next); err == nil {
		t.Error("New with a body schema and no MaxBodyBytes: no error")
	}
}

// TestConcurrentRequests: one compiled validator serves many requests at
// once (run with -race).
func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	const schema30 = `{"type":"object","required":["code"],"properties":{"code":{"type":"string","pattern":"^[A-Z]{3}$"},"n":{"type":"integer","maximum":10}}}`
	for _, schema := range []string{schema30, `{"$schema":"` + Dialect2020 + `",` + schema30[1:]} {
		concurrentRequests(t, schema)
	}
}

func concurrentRequests(t *testing.T, schema string) {
	h, err := New(Options{BodySchema: schema, MaxBodyBytes: 1 << 10}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 8)
	for g := range 8 {
		go func() {
			bad := ""
			for i := range 50 {
				body, want := `{"code":"ABC","n":1}`, 204
				if (g+i)%2 == 1 {
					body, want = `{"code":"abc","n":11}`, 400
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(body)))
				if rec.Code != want {
					bad = body + ": got " + rec.Result().Status
				}
			}
			done <- bad
		}()
	}
	for range 8 {
		if bad := <-done; bad != "" {
			t.Error(bad)
		}
	}
}

// TestJSONSchema2020CompiledOnce: a 2020-12 model is compiled when the
// route is built, not on every request (kin-openapi's 2020-12 check built
// a compiler per call: hundreds of allocations).
func TestJSONSchema2020CompiledOnce(t *testing.T) {
	s, err := CompileSchema(`{"$schema":"` + Dialect2020 + `","type":"object","required":["name"],"properties":{"name":{"type":"string"}},"additionalProperties":false}`)
	if err != nil {
		t.Fatal(err)
	}
	v := map[string]any{"name": "rex"}
	allocs := testing.AllocsPerRun(50, func() {
		if err := s.Check(v); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 50 {
		t.Errorf("Check allocates %.0f times per call; want a precompiled schema (a handful)", allocs)
	}
	if _, err := CompileSchema(`{"$schema":"` + Dialect2020 + `","$ref":"file:///etc/passwd"}`); err == nil || !strings.Contains(err.Error(), "self-contained") {
		t.Errorf("a 2020-12 model with an external $ref: %v; want it refused", err)
	}
}

func TestJSONSchema2020(t *testing.T) {
	t.Parallel()
	s, err := CompileSchema(`{"$schema":"` + Dialect2020 + `","type":["object","null"],"properties":{"a":{"const":"x"},"b":{"type":["string","null"]}}}`)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		v  any
		ok bool
	}{
		{nil, true},
		{map[string]any{"a": "x"}, true},
		{map[string]any{"b": nil}, true},
		{map[string]any{"a": "y"}, false},
		{map[string]any{"b": 3.0}, false},
		{"str", false},
	}
	for _, tc := range tests {
		if err := s.Check(tc.v); (err == nil) != tc.ok {
			t.Errorf("Check(%v) = %v, want ok=%v", tc.v, err, tc.ok)
		}
	}
	if _, err := CompileSchema(`{"type":["object","null"]}`); err == nil {
		t.Error("a type list without the 2020-12 $schema compiled; OpenAPI 3.0 schemas have one type")
	}
}
