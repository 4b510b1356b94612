package listener

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

// staticManaged is a ManagedCerts with fixed certificates by name: the
// selection logic under test does not depend on where they came from
// (package acme tests the ACME source against a real CA).
type staticManaged struct {
	certs     map[string]*tls.Certificate
	challenge *tls.Certificate
}

func (m *staticManaged) Manages(name string) bool {
	_, ok := m.certs[name]
	return ok
}

func (m *staticManaged) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if slices.Equal(hello.SupportedProtos, []string{ACMETLS1Protocol}) {
		return m.challenge, nil
	}
	if c := m.certs[hello.ServerName]; c != nil {
		return c, nil
	}
	return nil, errors.New("no certificate yet")
}

func TestManagedCertificateSelection(t *testing.T) {
	t.Parallel()
	ca := certs.SelfSigned(t, certs.Options{IsCA: true})
	fileCert := certs.SelfSigned(t, certs.Options{Parent: ca, DNSNames: []string{"*.example.com", "internal.corp"}})
	acmeCert := certs.SelfSigned(t, certs.Options{Parent: ca, DNSNames: []string{"api.example.com"}})
	challenge := certs.SelfSigned(t, certs.Options{Parent: ca, DNSNames: []string{"api.example.com"}, CommonName: "challenge"})
	certFile, keyFile := fileCert.WriteFiles(t, t.TempDir())
	managed := &staticManaged{
		certs:     map[string]*tls.Certificate{"api.example.com": &acmeCert.TLS, "pending.example.com": nil},
		challenge: &challenge.TLS,
	}

	mixed := startServer(t, Options{CertFile: certFile, KeyFile: keyFile, Managed: managed}, nil)
	only := startServer(t, Options{Managed: managed}, nil)
	mtls := startServer(t, Options{Managed: managed, ClientCAFile: writeCAFile(t, ca), ClientAuth: ClientAuthRequire}, nil)

	tests := []struct {
		desc   string
		srv    *Server
		name   string
		protos []string
		want   *x509.Certificate // nil: the handshake fails
	}{
		{"mixed: managed name gets the ACME certificate over the file wildcard", mixed, "api.example.com", nil, acmeCert.Cert},
		{"mixed: other name gets the file certificate", mixed, "internal.corp", nil, fileCert.Cert},
		{"mixed: managed name without a certificate yet falls back to the file one", mixed, "pending.example.com", nil, fileCert.Cert},
		{"mixed: TLS-ALPN-01 validation gets the challenge certificate", mixed, "api.example.com", []string{ACMETLS1Protocol}, challenge.Cert},
		{"acme only: managed name", only, "api.example.com", nil, acmeCert.Cert},
		{"acme only: unmanaged name fails with an alert", only, "internal.corp", nil, nil},
		{"acme only: managed name without a certificate yet fails with an alert", only, "pending.example.com", nil, nil},
		{"client certs required: validation needs none", mtls, "api.example.com", []string{ACMETLS1Protocol}, challenge.Cert},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tc.srv.Addr().String(),
				&tls.Config{ServerName: tc.name, RootCAs: ca.Pool(), NextProtos: tc.protos})
			if tc.want == nil {
				if err == nil {
					conn.Close()
					t.Fatalf("handshake for %q: succeeded, want an alert", tc.name)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake for %q: %v", tc.name, err)
			}
			defer conn.Close()
			if got := conn.ConnectionState().PeerCertificates[0]; !got.Equal(tc.want) {
				t.Errorf("handshake for %q: got %v (%v), want %v", tc.name, got.Subject, got.DNSNames, tc.want.Subject)
			}
		})
	}
}

func writeCAFile(t *testing.T, ca *certs.Cert) string {
	t.Helper()
	path, _ := ca.WriteFiles(t, t.TempDir())
	return path
}

func TestManagedRequiresCertificateSource(t *testing.T) {
	t.Parallel()
	_, err := New(Options{Name: "x", Addr: "127.0.0.1:0"}, nil)
	if err == nil || !strings.Contains(err.Error(), "file names are required") {
		t.Errorf("New without files or Managed: got %v, want the missing files named", err)
	}
}

func TestPlainHTTPRedirects(t *testing.T) {
	t.Parallel()
	challenge := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
				w.Write([]byte("token.key"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	tests := []struct {
		desc      string
		httpsPort int
		target    string
		host      string
		method    string
		wantCode  int
		wantLoc   string
	}{
		{"443 is left out", 443, "/orders/7?x=1", "api.example.com", "GET", 308, "https://api.example.com/orders/7?x=1"},
		{"other port is kept, the HTTP port dropped", 8443, "/a%20b", "api.example.com:80", "POST", 308, "https://api.example.com:8443/a%20b"},
		{"IPv6 literal", 443, "/", "[2001:db8::1]:80", "GET", 308, "https://[2001:db8::1]/"},
		{"challenge is answered, not redirected", 443, "/.well-known/acme-challenge/abc", "api.example.com", "GET", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			p := NewPlainHTTP(PlainHTTPOptions{Name: "t", Addr: "127.0.0.1:0", HTTPSPort: tc.httpsPort, Challenge: challenge, Logger: discardLogger()})
			r := httptest.NewRequest(tc.method, tc.target, nil)
			r.Host = tc.host
			w := httptest.NewRecorder()
			p.srv.Handler.ServeHTTP(w, r)
			if w.Code != tc.wantCode || w.Header().Get("Location") != tc.wantLoc {
				t.Errorf("%s %s (Host %s): got %d %q, want %d %q", tc.method, tc.target, tc.host, w.Code, w.Header().Get("Location"), tc.wantCode, tc.wantLoc)
			}
		})
	}
}

func TestPlainHTTPServes(t *testing.T) {
	t.Parallel()
	p := NewPlainHTTP(PlainHTTPOptions{Name: "t", Addr: "127.0.0.1:0", HTTPSPort: 443, Logger: discardLogger()})
	if err := p.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve() }()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get("http://" + p.Addr().String() + "/x")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("GET /x: got %d, want 308", resp.StatusCode)
	}
	if err := p.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: got %v, want nil", err)
	}
}
