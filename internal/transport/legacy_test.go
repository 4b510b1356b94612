package transport

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// oldSpec describes a certificate as old on-prem load balancers serve them:
// possibly without SANs, expired, SHA-1 signed or with a 1024-bit RSA key.
type oldSpec struct {
	cn        string
	dnsNames  []string
	ips       []net.IP
	notBefore time.Time
	notAfter  time.Time
	rsaBits   int // 0: ECDSA P-256
	sigAlg    x509.SignatureAlgorithm
	isCA      bool
	parent    *oldCert
}

// oldCert is a generated certificate with its key.
type oldCert struct {
	cert *x509.Certificate
	key  crypto.Signer
	tls  tls.Certificate
	file string // PEM of cert alone
}

func newOldCert(t *testing.T, s oldSpec) *oldCert {
	t.Helper()
	var key crypto.Signer
	var err error
	if s.rsaBits > 0 {
		key, err = rsa.GenerateKey(rand.Reader, s.rsaBits)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatalf("generating key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: s.cn},
		DNSNames:              s.dnsNames,
		IPAddresses:           s.ips,
		NotBefore:             s.notBefore,
		NotAfter:              s.notAfter,
		SignatureAlgorithm:    s.sigAlg,
		BasicConstraintsValid: true,
		IsCA:                  s.isCA,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if s.isCA {
		tmpl.KeyUsage, tmpl.ExtKeyUsage = x509.KeyUsageCertSign, nil
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = now.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = now.Add(24 * time.Hour)
	}
	parent, signer := tmpl, key
	if s.parent != nil {
		parent, signer = s.parent.cert, s.parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatalf("x509.CreateCertificate(%+v): %v", s, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("x509.ParseCertificate: %v", err)
	}
	c := &oldCert{cert: cert, key: key, tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
	if s.parent != nil {
		c.tls.Certificate = append(c.tls.Certificate, s.parent.cert.Raw)
	}
	c.file = filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(c.file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// oldBackend starts an HTTP/1.1-only TLS server like an old load balancer:
// configure restricts its versions and suites. It answers with the TLS
// version and cipher suite used.
func oldBackend(t *testing.T, cert tls.Certificate, configure func(*tls.Config)) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, tls.VersionName(r.TLS.Version)+" "+tls.CipherSuiteName(r.TLS.CipherSuite))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	if configure != nil {
		configure(srv.TLS)
	}
	// Refused handshakes are the point of most tests here.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestLegacyCertificates(t *testing.T) {
	t.Parallel()
	now := time.Now()
	past := oldSpec{notBefore: now.Add(-3 * 365 * 24 * time.Hour), notAfter: now.Add(-365 * 24 * time.Hour)}
	ca := newOldCert(t, oldSpec{cn: "on-prem CA", isCA: true})
	cnOnly := newOldCert(t, oldSpec{cn: "backend.internal", parent: ca})
	cnOnlyIP := newOldCert(t, oldSpec{cn: "127.0.0.1", parent: ca})
	cnWithSAN := newOldCert(t, oldSpec{cn: "backend.internal", dnsNames: []string{"other.internal"}, parent: ca})
	cnOnlyExpired := newOldCert(t, oldSpec{cn: "backend.internal", parent: ca, notBefore: past.notBefore, notAfter: past.notAfter})
	selfCNOnly := newOldCert(t, oldSpec{cn: "backend.internal"})
	expired := newOldCert(t, oldSpec{cn: "backend.internal", notBefore: past.notBefore, notAfter: past.notAfter})
	notYet := newOldCert(t, oldSpec{cn: "backend.internal", notBefore: now.Add(time.Hour), notAfter: now.Add(48 * time.Hour)})
	// Same CN and dates as expired, another key: what an attacker would
	// serve.
	rogue := newOldCert(t, oldSpec{cn: "backend.internal", notBefore: past.notBefore, notAfter: past.notAfter})
	// The worst of the lot: self-signed with SHA-1, RSA-1024, CN only,
	// expired.
	museum := newOldCert(t, oldSpec{cn: "backend.internal", rsaBits: 1024, sigAlg: x509.SHA1WithRSA, notBefore: past.notBefore, notAfter: past.notAfter})
	// As its own root, a self-signed certificate's signature is not
	// checked, so SHA-1 does not matter there either.
	sha1Self := newOldCert(t, oldSpec{cn: "backend.internal", rsaBits: 1024, sigAlg: x509.SHA1WithRSA})
	sha1Leaf := newOldCert(t, oldSpec{cn: "backend.internal", dnsNames: []string{"backend.internal"}, sigAlg: x509.ECDSAWithSHA1, parent: ca})

	pins := func(cs ...*oldCert) []string {
		var out []string
		for _, c := range cs {
			out = append(out, SPKIPin(c.cert))
		}
		return out
	}
	const fix = "set tls.legacy_common_name: true, or pin its key"
	tests := []struct {
		desc       string
		serve      *oldCert
		o          Options
		wantReason Reason // "" means the request succeeds
		wantDetail string
	}{
		{desc: "CN-only, pinned", serve: selfCNOnly, o: Options{Pins: pins(selfCNOnly)}},
		{desc: "CN-only, CA without legacy_common_name", serve: cnOnly,
			o:          Options{CAFile: ca.file, ServerName: "backend.internal"},
			wantReason: ReasonNameMismatch, wantDetail: fix},
		{desc: "CN-only, CA with legacy_common_name", serve: cnOnly,
			o: Options{CAFile: ca.file, ServerName: "backend.internal", LegacyCommonName: true}},
		{desc: "CN-only, legacy_common_name, name differs only in case", serve: cnOnly,
			o: Options{CAFile: ca.file, ServerName: "Backend.INTERNAL", LegacyCommonName: true}},
		{desc: "CN-only, legacy_common_name, CN is the dialed IP", serve: cnOnlyIP,
			o: Options{CAFile: ca.file, LegacyCommonName: true}},
		{desc: "CN-only, legacy_common_name, other server_name", serve: cnOnly,
			o:          Options{CAFile: ca.file, ServerName: "elsewhere.internal", LegacyCommonName: true},
			wantReason: ReasonNameMismatch, wantDetail: `CN="backend.internal" is not "elsewhere.internal"`},
		{desc: "legacy_common_name does not apply to a cert with SANs", serve: cnWithSAN,
			o:          Options{CAFile: ca.file, ServerName: "backend.internal", LegacyCommonName: true},
			wantReason: ReasonNameMismatch, wantDetail: "other.internal"},
		{desc: "legacy_common_name does not skip the chain", serve: selfCNOnly,
			o:          Options{CAFile: ca.file, ServerName: "backend.internal", LegacyCommonName: true},
			wantReason: ReasonUnknownAuthority},
		{desc: "legacy_common_name does not skip the dates", serve: cnOnlyExpired,
			o:          Options{CAFile: ca.file, ServerName: "backend.internal", LegacyCommonName: true},
			wantReason: ReasonExpired},
		{desc: "expired, pinned", serve: expired, o: Options{Pins: pins(expired)},
			wantReason: ReasonExpired, wantDetail: "pinned leaf expired at"},
		{desc: "expired, pinned, accept_expired", serve: expired, o: Options{Pins: pins(expired), AcceptExpired: true}},
		{desc: "not yet valid, pinned, accept_expired", serve: notYet, o: Options{Pins: pins(notYet), AcceptExpired: true}},
		{desc: "accept_expired does not apply to chain trust", serve: cnOnlyExpired,
			o:          Options{CAFile: ca.file, Pins: pins(expired), ServerName: "backend.internal", LegacyCommonName: true, AcceptExpired: true},
			wantReason: ReasonExpired},
		{desc: "rogue key, same CN and dates, accept_expired", serve: rogue,
			o:          Options{Pins: pins(expired), AcceptExpired: true},
			wantReason: ReasonPinMismatch, wantDetail: SPKIPin(rogue.cert)},
		{desc: "rogue key, same CN and dates, CA and all flags", serve: rogue,
			o:          Options{CAFile: ca.file, Pins: pins(expired), ServerName: "backend.internal", LegacyCommonName: true, AcceptExpired: true},
			wantReason: ReasonExpired, wantDetail: "no pin matched the leaf either (" + SPKIPin(rogue.cert)},
		{desc: "SHA-1 self-signed RSA-1024 CN-only expired, pinned, accept_expired", serve: museum,
			o: Options{Pins: pins(museum), AcceptExpired: true}},
		{desc: "SHA-1 self-signed RSA-1024, its own file as ca", serve: museum,
			o:          Options{CAFile: museum.file, ServerName: "backend.internal", LegacyCommonName: true},
			wantReason: ReasonExpired},
		{desc: "SHA-1 self-signed RSA-1024 CN-only, its own file as ca, legacy_common_name", serve: sha1Self,
			o: Options{CAFile: sha1Self.file, ServerName: "backend.internal", LegacyCommonName: true}},
		{desc: "SHA-1 signed by a CA, ca trust", serve: sha1Leaf,
			o:          Options{CAFile: ca.file, ServerName: "backend.internal"},
			wantReason: ReasonUnknownAuthority, wantDetail: "insecure algorithm ECDSA-SHA1"},
		{desc: "SHA-1 signed by a CA, pinned", serve: sha1Leaf, o: Options{Pins: pins(sha1Leaf)}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			srv := oldBackend(t, tc.serve.tls, nil)
			var rec leafRecorder
			tc.o.Upstream = "onprem"
			tc.o.OnVerified = rec.record
			_, _, err := get(t, tc.o, srv.URL)
			if tc.wantReason == "" {
				if err != nil {
					t.Fatalf("GET %s with %s: got %v, want success", srv.URL, tc.desc, err)
				}
				seen := rec.seen()
				if len(seen) == 0 || !seen[0].Equal(tc.serve.cert) {
					t.Errorf("OnVerified: got %d leaves, want the served leaf", len(seen))
				}
				return
			}
			ve, ok := AsVerifyError(err)
			if !ok {
				t.Fatalf("GET %s with %s: got %v, want a *VerifyError (%s)", srv.URL, tc.desc, err, tc.wantReason)
			}
			if ve.Reason != tc.wantReason || !strings.Contains(ve.Detail, tc.wantDetail) {
				t.Errorf("GET %s with %s: got %q (%s), want reason %q with %q", srv.URL, tc.desc, ve.Detail, ve.Reason, tc.wantReason, tc.wantDetail)
			}
			if n := len(rec.seen()); n != 0 {
				t.Errorf("OnVerified: called %d times for a refused leaf, want 0", n)
			}
		})
	}
}

func TestLegacyProtocol(t *testing.T) {
	t.Parallel()
	ecCert := newOldCert(t, oldSpec{cn: "lb"})
	rsaCert := newOldCert(t, oldSpec{cn: "lb", rsaBits: 1024, sigAlg: x509.SHA1WithRSA})
	tls10 := func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS10 }
	tls11 := func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS11, tls.VersionTLS11 }
	suite := func(id uint16, maxVersion uint16) func(*tls.Config) {
		return func(c *tls.Config) {
			c.MinVersion, c.MaxVersion = tls.VersionTLS10, maxVersion
			c.CipherSuites = []uint16{id}
		}
	}
	tests := []struct {
		desc      string
		serve     *oldCert
		configure func(*tls.Config)
		o         Options
		want      string // response body; "" means the handshake fails
		wantErr   string
	}{
		{desc: "TLS 1.0 backend, default options", serve: ecCert, configure: tls10,
			wantErr: "protocol version"},
		{desc: "TLS 1.0 backend, min_version 1.1", serve: ecCert, configure: tls10,
			o: Options{MinVersion: tls.VersionTLS11}, wantErr: "protocol version"},
		{desc: "TLS 1.0 backend, min_version 1.0", serve: ecCert, configure: tls10,
			o: Options{MinVersion: tls.VersionTLS10}, want: "TLS 1.0 TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"},
		{desc: "TLS 1.1 backend, min_version 1.0", serve: ecCert, configure: tls11,
			o: Options{MinVersion: tls.VersionTLS10}, want: "TLS 1.1 TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"},
		{desc: "RSA key exchange only, default suites", serve: rsaCert, configure: suite(tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.VersionTLS12),
			wantErr: "handshake failure"},
		{desc: "RSA key exchange only, legacy_ciphers", serve: rsaCert, configure: suite(tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.VersionTLS12),
			o: Options{LegacyCiphers: true}, want: "TLS 1.2 TLS_RSA_WITH_AES_128_CBC_SHA"},
		{desc: "3DES on TLS 1.0 with RSA-1024, min_version 1.0 and legacy_ciphers", serve: rsaCert, configure: suite(tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, tls.VersionTLS10),
			o: Options{MinVersion: tls.VersionTLS10, LegacyCiphers: true}, want: "TLS 1.0 TLS_RSA_WITH_3DES_EDE_CBC_SHA"},
		{desc: "RSA-1024 SHA-1 self-signed key, TLS 1.3", serve: rsaCert,
			want: "TLS 1.3 TLS_AES_128_GCM_SHA256"},
		{desc: "RSA-1024 SHA-1 self-signed key, TLS 1.2 ECDHE", serve: rsaCert, configure: func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 },
			want: "TLS 1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
		{desc: "RC4 stays refused", serve: rsaCert, configure: suite(tls.TLS_RSA_WITH_RC4_128_SHA, tls.VersionTLS12),
			o: Options{MinVersion: tls.VersionTLS10, LegacyCiphers: true}, wantErr: "handshake failure"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			srv := oldBackend(t, tc.serve.tls, tc.configure)
			tc.o.Upstream = "onprem"
			tc.o.Pins = []string{SPKIPin(tc.serve.cert)}
			body, _, err := get(t, tc.o, srv.URL)
			switch {
			case tc.want != "" && err != nil:
				t.Fatalf("GET %s: got %v, want %q", srv.URL, err, tc.want)
			case tc.want != "" && body != tc.want:
				t.Errorf("GET %s: got %q, want %q", srv.URL, body, tc.want)
			case tc.want == "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("GET %s: got %v, want an error containing %q", srv.URL, err, tc.wantErr)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint16
	}{{"", tls.VersionTLS12}, {"1.0", tls.VersionTLS10}, {"1.1", tls.VersionTLS11}, {"1.2", tls.VersionTLS12}, {"1.3", tls.VersionTLS13}} {
		if got, err := ParseVersion(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseVersion(%q): got %v, %v, want %v", tc.in, got, err, tc.want)
		}
	}
	if _, err := ParseVersion("1.4"); err == nil {
		t.Errorf("ParseVersion(%q): got no error, want one", "1.4")
	}
}

func TestLegacyCipherSuites(t *testing.T) {
	got := LegacyCipherSuites()
	has := map[uint16]bool{}
	for _, id := range got {
		has[id] = true
	}
	for _, id := range []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256} {
		if !has[id] {
			t.Errorf("LegacyCipherSuites(): missing %s", tls.CipherSuiteName(id))
		}
	}
	for _, id := range []uint16{tls.TLS_RSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA, tls.TLS_AES_128_GCM_SHA256} {
		if has[id] {
			t.Errorf("LegacyCipherSuites(): has %s, want it left out", tls.CipherSuiteName(id))
		}
	}
}

// TestLegacyTLSConfig checks NewTLSConfig carries the legacy options, for
// callers that dial themselves.
func TestLegacyTLSConfig(t *testing.T) {
	t.Parallel()
	c := newOldCert(t, oldSpec{cn: "lb"})
	srv := oldBackend(t, c.tls, func(cfg *tls.Config) {
		// An explicit MinVersion: servers, too, only speak TLS 1.0 when told.
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS10
	})
	cfg, err := NewTLSConfig(Options{Upstream: "onprem", Pins: []string{SPKIPin(c.cert)}, MinVersion: tls.VersionTLS10, LegacyCiphers: true})
	if err != nil {
		t.Fatalf("NewTLSConfig: %v", err)
	}
	d := tls.Dialer{Config: cfg}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatalf("tls dial %s: %v", srv.Listener.Addr(), err)
	}
	defer conn.Close()
	if v := conn.(*tls.Conn).ConnectionState().Version; v != tls.VersionTLS10 {
		t.Errorf("negotiated version: got %s, want TLS 1.0", tls.VersionName(v))
	}
}
