package listener

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
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

func TestServesName(t *testing.T) {
	t.Parallel()
	ca := certs.SelfSigned(t, certs.Options{IsCA: true})
	fileCert := certs.SelfSigned(t, certs.Options{Parent: ca, DNSNames: []string{"*.example.com", "internal.corp"}})
	certFile, keyFile := fileCert.WriteFiles(t, t.TempDir())
	managed := &staticManaged{certs: map[string]*tls.Certificate{"api.other.org": nil}}
	mixed, err := New(Options{Name: "mixed", Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, Managed: managed}, nil)
	if err != nil {
		t.Fatal(err)
	}
	only, err := New(Options{Name: "only", Addr: "127.0.0.1:0", Managed: managed}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		srv  *Server
		host string
		want bool
	}{
		{mixed, "api.other.org", true},
		{mixed, "a.example.com", true},
		{mixed, "internal.corp", true},
		{mixed, "a.b.example.com", false},
		{mixed, "evil.example", false},
		{only, "api.other.org", true},
		{only, "a.example.com", false},
	} {
		if got := tc.srv.ServesName(tc.host); got != tc.want {
			t.Errorf("%s: ServesName(%q) = %v, want %v", tc.srv.Name(), tc.host, got, tc.want)
		}
	}
}
