package l4

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/listener"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

// terminateServer runs a terminate-mode server with route for pattern,
// to back, serving a certificate for api.example.com.
func terminateServer(t *testing.T, pattern string, back *backend) (*gateway, *certs.Cert) {
	t.Helper()
	front := certs.SelfSigned(t, certs.Options{DNSNames: []string{"api.example.com"}})
	certFile, keyFile := front.WriteFiles(t, t.TempDir())
	lc, err := listener.LoadCerts(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	h, err := transport.NewHandshaker(transport.Options{Upstream: "onprem", Pins: []string{transport.SPKIPin(back.cert.Cert)}, ServerName: "backend.internal"})
	if err != nil {
		t.Fatal(err)
	}
	g := startServer(t, Options{Certs: lc}, map[string]*Route{
		pattern: {Upstream: "onprem", Pool: pool(t, "onprem", upstream.PassiveOptions{}, back.addr()), TLS: h},
	})
	return g, front
}

// TestTerminateRefusesUnroutedName: in terminate mode a server name no
// route takes is refused right after the ClientHello, with an alert: the
// client never gets the listener's certificate.
func TestTerminateRefusesUnroutedName(t *testing.T) {
	t.Parallel()
	back := startBackend(t, "onprem", false, "backend.internal")
	g, _ := terminateServer(t, "api.example.com", back)
	raw, err := net.DialTimeout("tcp", g.addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	sawCert := false
	tc := tls.Client(raw, &tls.Config{
		ServerName:         "stranger.example.net",
		InsecureSkipVerify: true, // to see whether a certificate comes at all
		VerifyConnection: func(cs tls.ConnectionState) error {
			sawCert = len(cs.PeerCertificates) > 0
			return nil
		},
	})
	err = tc.Handshake()
	if err == nil || !strings.Contains(err.Error(), "remote error") {
		t.Errorf("handshake for an unrouted name: got %v, want an alert from the listener", err)
	}
	if sawCert {
		t.Errorf("handshake for an unrouted name: the client got the listener's certificate, want a refusal before it")
	}
	e := g.waitEntry(t, 1)
	if e["result"] != ResultNoRoute || e["sni"] != "stranger.example.net" || e["upstream"] != "" {
		t.Errorf("access log: got %v, want result %s, sni stranger.example.net, no upstream", e, ResultNoRoute)
	}
}

// TestTerminateResumesSessions: the listener's TLS config lasts across
// connections, so a client's second connection resumes its session (a
// config per connection had new ticket keys each time).
func TestTerminateResumesSessions(t *testing.T) {
	t.Parallel()
	back := startBackend(t, "onprem", false, "backend.internal")
	g, front := terminateServer(t, "*", back)
	cache := tls.NewLRUClientSessionCache(4)
	for i, wantResume := range []bool{false, true} {
		raw, err := net.DialTimeout("tcp", g.addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		raw.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Client(raw, &tls.Config{ServerName: "api.example.com", RootCAs: front.Pool(), ClientSessionCache: cache})
		if err := tc.Handshake(); err != nil {
			raw.Close()
			t.Fatalf("connection %d: handshake: %v", i, err)
		}
		s := &session{raw: raw, tls: tc}
		// Reading to the end also takes in the session ticket.
		answer, err := s.exchange("hello")
		raw.Close()
		if err != nil || !strings.HasSuffix(answer, "got=hello") {
			t.Fatalf("connection %d: got %q, %v; want the backend's answer", i, answer, err)
		}
		if got := tc.ConnectionState().DidResume; got != wantResume {
			t.Errorf("connection %d: DidResume = %v, want %v", i, got, wantResume)
		}
	}
}
