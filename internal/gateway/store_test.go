package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/redistest"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// storeConfig loads a config whose store is storeYAML.
func storeConfig(t *testing.T, dir, storeYAML string) *config.Config {
	t.Helper()
	c := certs.SelfSigned(t, certs.Options{DNSNames: []string{"localhost"}})
	certFile, keyFile := c.WriteFiles(t, dir)
	text := fmt.Sprintf(`listeners:
  - addr: 127.0.0.1:0
    tls: {cert: %q, key: %q}
admin: {addr: "off"}
upstreams:
  onprem:
    targets: [https://127.0.0.1:1]
    tls: {pins: [%s]}
routes:
  - path: /{proxy+}
    upstream: onprem
store: %s
`, certFile, keyFile, transport.SPKIPin(c.Cert), storeYAML)
	path := filepath.Join(dir, "drawbridge.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config.Load(store: %s): got %v, want nil", storeYAML, err)
	}
	return cfg
}

func TestOpenStoreRedisTLS(t *testing.T) {
	dir := t.TempDir()
	ca := certs.SelfSigned(t, certs.Options{IsCA: true})
	leaf := certs.SelfSigned(t, certs.Options{Parent: ca, DNSNames: []string{"redis.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	other := certs.SelfSigned(t, certs.Options{})
	certFile, keyFile := leaf.WriteFiles(t, dir)
	caFile, _ := ca.WriteFiles(t, dir)
	srv := redistest.StartTLS(t, certFile, keyFile)
	addr := srv.Addr()

	tests := []struct {
		desc   string
		tls    string
		reason transport.Reason // "" when the store must work
	}{
		{desc: "pin", tls: fmt.Sprintf("{pins: [%s]}", transport.SPKIPin(leaf.Cert))},
		{desc: "CA, name from addr", tls: fmt.Sprintf("{ca: %q}", caFile)},
		{desc: "CA and server name", tls: fmt.Sprintf("{ca: %q, server_name: redis.test}", caFile)},
		{desc: "TLS 1.3", tls: fmt.Sprintf("{ca: %q, min_version: \"1.3\"}", caFile)},
		{desc: "wrong pin", tls: fmt.Sprintf("{pins: [%s]}", transport.SPKIPin(other.Cert)), reason: transport.ReasonPinMismatch},
		{desc: "wrong server name", tls: fmt.Sprintf("{ca: %q, server_name: cache.test}", caFile), reason: transport.ReasonNameMismatch},
	}
	for i, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			storeYAML := fmt.Sprintf("{type: redis, addr: %q, prefix: \"{t%d}:\", tls: %s}", addr, i, tt.tls)
			cfg := storeConfig(t, t.TempDir(), storeYAML)
			st, err := OpenStore(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatalf("OpenStore(store: %s): got %v, want nil", storeYAML, err)
			}
			defer st.Close()
			k := store.Key{ID: "key_a", Name: "a", Hash: "0123456789abcdef"}
			err = st.CreateKey(context.Background(), k)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("CreateKey(a) with store: %s: got %v, want nil", storeYAML, err)
				}
				if got, err := st.KeyByHash(context.Background(), k.Hash); err != nil || got.Name != k.Name {
					t.Fatalf("KeyByHash(%s) with store: %s: got %q, %v, want %q, nil", k.Hash, storeYAML, got.Name, err, k.Name)
				}
				return
			}
			ve, ok := transport.AsVerifyError(err)
			if !errors.Is(err, store.ErrUnavailable) || !ok || ve.Reason != tt.reason {
				t.Fatalf("CreateKey(a) with store: %s: got %v, want ErrUnavailable wrapping a VerifyError for %q", storeYAML, err, tt.reason)
			}
		})
	}
}

// TestOpenStoreInsecureNeedsOptIn builds the Config by hand, past Load's
// validation: insecure_skip_verify alone must not turn verification off.
func TestOpenStoreInsecureNeedsOptIn(t *testing.T) {
	dir := t.TempDir()
	leaf := certs.SelfSigned(t, certs.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	certFile, keyFile := leaf.WriteFiles(t, dir)
	srv := redistest.StartTLS(t, certFile, keyFile)
	cfg := &config.Config{Store: config.Store{
		Type: "redis",
		Addr: srv.Addr(),
		TLS:  &config.UpstreamTLS{InsecureSkipVerify: true},
	}}
	if st, err := OpenStore(cfg, nil); err == nil || !strings.Contains(err.Error(), "no way to verify") {
		if st != nil {
			st.Close()
		}
		t.Fatalf("OpenStore(insecure_skip_verify without allow_insecure): got %v, want an error saying there is no way to verify", err)
	}

	cfg.Store.AllowInsecure = true
	st, err := OpenStore(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("OpenStore(insecure_skip_verify with allow_insecure): got %v, want nil", err)
	}
	defer st.Close()
	if _, err := st.ListKeys(context.Background()); err != nil {
		t.Fatalf("ListKeys() with insecure_skip_verify and allow_insecure: got %v, want nil", err)
	}
}
