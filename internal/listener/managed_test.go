package listener

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
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

// TestACMEConnectionNeverReachesHandler: on a listener requiring client
// certificates, a client offering only acme-tls/1 gets the challenge
// certificate without one (the CA's validator has none), so the
// connection must end there: a request sent over it never reaches the
// handler. HTTP/1.1 and HTTP/2 keep working for partners with a
// certificate.
func TestACMEConnectionNeverReachesHandler(t *testing.T) {
	t.Parallel()
	ca := certs.SelfSigned(t, certs.Options{IsCA: true})
	challenge := certs.SelfSigned(t, certs.Options{Parent: ca, DNSNames: []string{"api.example.com"}, CommonName: "challenge"})
	acmeCert := certs.SelfSigned(t, certs.Options{Parent: ca, DNSNames: []string{"api.example.com"}})
	partner := certs.SelfSigned(t, certs.Options{Parent: ca, CommonName: "partner"})
	managed := &staticManaged{certs: map[string]*tls.Certificate{"api.example.com": &acmeCert.TLS}, challenge: &challenge.TLS}
	var reached atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.Write([]byte("reached " + r.Proto))
	})
	srv := startServer(t, Options{Managed: managed, ClientCAFile: writeCAFile(t, ca), ClientAuth: ClientAuthRequire}, h)

	for _, protos := range [][]string{{ACMETLS1Protocol}} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", srv.Addr().String(),
			&tls.Config{ServerName: "api.example.com", RootCAs: ca.Pool(), NextProtos: protos})
		if err != nil {
			t.Fatalf("TLS-ALPN-01 handshake: %v (a validator must get the challenge certificate)", err)
		}
		if got := conn.ConnectionState().PeerCertificates[0]; !got.Equal(challenge.Cert) {
			t.Errorf("TLS-ALPN-01 handshake: got %v, want the challenge certificate", got.Subject)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, "GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Errorf("request over acme-tls/1 without a client certificate: got %d %q, want the connection closed", resp.StatusCode, body)
		}
		conn.Close()
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("handler reached %d times over acme-tls/1, want 0", n)
	}

	// An unmanaged name gets no exemption: without a client certificate
	// the handshake fails for that reason (not merely closed after it).
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", srv.Addr().String(),
		&tls.Config{ServerName: "other.example.com", InsecureSkipVerify: true, NextProtos: []string{ACMETLS1Protocol}})
	if err == nil {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		// TLS 1.3 reports the server's refusal of the client's
		// (missing) certificate on the first read.
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("acme-tls/1 for an unmanaged name without a client certificate: got %v, want the handshake refused for the missing certificate", err)
	}

	// Partners with a certificate still reach the handler, over both
	// HTTP versions.
	for _, h2 := range []bool{false, true} {
		protos := []string{"http/1.1"}
		if h2 {
			protos = []string{"h2"}
		}
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			ForceAttemptHTTP2: h2,
			TLSClientConfig:   &tls.Config{RootCAs: ca.Pool(), ServerName: "api.example.com", Certificates: []tls.Certificate{partner.TLS}, NextProtos: protos},
		}}
		resp, err := client.Get("https://" + srv.Addr().String() + "/")
		if err != nil {
			t.Fatalf("partner (h2 %v): %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := map[bool]string{false: "reached HTTP/1.1", true: "reached HTTP/2.0"}[h2]; string(body) != want {
			t.Errorf("partner (h2 %v): got %q, want %q", h2, body, want)
		}
	}
}

// TestNoManagedCertWarns: handshakes refused because one of an ACME-only
// listener's names has no certificate yet are logged at warn, once per
// name per minute; other names stay at debug.
func TestNoManagedCertWarns(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	managed := &staticManaged{certs: map[string]*tls.Certificate{"pending.example.com": nil, "late.example.com": nil}}
	srv := startServer(t, Options{Managed: managed, Logger: logs.logger(slog.LevelDebug)}, nil)
	for _, name := range []string{"pending.example.com", "pending.example.com", "PENDING.example.com", "late.example.com", "scanner.example", "scanner.example"} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", srv.Addr().String(),
			&tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			t.Fatalf("handshake for %s: succeeded, want an alert", name)
		}
	}
	waitFor(t, "six refusals in the log", func() bool { return strings.Count(logs.String(), "handshake refused") == 6 })
	got := logs.String()
	for name, want := range map[string]int{"pending.example.com": 1, "late.example.com": 1, "scanner.example": 0} {
		n := 0
		for line := range strings.Lines(got) {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "server_name="+name) {
				n++
			}
		}
		if n != want {
			t.Errorf("%s: %d warnings, want %d:\n%s", name, n, want, got)
		}
	}
}
