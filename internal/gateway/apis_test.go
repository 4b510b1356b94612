package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// seen is what a backend received.
type seen struct {
	Method, Path, Query, Body string
	Header                    http.Header
}

// recordingBackend is a real self-signed HTTPS backend that remembers every
// request it got.
type recordingBackend struct {
	mu   sync.Mutex
	reqs []seen
	url  string
	pin  string
}

func newRecordingBackend(t *testing.T) *recordingBackend {
	t.Helper()
	rb := &recordingBackend{}
	cert := backendCert(t)
	srv := backend(t, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rb.mu.Lock()
		rb.reqs = append(rb.reqs, seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(b), Header: r.Header.Clone()})
		rb.mu.Unlock()
		if s := r.Header.Get("X-Want-Status"); s != "" {
			code, _ := strconv.Atoi(s)
			w.WriteHeader(code)
		}
		io.WriteString(w, "backend")
	}))
	rb.url, rb.pin = srv.URL, transport.SPKIPin(cert.Cert)
	return rb
}

// take returns and forgets the requests seen so far.
func (rb *recordingBackend) take() []seen {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	out := rb.reqs
	rb.reqs = nil
	return out
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "openapi", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// writeDefinition writes an API definition into a temporary folder and
// returns its path.
func writeDefinition(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startAPIGateway starts a gateway whose one upstream, named upstream, is
// rb, serving the definition def through apis:, with apiLines added to
// that entry (each indented four spaces) and tail after the memory store.
func startAPIGateway(t *testing.T, rb *recordingBackend, upstream, def, apiLines, tail string) *harness {
	t.Helper()
	return startGateway(t, listenerYAML+fmt.Sprintf(`
upstreams:
  %s:
    targets: [%s]
    tls: {server_name: backend.internal, pins: [%q]}
apis:
  - openapi: %q
%s
store: {type: memory}
%s
`, upstream, rb.url, rb.pin, def, apiLines, tail))
}

// TestAPIsEndToEnd imports the PetStore fixture through the config's apis:
// and calls each route through a real listener to a real self-signed
// backend, checking what the backend saw and what the partner got.
func TestAPIsEndToEnd(t *testing.T) {
	t.Parallel()
	rb := newRecordingBackend(t)
	h := startAPIGateway(t, rb, "onprem", fixture(t, "petstore-oas30.yaml"), `    upstreams: {petstore.example.com: onprem}`, `plans:
  gold: {throttle: {rate: 1000, burst: 1000}}`)
	h.addKey("acme", goodKey, "gold")
	key := []string{"x-api-key", goodKey}
	with := func(extra ...string) []string { return append(append([]string{}, key...), extra...) }

	tests := []struct {
		desc, method, path, body string
		header                   []string
		status                   int
		respBody                 string
		errorType                string
		respHeader               map[string]string
		// backend is what the backend must have seen; nil: not called.
		backend *seen
	}{
		{desc: "http integration maps query and static header", method: "GET", path: "/pets?type=dog&page=2", header: key,
			status: 200, respBody: "backend",
			backend: &seen{Method: "GET", Path: "/api/v1/pets", Query: "type=dog&kind=dog&page=2", Header: http.Header{"X-Source": {"drawbridge"}}}},
		{desc: "http integration: a lone default response makes every status 200", method: "GET", path: "/pets?type=dog&page=2", header: with("X-Want-Status", "404"),
			status: 200, respBody: "backend", backend: &seen{Method: "GET", Path: "/api/v1/pets", Query: "type=dog&kind=dog&page=2"}},
		{desc: "http_proxy: the backend's status passes through", method: "GET", path: "/pets/7", header: []string{"X-Want-Status", "404"},
			status: 404, respBody: "backend", backend: &seen{Method: "GET", Path: "/api/v1/pets/7"}},
		{desc: "required query parameter missing", method: "GET", path: "/pets?type=dog", header: key,
			status: 400, respBody: `{"message": "Missing required request parameters: [page]"}`, errorType: "BadRequestException"},
		{desc: "the key is checked before the validator", method: "GET", path: "/pets?type=dog",
			status: 403, respBody: `{"message":"Forbidden"}`, errorType: "ForbiddenException"},
		{desc: "valid body reaches the backend with the mapped header", method: "POST", path: "/pets", body: `{"name":"rex","type":"dog"}`,
			header: with("x-tenant", "t1", "content-type", "application/json"), status: 200, respBody: "backend",
			backend: &seen{Method: "POST", Path: "/api/v1/pets", Body: `{"name":"rex","type":"dog"}`, Header: http.Header{"X-Tenant-Id": {"t1"}, "X-Tenant": {"t1"}}}},
		{desc: "required header missing", method: "POST", path: "/pets", body: `{"name":"rex","type":"dog"}`, header: key,
			status: 400, respBody: `{"message": "Missing required request parameters: [x-tenant]"}`, errorType: "BadRequestException"},
		{desc: "body against the model: enum", method: "POST", path: "/pets", body: `{"name":"rex","type":"lion"}`, header: with("x-tenant", "t1"),
			status: 400, respBody: `{"message": "Invalid request body"}`, errorType: "BadRequestException"},
		{desc: "body against the model: not JSON", method: "POST", path: "/pets", body: `{"name":`, header: with("x-tenant", "t1"),
			status: 400, respBody: `{"message": "Invalid request body"}`, errorType: "BadRequestException"},
		{desc: "path parameter renamed into the upstream path", method: "GET", path: "/pets/42",
			status: 200, respBody: "backend", backend: &seen{Method: "GET", Path: "/api/v1/pets/42"}},
		{desc: "mock CORS preflight", method: "OPTIONS", path: "/pets",
			status: 200, respBody: "{}", respHeader: map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET,POST,OPTIONS"}},
		{desc: "mock health check", method: "GET", path: "/health", status: 200, respBody: `{"status": "ok"}`,
			respHeader: map[string]string{"Content-Type": "application/json"}},
		// The definition's gateway responses: MISSING_AUTHENTICATION_TOKEN
		// with its own status and template, DEFAULT_4XX's header on every 4xx.
		{desc: "undeclared method, customized", method: "DELETE", path: "/pets", header: key,
			status: 404, respBody: `{"message": "Missing Authentication Token", "type": "MISSING_AUTHENTICATION_TOKEN", "requestId": "{{ID}}"}`,
			errorType: "MissingAuthenticationTokenException", respHeader: map[string]string{"Access-Control-Allow-Origin": "*"}},
		{desc: "a 4xx inherits DEFAULT_4XX", method: "GET", path: "/pets?type=dog", header: key,
			status: 400, respBody: `{"message": "Missing required request parameters: [page]"}`, errorType: "BadRequestException",
			respHeader: map[string]string{"Access-Control-Allow-Origin": "*"}},
	}
	for _, tc := range tests {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		got := h.do(tc.method, tc.path, body, tc.header...)
		tc.respBody = strings.ReplaceAll(tc.respBody, "{{ID}}", got.header.Get("X-Amzn-Requestid"))
		if got.status != tc.status || got.body != tc.respBody {
			t.Errorf("%s: %s %s: got %d %s, want %d %s", tc.desc, tc.method, tc.path, got.status, got.body, tc.status, tc.respBody)
		}
		if et := got.header.Get("X-Amzn-Errortype"); et != tc.errorType {
			t.Errorf("%s: x-amzn-ErrorType %q, want %q", tc.desc, et, tc.errorType)
		}
		for k, v := range tc.respHeader {
			if g := got.header.Get(k); g != v {
				t.Errorf("%s: response header %s = %q, want %q", tc.desc, k, g, v)
			}
		}
		reqs := rb.take()
		switch {
		case tc.backend == nil && len(reqs) > 0:
			t.Errorf("%s: the backend was called: %+v", tc.desc, reqs)
		case tc.backend != nil && len(reqs) != 1:
			t.Errorf("%s: the backend got %d requests, want 1", tc.desc, len(reqs))
		case tc.backend != nil:
			checkSeen(t, tc.desc, reqs[0], *tc.backend)
		}
	}
}

func checkSeen(t *testing.T, desc string, got, want seen) {
	t.Helper()
	if got.Method != want.Method || got.Path != want.Path || got.Query != want.Query || got.Body != want.Body {
		g, _ := json.Marshal(seen{Method: got.Method, Path: got.Path, Query: got.Query, Body: got.Body})
		w, _ := json.Marshal(seen{Method: want.Method, Path: want.Path, Query: want.Query, Body: want.Body})
		t.Errorf("%s: backend saw %s, want %s", desc, g, w)
	}
	for k, v := range want.Header {
		if g := got.Header.Values(k); strings.Join(g, ",") != strings.Join(v, ",") {
			t.Errorf("%s: backend header %s = %q, want %q", desc, k, g, v)
		}
	}
}

// TestAPIsProxyEndToEnd: a Swagger 2.0 {proxy+} ANY method over a VPC
// link whose connectionId is a stage variable, served at / and at /prod.
func TestAPIsProxyEndToEnd(t *testing.T) {
	t.Parallel()
	rb := newRecordingBackend(t)
	h := startAPIGateway(t, rb, "orders", fixture(t, "proxy-swagger2.json"), `    stage: prod
    stage_variables: {vpcLinkId: vl-abc}
    upstreams: {vl-abc: orders}
    base_paths: [/, /prod]`, `plans:
  gold: {throttle: {rate: 1000, burst: 1000}}`)
	h.addKey("acme", goodKey, "gold")
	// GET / requires a key (a Swagger 2.0 securityDefinitions apiKey).
	if got := h.get("/"); got.status != 403 || got.body != `{"message":"Forbidden"}` {
		t.Errorf("GET / without a key: got %d %s, want 403 Forbidden", got.status, got.body)
	}
	tests := []struct {
		method, path, body string
		status             int
		want               seen
	}{
		{"GET", "/", "", 200, seen{Method: "GET", Path: "/"}},
		{"PUT", "/orders/7/lines?x=1&y=two", `{"sku":"a1","qty":2}`, 200, seen{Method: "PUT", Path: "/orders/7/lines", Query: "x=1&y=two", Body: `{"sku":"a1","qty":2}`}},
		{"DELETE", "/a", "", 200, seen{Method: "DELETE", Path: "/a"}},
		// The execute-api URL shape: the stage is not part of the backend path.
		{"GET", "/prod", "", 200, seen{Method: "GET", Path: "/"}},
		{"PATCH", "/prod/orders/7?x=1", `{"sku":"b"}`, 200, seen{Method: "PATCH", Path: "/orders/7", Query: "x=1", Body: `{"sku":"b"}`}},
		// The ANY method's model, a Swagger 2.0 body parameter's $ref.
		{"POST", "/orders", `{"qty":0}`, 400, seen{}},
	}
	for _, tc := range tests {
		var body io.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		got := h.do(tc.method, tc.path, body, "x-api-key", goodKey)
		want := "backend"
		if tc.status == 400 {
			want = `{"message": "Invalid request body"}`
		}
		if got.status != tc.status || got.body != want {
			t.Errorf("%s %s: got %d %s, want %d %s", tc.method, tc.path, got.status, got.body, tc.status, want)
		}
		reqs := rb.take()
		if tc.status != 200 {
			if len(reqs) > 0 {
				t.Errorf("%s %s: the backend was called", tc.method, tc.path)
			}
			continue
		}
		if len(reqs) != 1 {
			t.Errorf("%s %s: the backend got %d requests, want 1", tc.method, tc.path, len(reqs))
			continue
		}
		checkSeen(t, tc.method+" "+tc.path, reqs[0], tc.want)
	}
}

// TestAPIsResourcePolicy: x-amazon-apigateway-policy's aws:SourceIp
// conditions become ip rules. The fixture allows 203.0.113.0/24; a copy
// allows this client (127.0.0.1) instead.
func TestAPIsResourcePolicy(t *testing.T) {
	t.Parallel()
	orig, err := os.ReadFile(fixture(t, "policy-oas30.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "policy-local.yaml")
	if err := os.WriteFile(local, []byte(strings.Replace(string(orig), "203.0.113.0/24", "127.0.0.0/8", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	denied := `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke"}`
	tests := []struct {
		desc, definition string
		getStatus        int
	}{
		{"client outside the allowed ranges", fixture(t, "policy-oas30.yaml"), 403},
		{"client inside the allowed ranges", local, 200},
	}
	for _, tc := range tests {
		rb := newRecordingBackend(t)
		h := startAPIGateway(t, rb, "orders", tc.definition, `    stage: prod
    upstreams: {orders.example.com: orders}`, "")
		if got := h.do("GET", "/orders/1", nil); got.status != tc.getStatus || (tc.getStatus == 403 && got.body != denied) {
			t.Errorf("%s: GET /orders/1: got %d %s, want %d", tc.desc, got.status, got.body, tc.getStatus)
		}
		// DELETE is denied to everyone in stage prod.
		if got := h.do("DELETE", "/orders/1", nil); got.status != 403 || got.body != denied {
			t.Errorf("%s: DELETE /orders/1: got %d %s, want 403 AccessDenied", tc.desc, got.status, got.body)
		}
		wantCalls := 0
		if tc.getStatus == 200 {
			wantCalls = 1
		}
		if reqs := rb.take(); len(reqs) != wantCalls {
			t.Errorf("%s: the backend got %d requests, want %d", tc.desc, len(reqs), wantCalls)
		}
	}
}

// TestAPIsMappedHeadersAreTheGateways: headers a definition maps are set
// by the gateway; a partner's own header of that name never reaches the
// backend, even when the mapping's source is absent.
func TestAPIsMappedHeadersAreTheGateways(t *testing.T) {
	t.Parallel()
	def := writeDefinition(t, "spoof.yaml", `openapi: 3.0.1
info: {title: t, version: "1"}
paths:
  /s:
    get:
      x-amazon-apigateway-integration:
        type: http
        httpMethod: GET
        uri: "https://b.example.com/s"
        requestParameters:
          integration.request.header.X-Client-Ip: "context.identity.sourceIp"
          integration.request.header.X-Request: "context.requestId"
          integration.request.header.X-Tenant-Id: "method.request.header.x-tenant"
`)
	rb := newRecordingBackend(t)
	h := startAPIGateway(t, rb, "onprem", def, `    upstreams: {b.example.com: onprem}`, "")
	got := h.do("GET", "/s", nil, "X-Client-Ip", "10.9.9.9", "X-Tenant-Id", "evil", "X-Request", "spoofed")
	if got.status != 200 {
		t.Fatalf("GET /s: got %d %s, want 200", got.status, got.body)
	}
	reqs := rb.take()
	if len(reqs) != 1 {
		t.Fatalf("the backend got %d requests, want 1", len(reqs))
	}
	hd := reqs[0].Header
	if v := hd.Values("X-Client-Ip"); len(v) != 1 || v[0] != "127.0.0.1" {
		t.Errorf("backend X-Client-Ip %q, want the partner's address 127.0.0.1", v)
	}
	if v := hd.Values("X-Tenant-Id"); len(v) != 0 {
		t.Errorf("backend X-Tenant-Id %q, want none (the partner sent no x-tenant)", v)
	}
	if v, want := hd.Values("X-Request"), got.header.Get("X-Amzn-Requestid"); len(v) != 1 || v[0] != want || want == "" {
		t.Errorf("backend X-Request %q, want the request id %q", v, want)
	}
}

// TestAPIsStatusMapToNoContent: an integration response mapping the
// backend's status to 204 drops the backend's body instead of breaking
// the response.
func TestAPIsStatusMapToNoContent(t *testing.T) {
	t.Parallel()
	def := writeDefinition(t, "nocontent.yaml", `openapi: 3.0.1
info: {title: t, version: "1"}
paths:
  /x:
    get:
      x-amazon-apigateway-integration:
        type: http
        httpMethod: GET
        uri: "https://b.example.com/x"
        responses:
          default: {statusCode: "204"}
`)
	rb := newRecordingBackend(t)
	h := startAPIGateway(t, rb, "onprem", def, `    upstreams: {b.example.com: onprem}`, "")
	for range 2 { // the connection stays usable
		if got := h.get("/x"); got.status != 204 || got.body != "" {
			t.Errorf("GET /x: got %d %q, want 204 and no body", got.status, got.body)
		}
	}
	if n := len(rb.take()); n != 2 {
		t.Errorf("the backend got %d requests, want 2", n)
	}
}

// TestAPIsBasePathsShareLimits: the base-path copies of one method are
// one method: they share the stage throttle's bucket, and a plan's
// per-method throttle, keyed by the definition's path, applies under
// every base path.
func TestAPIsBasePathsShareLimits(t *testing.T) {
	t.Parallel()
	def := writeDefinition(t, "limits.yaml", `openapi: 3.0.1
info: {title: t, version: "1"}
components:
  securitySchemes:
    api_key: {type: apiKey, name: x-api-key, in: header}
paths:
  /x:
    get:
      x-amazon-apigateway-integration: {type: http_proxy, httpMethod: GET, uri: "https://b.example.com/x"}
  /y:
    get:
      security: [{api_key: []}]
      x-amazon-apigateway-integration: {type: http_proxy, httpMethod: GET, uri: "https://b.example.com/y"}
`)
	rb := newRecordingBackend(t)
	h := startAPIGateway(t, rb, "onprem", def, `    stage: prod
    upstreams: {b.example.com: onprem}
    base_paths: [/, /prod]
    throttle: {rate: 0.001, burst: 2}`, `plans:
  gold:
    methods: {"GET /y": {rate: 0.001, burst: 1}}`)
	h.addKey("acme", goodKey, "gold")
	var got []int
	for _, p := range []string{"/x", "/prod/x", "/x"} {
		got = append(got, h.get(p).status)
	}
	if fmt.Sprint(got) != "[200 200 429]" {
		t.Errorf("GET /x, /prod/x, /x under a stage throttle of burst 2: got %v, want [200 200 429]", got)
	}
	got = nil
	for _, p := range []string{"/y", "/prod/y"} {
		got = append(got, h.do("GET", p, nil, "x-api-key", goodKey).status)
	}
	if fmt.Sprint(got) != "[200 429]" {
		t.Errorf("GET /y, /prod/y under the plan's GET /y throttle of burst 1: got %v, want [200 429]", got)
	}
}

// TestAPIsStatusMapWithoutDefault: a backend status no integration
// response matches, with no default, is answered as API Gateway does: 500
// Internal server error, not the backend's answer.
func TestAPIsStatusMapWithoutDefault(t *testing.T) {
	t.Parallel()
	def := writeDefinition(t, "nodefault.yaml", `openapi: 3.0.1
info: {title: t, version: "1"}
paths:
  /x:
    get:
      x-amazon-apigateway-integration:
        type: http
        httpMethod: GET
        uri: "https://b.example.com/x"
        responses:
          "4\\d{2}": {statusCode: "400"}
          "200": {statusCode: "200"}
`)
	rb := newRecordingBackend(t)
	h := startAPIGateway(t, rb, "onprem", def, `    upstreams: {b.example.com: onprem}`, "")
	tests := []struct {
		backendStatus string
		status        int
		body          string
	}{
		{"200", 200, "backend"},
		{"404", 400, "backend"},
		{"503", 500, `{"message": "Internal server error"}`},
	}
	for _, tc := range tests {
		got := h.do("GET", "/x", nil, "X-Want-Status", tc.backendStatus)
		if got.status != tc.status || got.body != tc.body {
			t.Errorf("backend %s: got %d %s, want %d %s", tc.backendStatus, got.status, got.body, tc.status, tc.body)
		}
	}
}

// TestAPIsReloadKeepsServingOnBrokenDefinition: a definition under apis:
// that became broken fails the reload, and the old config serves on; once
// fixed, the next reload applies it.
func TestAPIsReloadKeepsServingOnBrokenDefinition(t *testing.T) {
	t.Parallel()
	def := filepath.Join(t.TempDir(), "api.yaml")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(def, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const head = "openapi: 3.0.1\ninfo: {title: t, version: \"1\"}\npaths:\n"
	const a = "  /a:\n    get:\n      x-amazon-apigateway-integration: {type: http_proxy, httpMethod: GET, uri: \"https://b.example.com/a\"}\n"
	const b = "  /b:\n    get:\n      x-amazon-apigateway-integration: {type: http_proxy, httpMethod: GET, uri: \"https://b.example.com/b\"}\n"
	write(head + a)
	rb := newRecordingBackend(t)
	h := startAPIGateway(t, rb, "onprem", def, `    upstreams: {b.example.com: onprem}`, "")
	if got := h.get("/a"); got.status != 200 {
		t.Fatalf("GET /a: got %d, want 200", got.status)
	}
	broken := []struct{ desc, text, want string }{
		{"not YAML", "{[", "not JSON or YAML"},
		{"a Lambda method", head + a + "  /c:\n    get:\n      x-amazon-apigateway-integration: {type: aws_proxy, httpMethod: POST, uri: \"arn:aws:apigateway:eu-west-1:lambda:path/f\"}\n", "aws_proxy"},
		{"gone", "", "not an OpenAPI definition"},
	}
	for _, tc := range broken {
		write(tc.text)
		if err := h.g.Reload(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Reload with the definition %s: got %v, want an error containing %q", tc.desc, err, tc.want)
		}
		if got := h.get("/a"); got.status != 200 {
			t.Errorf("after a failed reload (%s): GET /a got %d, want the old config serving", tc.desc, got.status)
		}
	}
	write(head + a + b)
	if err := h.g.Reload(); err != nil {
		t.Fatalf("Reload with the definition fixed: %v", err)
	}
	if got := h.get("/b"); got.status != 200 {
		t.Errorf("after reload: GET /b got %d, want 200", got.status)
	}
}
