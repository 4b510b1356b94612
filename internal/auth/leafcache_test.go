package auth

import (
	"crypto/x509"
	"runtime"
	"testing"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

func TestLeafInfoOf(t *testing.T) {
	t.Parallel()
	c := certs.SelfSigned(t, certs.Options{CommonName: "acme client"})
	li := leafInfoOf(c.Cert)
	if li.fingerprint != fingerprint(c) || li.subject != c.Cert.Subject.String() {
		t.Errorf("leafInfoOf(cert): got %q, %q, want %q, %q", li.fingerprint, li.subject, fingerprint(c), c.Cert.Subject.String())
	}
	if again := leafInfoOf(c.Cert); again != li {
		t.Errorf("leafInfoOf(cert) twice: got two entries, want the first reused")
	}
	// Another parse of the same certificate, as a new connection brings.
	other, err := x509.ParseCertificate(c.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := leafInfoOf(other); *got != *li {
		t.Errorf("leafInfoOf(same DER, other pointer): got %+v, want %+v", *got, *li)
	}
}

// TestLeafInfosBounded fills the cache. It does not run in parallel, as
// it empties the cache other tests use.
func TestLeafInfosBounded(t *testing.T) {
	c := certs.SelfSigned(t, certs.Options{CommonName: "acme client"})
	parse := func(n int) []*x509.Certificate {
		out := make([]*x509.Certificate, n)
		for i := range out {
			cert, err := x509.ParseCertificate(c.Cert.Raw)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = cert
		}
		return out
	}
	size := func() int {
		leafInfos.mu.RLock()
		defer leafInfos.mu.RUnlock()
		return len(leafInfos.m)
	}
	reset := func() {
		leafInfos.mu.Lock()
		clear(leafInfos.m)
		leafInfos.mu.Unlock()
	}

	reset()
	live := parse(maxLeafInfos + 1)
	for _, cert := range live[:maxLeafInfos] {
		leafInfoOf(cert)
	}
	if n := size(); n != maxLeafInfos {
		t.Fatalf("after %d certificates: got %d entries, want %d", maxLeafInfos, n, maxLeafInfos)
	}
	// Every certificate is still in use: the cache starts over.
	leafInfoOf(live[maxLeafInfos])
	if n := size(); n != 1 {
		t.Errorf("one past the bound with every certificate live: got %d entries, want 1", n)
	}

	reset()
	for _, cert := range live[:maxLeafInfos] {
		leafInfoOf(cert)
	}
	// Half the connections close: their certificates are freed, and only
	// their entries go.
	for i := range maxLeafInfos / 2 {
		live[i] = nil
	}
	runtime.GC()
	runtime.GC()
	leafInfoOf(live[maxLeafInfos])
	if n, want := size(), maxLeafInfos/2+1; n != want {
		t.Errorf("one past the bound with half the certificates freed: got %d entries, want %d", n, want)
	}
	runtime.KeepAlive(live)
}
