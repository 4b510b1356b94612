package redisstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/storetest"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/redistest"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// tlsRedis is a TLS-only redis-server whose certificate, signed by ca,
// names redis.test and 127.0.0.1.
type tlsRedis struct {
	srv    *redistest.Server
	ca     *certs.Cert
	leaf   *certs.Cert
	caFile string
	dir    string
}

func startTLSRedis(t *testing.T, args ...string) *tlsRedis {
	t.Helper()
	dir := t.TempDir()
	ca := certs.SelfSigned(t, certs.Options{IsCA: true})
	leaf := certs.SelfSigned(t, certs.Options{Parent: ca, DNSNames: []string{"redis.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	certFile, keyFile := leaf.WriteFiles(t, dir)
	caFile, _ := ca.WriteFiles(t, dir)
	return &tlsRedis{
		srv:    redistest.StartTLSArgs(t, certFile, keyFile, args...),
		ca:     ca,
		leaf:   leaf,
		caFile: caFile,
		dir:    dir,
	}
}

// tlsConfig builds o's verification as the gateway does.
func tlsConfig(t *testing.T, o transport.Options) *tls.Config {
	t.Helper()
	o.Upstream = "store"
	cfg, err := transport.NewTLSConfig(o)
	if err != nil {
		t.Fatalf("transport.NewTLSConfig(%+v): got %v, want nil", o, err)
	}
	return cfg
}

func TestTLSConformanceByPin(t *testing.T) {
	r := startTLSRedis(t)
	cfg := tlsConfig(t, transport.Options{Pins: []string{transport.SPKIPin(r.leaf.Cert)}})
	n := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		n++
		s, err := New(Options{Addrs: []string{r.srv.Addr()}, Prefix: fmt.Sprintf("{tls%d}:", n), TLS: cfg, Timeout: testTimeout, Logger: quiet})
		if err != nil {
			t.Fatalf("New(): got %v, want nil", err)
		}
		return s
	})
}

// basics runs a key, a throttle and a quota round trip on s.
func basics(s store.Store) error {
	k := store.Key{ID: "key_tls", Name: "tls", Hash: "0123456789abcdef", Plan: "gold", Enabled: true}
	if err := s.CreateKey(ctx, k); err != nil {
		return fmt.Errorf("CreateKey(%s): %w", k.Name, err)
	}
	got, err := s.KeyByHash(ctx, k.Hash)
	if err != nil {
		return fmt.Errorf("KeyByHash(%s): %w", k.Hash, err)
	}
	if got.Name != k.Name {
		return fmt.Errorf("KeyByHash(%s): got key %q, want %q", k.Hash, got.Name, k.Name)
	}
	if d, err := s.Allow(ctx, "b", store.Throttle{Rate: 1, Burst: 1}); err != nil || !d.Allowed {
		return fmt.Errorf("Allow(b) on a full bucket: got %+v, %w, want allowed", d, err)
	}
	now := time.Now()
	w := &store.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Limit: 10}
	if d, err := s.Consume(ctx, k.ID, w, now); err != nil || !d.Allowed || d.Used != 1 {
		return fmt.Errorf("Consume(%s): got %+v, %w, want allowed, used 1", k.ID, d, err)
	}
	return nil
}

func TestTLSVerification(t *testing.T) {
	r := startTLSRedis(t)
	other := certs.SelfSigned(t, certs.Options{IsCA: true})
	otherFile, _ := other.WriteFiles(t, r.dir)
	client := certs.SelfSigned(t, certs.Options{Parent: r.ca, CommonName: "gateway"})
	clientCert, clientKey := client.WriteFiles(t, r.dir)

	tests := []struct {
		desc   string
		o      transport.Options
		reason transport.Reason // "" when the store must work
	}{
		{desc: "pin", o: transport.Options{Pins: []string{transport.SPKIPin(r.leaf.Cert)}}},
		{desc: "CA and server name", o: transport.Options{CAFile: r.caFile, ServerName: "redis.test"}},
		{desc: "CA and IP as server name", o: transport.Options{CAFile: r.caFile, ServerName: "127.0.0.1"}},
		{desc: "client certificate sent where not asked for", o: transport.Options{CAFile: r.caFile, ServerName: "redis.test", ClientCertFile: clientCert, ClientKeyFile: clientKey}},
		{desc: "wrong pin", o: transport.Options{Pins: []string{transport.SPKIPin(other.Cert)}}, reason: transport.ReasonPinMismatch},
		{desc: "other CA", o: transport.Options{CAFile: otherFile, ServerName: "redis.test"}, reason: transport.ReasonUnknownAuthority},
		{desc: "wrong server name", o: transport.Options{CAFile: r.caFile, ServerName: "cache.test"}, reason: transport.ReasonNameMismatch},
		// crypto/tls sends no SNI for an IP address, so without a
		// server name there is nothing to verify the chain against.
		{desc: "CA without server name on an IP", o: transport.Options{CAFile: r.caFile}, reason: transport.ReasonOther},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			s := open(t, Options{Addrs: []string{r.srv.Addr()}, Prefix: "{" + tt.desc + "}:", TLS: tlsConfig(t, tt.o)})
			err := basics(s)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("store over TLS verified by %s: %v", tt.desc, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("store over TLS with %s: got no error, want the certificate refused", tt.desc)
			}
			ve, ok := transport.AsVerifyError(err)
			if !errors.Is(err, store.ErrUnavailable) || !ok || ve.Reason != tt.reason {
				t.Fatalf("store over TLS with %s: got %v, want ErrUnavailable wrapping a VerifyError for %q", tt.desc, err, tt.reason)
			}
		})
	}
}

func TestTLSClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := certs.SelfSigned(t, certs.Options{IsCA: true})
	caFile, _ := ca.WriteFiles(t, dir)
	r := startTLSRedis(t, "--tls-auth-clients", "yes", "--tls-ca-cert-file", caFile)
	client := certs.SelfSigned(t, certs.Options{Parent: ca, CommonName: "gateway"})
	clientCert, clientKey := client.WriteFiles(t, dir)
	pin := []string{transport.SPKIPin(r.leaf.Cert)}

	s := open(t, Options{Addrs: []string{r.srv.Addr()}, TLS: tlsConfig(t, transport.Options{Pins: pin, ClientCertFile: clientCert, ClientKeyFile: clientKey})})
	if err := basics(s); err != nil {
		t.Fatalf("store over mutual TLS: %v", err)
	}
	s = open(t, Options{Addrs: []string{r.srv.Addr()}, Prefix: "{nocert}:", TLS: tlsConfig(t, transport.Options{Pins: pin})})
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Ping() without the client certificate Redis asks for: got %v, want ErrUnavailable", err)
	}
}

// TestTLSNeverPlaintext checks that a TLS store talks TLS to a plaintext
// Redis, and so fails, rather than falling back.
func TestTLSNeverPlaintext(t *testing.T) {
	srv := redistest.Start(t)
	leaf := certs.SelfSigned(t, certs.Options{})
	// A plaintext server never answers the ClientHello: the handshake
	// ends at the timeout, so keep it short.
	s := open(t, Options{Addrs: []string{srv.Addr()}, Timeout: DefaultTimeout, TLS: tlsConfig(t, transport.Options{Pins: []string{transport.SPKIPin(leaf.Cert)}})})
	k := store.Key{ID: "key_plain", Name: "plain", Hash: "0123456789abcdef"}
	if err := s.CreateKey(ctx, k); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("CreateKey(plain) over TLS to a plaintext Redis: got %v, want ErrUnavailable", err)
	}
	if n, err := rawClient(t, srv.Addr()).DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE after the refused store: got %d, %v, want 0, nil", n, err)
	}
}
