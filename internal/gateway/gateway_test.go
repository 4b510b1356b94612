package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

const listenerYAML = `
listeners:
  - name: public
    addr: 127.0.0.1:0
    tls: {cert: "{{FRONT_CERT}}", key: "{{FRONT_KEY}}"}
admin: {addr: 127.0.0.1:0}
log: {access: "{{DIR}}/access.log"}
`

// oneUpstream is a config with one upstream "onprem" at target with the
// given tls block, and a catch-all route to it.
func oneUpstream(target, tlsBlock string) string {
	return listenerYAML + fmt.Sprintf(`
upstreams:
  onprem:
    targets: [%s]
    tls: %s
routes:
  - path: /{proxy+}
    upstream: onprem
`, target, tlsBlock)
}

// TestUpstreamVerification is the heart of drawbridge: a self-signed
// backend is reached only when its certificate is verified, and every
// refusal is a 502 to the partner with the reason in the log.
func TestUpstreamVerification(t *testing.T) {
	t.Parallel()
	genuine := backendCert(t)
	next := backendCert(t) // the key the backend rotates to
	rogue := backendCert(t)
	expired := certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	pin := transport.SPKIPin(genuine.Cert)

	tests := []struct {
		desc       string
		served     *certs.Cert
		tlsBlock   func(dir string) string
		wantStatus int
		wantLog    string
	}{
		{"ca file is the self-signed cert", genuine, func(dir string) string {
			return fmt.Sprintf(`{server_name: backend.internal, ca: %q}`, writePEM(t, dir, genuine))
		}, 200, ""},
		{"pin alone", genuine, func(string) string {
			return fmt.Sprintf(`{server_name: backend.internal, pins: [%q]}`, pin)
		}, 200, ""},
		{"rotation: old and new pin, backend on new key", next, func(string) string {
			return fmt.Sprintf(`{server_name: backend.internal, pins: [%q, %q]}`, pin, transport.SPKIPin(next.Cert))
		}, 200, ""},
		{"rogue key, same name, pinned", rogue, func(string) string {
			return fmt.Sprintf(`{server_name: backend.internal, pins: [%q]}`, pin)
		}, 502, "pin mismatch"},
		{"rogue key, same name, ca", rogue, func(dir string) string {
			return fmt.Sprintf(`{server_name: backend.internal, ca: %q}`, writePEM(t, dir, genuine))
		}, 502, "unknown authority"},
		{"wrong name", genuine, func(dir string) string {
			return fmt.Sprintf(`{server_name: other.internal, ca: %q}`, writePEM(t, dir, genuine))
		}, 502, "name mismatch"},
		{"expired, ca", expired, func(dir string) string {
			return fmt.Sprintf(`{server_name: backend.internal, ca: %q}`, writePEM(t, dir, expired))
		}, 502, "expired"},
		{"expired, pinned", expired, func(string) string {
			return fmt.Sprintf(`{server_name: backend.internal, pins: [%q]}`, transport.SPKIPin(expired.Cert))
		}, 502, "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			srv := backend(t, tc.served, nil)
			dir := t.TempDir()
			h := startGateway(t, oneUpstream(srv.URL, tc.tlsBlock(dir)))
			got := h.get("/orders/42?x=1")
			if got.status != tc.wantStatus {
				t.Fatalf("GET /orders/42: got status %d, want %d (body %s)\nlogs:\n%s", got.status, tc.wantStatus, got.body, h.logs)
			}
			if tc.wantStatus == 200 {
				if got.body != "backend:/orders/42?x=1" {
					t.Errorf("GET /orders/42: got body %q, want the backend's answer", got.body)
				}
				return
			}
			if want := `{"message": "Internal server error"}`; got.body != want {
				t.Errorf("GET /orders/42: got body %s, want %s", got.body, want)
			}
			if !strings.Contains(h.logs.String(), tc.wantLog) {
				t.Errorf("log does not name the reason %q:\n%s", tc.wantLog, h.logs)
			}
		})
	}
}

func TestPlaintextUpstreamOnlyWithOptIn(t *testing.T) {
	t.Parallel()
	plain := newPlainBackend(t)
	h := startGateway(t, listenerYAML+fmt.Sprintf(`
upstreams:
  legacy:
    targets: [%s]
    allow_insecure: true
routes:
  - path: /{proxy+}
    upstream: legacy
`, plain))
	if got := h.get("/x"); got.status != 200 {
		t.Fatalf("GET /x through an opted-in http upstream: got %d, want 200", got.status)
	}
	if !strings.Contains(h.logs.String(), "insecure opt-in") || !strings.Contains(h.logs.String(), `upstream \"legacy\"`) {
		t.Errorf("start did not warn about the insecure upstream by name:\n%s", h.logs)
	}
}

func newPlainBackend(t *testing.T) string {
	t.Helper()
	srv := httpTestServer(t)
	return srv
}

func TestGatewayResponses(t *testing.T) {
	t.Parallel()
	srv := backend(t, backendCert(t), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/slow" {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "backend:%s", r.URL.Path)
	}))
	pin := transport.SPKIPin(srv.TLS.Certificates[0].Leaf)
	h := startGateway(t, strings.Replace(listenerYAML, `addr: 127.0.0.1:0
    tls`, `addr: 127.0.0.1:0
    max_body_bytes: 1024
    tls`, 1)+fmt.Sprintf(`
upstreams:
  onprem:
    targets: [%s]
    tls: {server_name: backend.internal, pins: [%q]}
routes:
  - path: /orders/{id}
    methods: [GET, POST]
    upstream: onprem
    upstream_path: /api/v1/orders/{id}
  - path: /slow
    upstream: onprem
    upstream_path: /api/slow
    timeout: 200ms
`, srv.URL, pin))

	tests := []struct {
		desc      string
		method    string
		path      string
		body      string
		chunked   bool
		status    int
		wantBody  string
		errorType string
	}{
		{desc: "rewritten path", method: "GET", path: "/orders/42", status: 200, wantBody: "backend:/api/v1/orders/42"},
		{desc: "unknown resource", method: "GET", path: "/nope", status: 403, wantBody: `{"message":"Missing Authentication Token"}`, errorType: "MissingAuthenticationTokenException"},
		{desc: "undeclared method on a known resource", method: "DELETE", path: "/orders/42", status: 403, wantBody: `{"message":"Missing Authentication Token"}`, errorType: "MissingAuthenticationTokenException"},
		{desc: "route timeout", method: "GET", path: "/slow", status: 504, wantBody: `{"message": "Endpoint request timed out"}`, errorType: "InternalServerErrorException"},
		{desc: "body within the limit", method: "POST", path: "/orders/1", body: strings.Repeat("a", 1024), status: 200, wantBody: "backend:/api/v1/orders/1"},
		{desc: "body over the limit", method: "POST", path: "/orders/1", body: strings.Repeat("a", 1025), status: 413, wantBody: `{"message":"Request Too Long"}`, errorType: "RequestTooLargeException"},
		{desc: "chunked body over the limit", method: "POST", path: "/orders/1", body: strings.Repeat("a", 4096), chunked: true, status: 413, wantBody: `{"message":"Request Too Long"}`, errorType: "RequestTooLargeException"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
				if tc.chunked {
					body = io.MultiReader(body) // hides the length: sent chunked
				}
			}
			got := h.do(tc.method, tc.path, body)
			if got.status != tc.status || got.body != tc.wantBody {
				t.Errorf("%s %s: got %d %s, want %d %s", tc.method, tc.path, got.status, got.body, tc.status, tc.wantBody)
			}
			if et := got.header.Get("x-amzn-ErrorType"); et != tc.errorType {
				t.Errorf("%s %s: x-amzn-ErrorType got %q, want %q", tc.method, tc.path, et, tc.errorType)
			}
			if got.header.Get("x-amzn-RequestId") == "" {
				t.Errorf("%s %s: no x-amzn-RequestId header", tc.method, tc.path)
			}
		})
	}
}

// TestUpstreamHTTP2 checks HTTP/2 is used when the backend offers it, and
// that http2: false keeps the upstream hop on HTTP/1.1.
func TestUpstreamHTTP2(t *testing.T) {
	t.Parallel()
	cert := backendCert(t)
	srv := backend(t, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }))
	tlsBlock := fmt.Sprintf(`{server_name: backend.internal, pins: [%q]}`, transport.SPKIPin(cert.Cert))
	tests := []struct {
		desc  string
		extra string
		want  string
	}{
		{"default offers h2", "", "HTTP/2.0"},
		{"http2: false", "\n    http2: false", "HTTP/1.1"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			cfg := strings.Replace(oneUpstream(srv.URL, tlsBlock), "    tls: {", "    tls: {", 1)
			cfg = strings.Replace(cfg, "    tls: "+tlsBlock, "    tls: "+tlsBlock+tc.extra, 1)
			h := startGateway(t, cfg)
			if got := h.get("/p"); got.body != tc.want {
				t.Errorf("backend saw protocol %q, want %q", got.body, tc.want)
			}
		})
	}
}

// TestAcceptExpiredPinnedBackend: an expired backend certificate is
// accepted only by its pin with accept_expired, every start warns, and
// the upstream expiry metric goes negative so the age stays visible.
func TestAcceptExpiredPinnedBackend(t *testing.T) {
	t.Parallel()
	expired := certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	srv := backend(t, expired, nil)
	h := startGateway(t, oneUpstream(srv.URL, fmt.Sprintf(`{server_name: backend.internal, pins: [%q], accept_expired: true}`, transport.SPKIPin(expired.Cert))))
	if got := h.get("/x"); got.status != 200 {
		t.Fatalf("pinned expired backend with accept_expired: got %d, want 200", got.status)
	}
	if !strings.Contains(h.logs.String(), "accept_expired") {
		t.Errorf("start did not warn about accept_expired:\n%s", h.logs)
	}
	m := h.adminGet("/metrics")
	if !strings.Contains(m, `drawbridge_cert_expiry_seconds{kind="upstream",name="onprem"} -`) {
		t.Errorf("upstream expiry metric is not negative for an expired leaf")
	}
}
