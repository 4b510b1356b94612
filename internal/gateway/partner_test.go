package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/auth"
	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// partnerConfig is a gateway with one backend and the given routes and
// extra top-level YAML; {{UPSTREAM}} is the pinned backend upstream.
func partnerConfig(t *testing.T, routes, extra string) string {
	t.Helper()
	cert := backendCert(t)
	srv := backend(t, cert, nil)
	return listenerYAML + fmt.Sprintf(`
upstreams:
  onprem:
    targets: [%s]
    tls: {server_name: backend.internal, pins: [%q]}
routes:
%s
%s`, srv.URL, transport.SPKIPin(cert.Cert), routes, extra)
}

// addKey creates an API key for plan directly in the gateway's store.
func (h *harness) addKey(name, value, plan string) store.Key {
	h.t.Helper()
	k := store.Key{ID: "key_" + name, Name: name, Hash: auth.HashKey(value), Plan: plan, Enabled: true, CreatedAt: time.Now()}
	if err := h.g.store.CreateKey(context.Background(), k); err != nil {
		h.t.Fatalf("CreateKey(%s): %v", name, err)
	}
	return k
}

const goodKey = "abcdefghij0123456789ABCDEFGHIJ0123456789"

func TestAPIKeyRequired(t *testing.T) {
	t.Parallel()
	h := startGateway(t, partnerConfig(t, `  - path: /orders/{id}
    methods: [GET]
    upstream: onprem
    api_key_required: true
  - path: /public
    upstream: onprem`, `store: {type: memory}
plans:
  gold: {throttle: {rate: 1000, burst: 1000}}
`))
	h.addKey("acme", goodKey, "gold")
	tests := []struct {
		desc   string
		header []string
		status int
		body   string
	}{
		{"no key", nil, 403, `{"message":"Forbidden"}`},
		{"wrong key", []string{"x-api-key", "wrong-key-0123456789-wrong"}, 403, `{"message":"Forbidden"}`},
		{"empty key", []string{"x-api-key", ""}, 403, `{"message":"Forbidden"}`},
		{"10 kB key", []string{"x-api-key", strings.Repeat("k", 10<<10)}, 403, `{"message":"Forbidden"}`},
		{"non-ASCII key", []string{"x-api-key", "clé-" + goodKey}, 403, `{"message":"Forbidden"}`},
		{"good key", []string{"x-api-key", goodKey}, 200, "backend:/orders/1"},
	}
	for _, tc := range tests {
		got := h.do("GET", "/orders/1", nil, tc.header...)
		if got.status != tc.status || got.body != tc.body {
			t.Errorf("%s: got %d %s, want %d %s", tc.desc, got.status, got.body, tc.status, tc.body)
		}
	}
	if got := h.get("/public"); got.status != 200 {
		t.Errorf("route without api_key_required: got %d", got.status)
	}
	// Repeated x-api-key headers are refused, never guessed.
	req, _ := http.NewRequest("GET", h.base+"/orders/1", nil)
	req.Header["X-Api-Key"] = []string{goodKey, goodKey}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("repeated x-api-key: got %d, want 403", resp.StatusCode)
	}

	log, _ := os.ReadFile(filepath.Join(h.dir, "access.log"))
	if !strings.Contains(string(log), `"key_id":"key_acme"`) || !strings.Contains(string(log), `"plan":"gold"`) {
		t.Errorf("access log lacks the key id and plan:\n%s", log)
	}
	if strings.Contains(string(log), goodKey) {
		t.Errorf("access log contains the key value")
	}
	if !strings.Contains(h.adminGet("/metrics"), `drawbridge_rejected_total{reason="missing"} 2`) { // no key and an empty one
		t.Errorf("metrics do not count the missing key")
	}
}

func TestThrottleAndQuota(t *testing.T) {
	t.Parallel()
	h := startGateway(t, partnerConfig(t, `  - path: /x
    upstream: onprem
    api_key_required: true`, `store: {type: memory}
plans:
  tight: {throttle: {rate: 0.001, burst: 2}}
  small: {quota: {limit: 3, period: DAY}}
`))
	h.addKey("a", goodKey, "tight")
	h.addKey("b", "b-"+goodKey, "small")
	var statuses []string
	for range 3 {
		got := h.do("GET", "/x", nil, "x-api-key", goodKey)
		statuses = append(statuses, fmt.Sprint(got.status, " ", got.body))
	}
	want := []string{"200 backend:/x", "200 backend:/x", `429 {"message":"Too Many Requests"}`}
	if strings.Join(statuses, "|") != strings.Join(want, "|") {
		t.Errorf("throttle burst 2: got %q, want %q", statuses, want)
	}
	statuses = nil
	for range 4 {
		got := h.do("GET", "/x", nil, "x-api-key", "b-"+goodKey)
		statuses = append(statuses, fmt.Sprint(got.status, " ", got.body))
	}
	want = []string{"200 backend:/x", "200 backend:/x", "200 backend:/x", `429 {"message":"Limit Exceeded"}`}
	if strings.Join(statuses, "|") != strings.Join(want, "|") {
		t.Errorf("quota 3: got %q, want %q", statuses, want)
	}
	m := h.adminGet("/metrics")
	for _, w := range []string{`drawbridge_throttled_total{level="key",plan="tight"} 1`, `drawbridge_quota_exceeded_total{plan="small"} 1`} {
		if !strings.Contains(m, w) {
			t.Errorf("metrics lack %s", w)
		}
	}
}

// TestQuotaSurvivesRestart: with bolt, quota usage is the same after a
// clean restart.
func TestQuotaSurvivesRestart(t *testing.T) {
	t.Parallel()
	cfg := partnerConfig(t, `  - path: /x
    upstream: onprem
    api_key_required: true`, `store: {type: bolt, path: "{{DIR}}/state.db"}
plans:
  small: {quota: {limit: 5, period: MONTH}}
`)
	h := startGateway(t, cfg)
	h.addKey("a", goodKey, "small")
	for i := range 3 {
		if got := h.do("GET", "/x", nil, "x-api-key", goodKey); got.status != 200 {
			t.Fatalf("request %d before restart: got %d", i, got.status)
		}
	}
	h.stop()

	h2 := restartGateway(t, h)
	var statuses []int
	for range 3 {
		statuses = append(statuses, h2.do("GET", "/x", nil, "x-api-key", goodKey).status)
	}
	if fmt.Sprint(statuses) != "[200 200 429]" {
		t.Errorf("after restart, quota 5 with 3 used: got %v, want [200 200 429]", statuses)
	}
}

// restartGateway starts a new gateway on h's config file (same folder,
// same bolt file) after h stopped.
func restartGateway(t *testing.T, h *harness) *harness {
	t.Helper()
	h2 := &harness{t: t, dir: h.dir, cfg: h.cfg, logs: &syncBuffer{}, client: h.client}
	return h2.start()
}

func TestCORSAndIPRules(t *testing.T) {
	t.Parallel()
	h := startGateway(t, partnerConfig(t, `  - path: /cors
    methods: [GET]
    upstream: onprem
    api_key_required: true
    cors: {allow_origins: ["https://app.example.com"], allow_headers: [x-api-key]}
  - path: /denied
    upstream: onprem
    ip: {deny: [127.0.0.0/8]}
  - path: /allowed
    upstream: onprem
    ip: {allow: ["127.0.0.1", "::1/128"]}`, `store: {type: memory}`))
	got := h.do("OPTIONS", "/cors", nil, "Origin", "https://app.example.com", "Access-Control-Request-Method", "GET")
	if got.status != 204 || got.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("preflight without a key: got %d, allow-origin %q; want 204 from the gateway", got.status, got.header.Get("Access-Control-Allow-Origin"))
	}
	if got := h.get("/cors"); got.status != 403 {
		t.Errorf("GET /cors without a key: got %d, want 403", got.status)
	}
	got = h.get("/denied")
	if got.status != 403 || got.body != `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke"}` {
		t.Errorf("denied IP: got %d %s", got.status, got.body)
	}
	if got := h.get("/allowed"); got.status != 200 {
		t.Errorf("allowed IP: got %d", got.status)
	}
}

func TestClientCertRequired(t *testing.T) {
	t.Parallel()
	ca := certs.SelfSigned(t, certs.Options{CommonName: "partner CA", IsCA: true})
	partner := certs.SelfSigned(t, certs.Options{CommonName: "acme", Parent: ca})
	dir := t.TempDir()
	caFile := writePEM(t, dir, ca)
	cfg := partnerConfig(t, `  - path: /mtls
    upstream: onprem
    client_cert: required`, `partners:
  acme: {client_cert: {subjects: ["CN=acme,O=drawbridge tests"]}}`)
	cfg = strings.Replace(cfg, `tls: {cert: "{{FRONT_CERT}}", key: "{{FRONT_KEY}}"}`,
		fmt.Sprintf(`tls: {cert: "{{FRONT_CERT}}", key: "{{FRONT_KEY}}", client_ca: %q}`, caFile), 1)
	h := startGateway(t, cfg)
	if got := h.get("/mtls"); got.status != 403 {
		t.Errorf("no client certificate: got %d, want 403", got.status)
	}
	tr := h.client.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{partner.TLS}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(h.base + "/mtls")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("partner certificate: got %d, want 200", resp.StatusCode)
	}
}

// TestAmbiguousPathsRefused: a path the router and a backend could split
// differently never reaches a route (it could dodge a key-required one).
func TestAmbiguousPathsRefused(t *testing.T) {
	t.Parallel()
	h := startGateway(t, partnerConfig(t, `  - path: /admin/{x}
    upstream: onprem
    api_key_required: true
  - path: /{proxy+}
    upstream: onprem`, `store: {type: memory}`))
	for _, p := range []string{"/admin%2Fsecret", "/admin%2fsecret", "/admin;x=1/secret", "/admin%5Csecret", "/a/b;c",
		"/admin%3Bx=1/secret", "/admin%252Fsecret/%41", "/%61dmin%252fsecret", "/admin%255csecret"} {
		if got := h.get(p); got.status != 400 || got.body != `{"message":"Bad Request"}` {
			t.Errorf("GET %s: got %d %s, want 400", p, got.status, got.body)
		}
	}
	if got := h.get("/admin/secret"); got.status != 403 {
		t.Errorf("GET /admin/secret without a key: got %d, want 403", got.status)
	}
	if got := h.get("/other%20name/x"); got.status != 200 {
		t.Errorf("GET with an encoded space: got %d, want 200", got.status)
	}
}

// TestCORSRouteNonPreflightOPTIONS: OPTIONS was added to a GET route only
// for browsers' preflights; a plain OPTIONS must not reach the backend.
func TestCORSRouteNonPreflightOPTIONS(t *testing.T) {
	t.Parallel()
	h := startGateway(t, partnerConfig(t, `  - path: /cors
    methods: [GET]
    upstream: onprem
    cors: {allow_origins: ["https://app.example.com"]}`, `store: {type: memory}`))
	if got := h.do("OPTIONS", "/cors", nil); got.status != 403 || got.body != `{"message":"Missing Authentication Token"}` {
		t.Errorf("OPTIONS without preflight headers: got %d %s, want 403 Missing Authentication Token", got.status, got.body)
	}
	if got := h.get("/cors"); got.status != 200 {
		t.Errorf("GET /cors: got %d", got.status)
	}
}

func TestAmbiguousPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path string
		want bool
	}{
		{"/orders/42", false},
		{"/caf%C3%A9/x", false},
		{"/100%25/x", false},
		{"/a%25", false},
		{"/a%2", false},
		{"/a%2F", true},
		{"/a%5c", true},
		{"/a%3b", true},
		{"/a%252f", true},
		{"/a%255C", true},
		{"/a;b", true},
		{`/a\b`, true},
	}
	for _, tc := range tests {
		if got := ambiguousPath(tc.path); got != tc.want {
			t.Errorf("ambiguousPath(%q): got %v, want %v", tc.path, got, tc.want)
		}
	}
}

// TestCORSMethodsOfEveryRouteOnAPath: two routes share a path; the
// preflight (answered by one of them) allows the methods of both.
func TestCORSMethodsOfEveryRouteOnAPath(t *testing.T) {
	t.Parallel()
	h := startGateway(t, partnerConfig(t, `  - path: /orders
    methods: [GET]
    upstream: onprem
    cors: {allow_origins: ["https://app.example.com"]}
  - path: /orders
    methods: [POST, PUT]
    upstream: onprem
    cors: {allow_origins: ["https://app.example.com"]}`, `store: {type: memory}`))
	got := h.do("OPTIONS", "/orders", nil, "Origin", "https://app.example.com", "Access-Control-Request-Method", "PUT")
	allowed := got.header.Get("Access-Control-Allow-Methods")
	if got.status != 204 || !strings.Contains(allowed, "PUT") || !strings.Contains(allowed, "GET") {
		t.Errorf("preflight for PUT: got %d, Allow-Methods %q; want 204 listing GET, POST and PUT", got.status, allowed)
	}
}
