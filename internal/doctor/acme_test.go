package doctor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

func TestCheckACME(t *testing.T) {
	t.Parallel()
	now := time.Now()
	const ca = "https://acme.example.net/directory"
	storage := t.TempDir()
	// Certificates stored where the gateway's ACME client keeps them.
	store := func(domain string, notAfter time.Time) {
		c := certs.SelfSigned(t, certs.Options{DNSNames: []string{domain}, NotAfter: notAfter})
		key := certmagic.StorageKeys.SiteCert((&certmagic.ACMEIssuer{CA: ca}).IssuerKey(), domain)
		path := filepath.Join(storage, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, c.CertPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	store("fine.example.com", now.Add(60*24*time.Hour))
	store("late.example.com", now.Add(5*24*time.Hour))
	store("gone.example.com", now.Add(-time.Hour))
	lc := config.Listener{Name: "public", Addr: "0.0.0.0:443", TLS: config.ListenerTLS{ACME: &config.ACME{
		CA: ca, Storage: storage,
		Domains: []string{"fine.example.com", "late.example.com", "gone.example.com", "new.example.com"},
	}}}
	hops := checkACME(context.Background(), lc, now)
	want := []struct {
		status Status
		detail string
		fix    string
	}{
		{OK, "acme cert fine.example.com", ""},
		{Warn, "4 days left (expires", "renewal is overdue"},
		{Fail, "expired", "renewal is overdue"},
		{Warn, "no certificate stored yet", "must resolve to this gateway"},
	}
	if len(hops) != len(want) {
		t.Fatalf("checkACME: got %d hops %v, want %d", len(hops), hops, len(want))
	}
	for i, w := range want {
		h := hops[i]
		if h.Status != w.status || !strings.Contains(h.Detail, w.detail) || !strings.Contains(h.Fix, w.fix) || h.Target != lc.TLS.ACME.Domains[i] {
			t.Errorf("hop %d: got %s (fix %q), want %s with %q and fix %q", i, h, h.Fix, w.status, w.detail, w.fix)
		}
	}
}

func TestCheckACMEPorts(t *testing.T) {
	t.Parallel()
	storage := t.TempDir()
	c := certs.SelfSigned(t, certs.Options{DNSNames: []string{"api.example.com"}, NotAfter: time.Now().Add(60 * 24 * time.Hour)})
	key := certmagic.StorageKeys.SiteCert((&certmagic.ACMEIssuer{CA: config.DefaultACMECA}).IssuerKey(), "api.example.com")
	path := filepath.Join(storage, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, c.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc, addr, httpAddr string
		ca                   string
		want                 Status
	}{
		{"443 for TLS-ALPN-01", "0.0.0.0:443", "", config.DefaultACMECA, OK},
		{"80 for HTTP-01", "0.0.0.0:8443", "0.0.0.0:80", config.DefaultACMECA, OK},
		{"neither", "0.0.0.0:8443", "0.0.0.0:8080", config.DefaultACMECA, Warn},
		{"private CA may use other ports", "0.0.0.0:8443", "", "https://ca.corp.internal/dir", OK},
	} {
		lc := config.Listener{Name: "public", Addr: tc.addr, HTTPAddr: tc.httpAddr, TLS: config.ListenerTLS{ACME: &config.ACME{
			CA: tc.ca, Storage: storage, Domains: []string{"api.example.com"}}}}
		if tc.ca != config.DefaultACMECA {
			// Nothing is stored for that CA: judge the ports only.
			if msg := challengeProblem(lc); msg != "" {
				t.Errorf("%s: challengeProblem: got %q, want none", tc.desc, msg)
			}
			continue
		}
		hops := checkACME(context.Background(), lc, time.Now())
		if len(hops) != 1 || hops[0].Status != tc.want {
			t.Errorf("%s: checkACME: got %v, want one hop %s", tc.desc, hops, tc.want)
		}
	}
}
