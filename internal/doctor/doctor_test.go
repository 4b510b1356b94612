package doctor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

func TestCheckListener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Now()
	ca := certs.SelfSigned(t, certs.Options{IsCA: true, NotAfter: now.Add(365 * 24 * time.Hour)})
	caFile, _ := ca.WriteFiles(t, dir)
	leaf := certs.SelfSigned(t, certs.Options{DNSNames: []string{"api.example.com"}, IPs: nil, Parent: ca, NotAfter: now.Add(100 * 24 * time.Hour)})
	write := func(name string, parts ...[]byte) string {
		path := filepath.Join(dir, name)
		var data []byte
		for _, p := range parts {
			data = append(data, p...)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	inOrder := write("in-order.pem", leaf.CertPEM, ca.CertPEM)
	leafKey := write("leaf.key", leaf.KeyPEM)
	soon := certs.SelfSigned(t, certs.Options{DNSNames: []string{"soon.example.com"}, NotAfter: now.Add(3 * 24 * time.Hour)})
	soonCert, soonKey := soon.WriteFiles(t, dir)
	notCA := write("not-a-ca.pem", []byte("hello\n"))
	// A chain whose second certificate did not sign the first.
	stranger := certs.SelfSigned(t, certs.Options{IsCA: true, CommonName: "stranger"})
	misordered := write("misordered.pem", leaf.CertPEM, stranger.CertPEM)

	tests := []struct {
		desc       string
		tls        config.ListenerTLS
		wantStatus Status
		want       []string
	}{
		{"chain in order with client CA", config.ListenerTLS{Cert: inOrder, Key: leafKey, ClientCA: caFile, MinVersion: "1.3"}, OK,
			[]string{"cert api.example.com", "99 days left", "TLS1.3", "client CAs 1"}},
		{"expires in 3 days", config.ListenerTLS{Cert: soonCert, Key: soonKey}, Warn,
			[]string{"2 days left (expires " + soon.Cert.NotAfter.UTC().Format(time.DateOnly) + ")"}},
		{"client CA file without certificates", config.ListenerTLS{Cert: inOrder, Key: leafKey, ClientCA: notCA}, Fail,
			[]string{"no PEM certificate found"}},
		{"chain out of order", config.ListenerTLS{Cert: misordered, Key: leafKey}, Warn,
			[]string{"chain out of order: certificate 1 is not signed by certificate 2"}},
		{"missing file", config.ListenerTLS{Cert: filepath.Join(dir, "nope.pem"), Key: leafKey}, Fail,
			[]string{"nope.pem"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			h := checkListener(config.Listener{Name: "public", Addr: "127.0.0.1:8443", TLS: tc.tls}, now)
			if h.Status != tc.wantStatus {
				t.Errorf("checkListener(%+v): status %s, want %s (%s)", tc.tls, h.Status, tc.wantStatus, h)
			}
			for _, w := range tc.want {
				if !strings.Contains(h.Detail, w) {
					t.Errorf("checkListener(%+v): detail %q lacks %q", tc.tls, h.Detail, w)
				}
			}
			if h.Status != OK && h.Fix == "" {
				t.Errorf("checkListener(%+v): %s without a fix", tc.tls, h.Status)
			}
		})
	}
}
