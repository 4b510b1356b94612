package auth

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"

	"github.com/drawbridge-gw/drawbridge/internal/observe"
)

// BenchmarkClientCertCheck measures the check on many requests of one TLS
// connection, as the listener hands them over: r.TLS is the same
// connection state for each. The partner is known by subject, so a
// fingerprint lookup misses first, the common configuration.
func BenchmarkClientCertCheck(b *testing.B) {
	p := newPKI(b)
	h, err := NewClientCertCheck(ClientCertOptions{
		Required: true,
		Partners: map[string]PartnerMatch{
			"acme": {Subjects: []string{p.acme.Cert.Subject.String()}},
			"beta": {Fingerprints: []string{fingerprint(p.beta)}},
		},
	}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	if err != nil {
		b.Fatalf("NewClientCertCheck: %v", err)
	}
	r, err := http.NewRequest(http.MethodGet, "https://127.0.0.1/", nil)
	if err != nil {
		b.Fatalf("NewRequest: %v", err)
	}
	r = r.WithContext(observe.WithRecord(r.Context(), &observe.Record{}))
	r.TLS = &tls.ConnectionState{
		PeerCertificates: []*x509.Certificate{p.acme.Cert},
		VerifiedChains:   [][]*x509.Certificate{{p.acme.Cert, p.ca.Cert}},
	}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}
