package doctor

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// TestL4Hops: a passthrough listener has no certificate to check; a
// tcp:// target is checked for reach only, unless its health check is a
// TLS handshake, which is verified like a tls:// target's.
func TestL4Hops(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	back := certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}})
	other := certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{back.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake()
			}()
		}
	}()
	addr := ln.Addr().String()
	text := fmt.Sprintf(`listeners:
  - name: nlb
    type: tcp
    addr: 127.0.0.1:0
    tls: {mode: passthrough}
    sni: {"*": raw}
admin: {addr: "off"}
upstreams:
  raw:
    targets: [tcp://%[1]s]
  rawcheck:
    targets: [tcp://%[1]s]
    tls: {pins: [%[2]s], server_name: backend.internal}
    health: {type: tls}
  wrongpin:
    targets: [tls://%[1]s]
    tls: {pins: [%[3]s], server_name: backend.internal}
`, addr, transport.SPKIPin(back.Cert), transport.SPKIPin(other.Cert))
	path := filepath.Join(dir, "drawbridge.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	hops := Run(context.Background(), cfg, Options{Timeout: 3 * time.Second})
	want := []struct {
		name   string
		status Status
		detail string
	}{
		{"nlb", OK, "tcp passthrough"},
		{"raw", OK, "tcp reachable"},
		{"rawcheck", OK, "health tls ok"},
		{"wrongpin", Fail, "pin"},
	}
	if len(hops) != len(want) {
		t.Fatalf("Run: got %d hops %v, want %d", len(hops), hops, len(want))
	}
	for i, w := range want {
		if h := hops[i]; h.Name != w.name || h.Status != w.status || !strings.Contains(h.Detail, w.detail) {
			t.Errorf("hop %d: got %s, want %s %s with %q", i, h, w.name, w.status, w.detail)
		}
	}
}
