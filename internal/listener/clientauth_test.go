package listener

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

// mtls is a running listener that takes client certificates.
type mtls struct {
	s           *Server
	url         string
	serverRoots *x509.CertPool
	caFile      string
	revokedFile string
	logs        *logBuffer
}

// startMTLS serves with the given client CAs written to a file (and a
// revoked file holding revoked, if not nil). The handler answers
// "verified=<bool> proto=<major>".
func startMTLS(t *testing.T, clientAuth string, clientCAs []*certs.Cert, revoked []byte) *mtls {
	t.Helper()
	dir := t.TempDir()
	serverCA := newCA(t)
	leaf, key := serverCA.leaf(t, "ecdsa")
	certFile, keyFile := certFiles(t, dir, key, leaf)
	m := &mtls{serverRoots: serverCA.pool(), caFile: filepath.Join(dir, "clients-ca.pem"), logs: &logBuffer{}}
	writeFile(t, m.caFile, caBundle(clientCAs...))
	o := Options{CertFile: certFile, KeyFile: keyFile, ClientCAFile: m.caFile, ClientAuth: clientAuth,
		Logger: m.logs.logger(slog.LevelDebug)}
	if revoked != nil {
		m.revokedFile = filepath.Join(dir, "revoked.txt")
		writeFile(t, m.revokedFile, revoked)
		o.RevokedFile = m.revokedFile
	}
	m.s = startServer(t, o, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "verified=%t proto=%d", len(r.TLS.VerifiedChains) > 0, r.ProtoMajor)
	}))
	m.url = "https://" + m.s.Addr().String() + "/"
	return m
}

func caBundle(cas ...*certs.Cert) []byte {
	var b []byte
	for _, ca := range cas {
		b = append(b, ca.CertPEM...)
	}
	return b
}

// client makes a client that presents cert (none if nil) on fresh
// connections; cache, if not nil, lets it resume TLS sessions.
func (m *mtls) client(t *testing.T, cert *certs.Cert, h2 bool, cache tls.ClientSessionCache) *http.Client {
	t.Helper()
	c := newClient(t, m.serverRoots, h2)
	cfg := c.Transport.(*http.Transport).TLSClientConfig
	if cert != nil {
		// Send it whatever CAs the server names: crypto/tls clients would
		// otherwise send nothing when their CA is not listed, and the
		// test would not reach the server's verification.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert.TLS, nil
		}
	}
	cfg.ClientSessionCache = cache
	return c
}

// get does one request and returns the response and body, or the error.
func (m *mtls) get(c *http.Client) (*http.Response, string, error) {
	resp, err := c.Get(m.url)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// wantAccepted checks that a request with c gets through and that the
// handler saw a verified chain or not.
func (m *mtls) wantAccepted(t *testing.T, what string, c *http.Client, verified bool) *http.Response {
	t.Helper()
	resp, body, err := m.get(c)
	if err != nil {
		t.Fatalf("GET %s: %v; want accepted", what, err)
	}
	if want := fmt.Sprintf("verified=%t", verified); resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, want) {
		t.Errorf("GET %s: got %d %q, want 200 %q", what, resp.StatusCode, body, want)
	}
	return resp
}

// wantRefused checks that a request with c fails and that the server
// logged a handshake error giving reason. Client-side errors vary (an
// alert, or a reset when the server closes with the request unread), so
// the server's log is what says why.
func (m *mtls) wantRefused(t *testing.T, what string, c *http.Client, reason string) {
	t.Helper()
	before := strings.Count(m.logs.String(), reason)
	resp, body, err := m.get(c)
	if err == nil {
		t.Fatalf("GET %s: got %d %q, want the handshake refused (%s)", what, resp.StatusCode, body, reason)
	}
	waitFor(t, fmt.Sprintf("the server to log %q for GET %s", reason, what), func() bool {
		return strings.Count(m.logs.String(), reason) > before
	})
}

const (
	reasonUnknownCA = "certificate signed by unknown authority"
	reasonNoCert    = "didn't provide a certificate"
	reasonRevoked   = "is revoked"
)

func TestClientCertOptional(t *testing.T) {
	partnerCA := certs.SelfSigned(t, certs.Options{IsCA: true, CommonName: "partner CA"})
	partner := certs.SelfSigned(t, certs.Options{CommonName: "partner-a", Parent: partnerCA})
	otherCA := certs.SelfSigned(t, certs.Options{IsCA: true, CommonName: "other CA"})
	stranger := certs.SelfSigned(t, certs.Options{CommonName: "stranger", Parent: otherCA})
	selfSigned := certs.SelfSigned(t, certs.Options{CommonName: "self-signed"})
	m := startMTLS(t, "", []*certs.Cert{partnerCA}, nil)

	tests := []struct {
		desc       string
		cert       *certs.Cert
		h2         bool
		wantReason string // empty: accepted
		wantChain  bool
	}{
		{desc: "no certificate", cert: nil},
		{desc: "no certificate over h2", cert: nil, h2: true},
		{desc: "partner certificate", cert: partner, wantChain: true},
		{desc: "partner certificate over h2", cert: partner, h2: true, wantChain: true},
		{desc: "certificate from another CA", cert: stranger, wantReason: reasonUnknownCA},
		{desc: "self-signed certificate", cert: selfSigned, wantReason: reasonUnknownCA},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c := m.client(t, tc.cert, tc.h2, nil)
			if tc.wantReason != "" {
				m.wantRefused(t, tc.desc, c, tc.wantReason)
				return
			}
			resp := m.wantAccepted(t, tc.desc, c, tc.wantChain)
			if got, want := resp.ProtoMajor, map[bool]int{false: 1, true: 2}[tc.h2]; got != want {
				t.Errorf("GET %s: got HTTP/%d, want HTTP/%d", tc.desc, got, want)
			}
		})
	}
}

func TestClientCertRequire(t *testing.T) {
	partnerCA := certs.SelfSigned(t, certs.Options{IsCA: true})
	partner := certs.SelfSigned(t, certs.Options{CommonName: "partner-a", Parent: partnerCA})
	otherCA := certs.SelfSigned(t, certs.Options{IsCA: true})
	stranger := certs.SelfSigned(t, certs.Options{CommonName: "stranger", Parent: otherCA})
	m := startMTLS(t, ClientAuthRequire, []*certs.Cert{partnerCA}, nil)

	m.wantRefused(t, "without a certificate", m.client(t, nil, false, nil), reasonNoCert)
	m.wantRefused(t, "with a certificate from another CA", m.client(t, stranger, false, nil), reasonUnknownCA)
	m.wantAccepted(t, "with a partner certificate", m.client(t, partner, true, nil), true)
}

func TestRevoked(t *testing.T) {
	partnerCA := certs.SelfSigned(t, certs.Options{IsCA: true})
	revoked := certs.SelfSigned(t, certs.Options{CommonName: "partner-revoked", Parent: partnerCA})
	good := certs.SelfSigned(t, certs.Options{CommonName: "partner-good", Parent: partnerCA})
	// Upper case and a trailing comment, as an operator might write it.
	list := "# revoked partners\n\nSHA256:" + strings.ToUpper(strings.TrimPrefix(Fingerprint(revoked.Cert), "sha256:")) + "  # leaked key\n"
	m := startMTLS(t, ClientAuthOptional, []*certs.Cert{partnerCA}, []byte(list))

	m.wantRefused(t, "with the revoked certificate", m.client(t, revoked, false, nil), reasonRevoked)
	m.wantAccepted(t, "with an unrevoked certificate", m.client(t, good, false, nil), true)
	m.wantAccepted(t, "without a certificate", m.client(t, nil, false, nil), false)

	var line string
	for _, l := range strings.Split(m.logs.String(), "\n") {
		if strings.Contains(l, "refused revoked client certificate") {
			line = l
		}
	}
	for _, want := range []string{"level=INFO", "fingerprint=" + Fingerprint(revoked.Cert), "partner-revoked", "remote=127.0.0.1:"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line for the revoked certificate: got %q, want it to contain %q", line, want)
		}
	}
	if !m.s.Certs().Revoked(revoked.Cert) || m.s.Certs().Revoked(good.Cert) {
		t.Errorf("Certs().Revoked(revoked, good): got %t, %t, want true, false",
			m.s.Certs().Revoked(revoked.Cert), m.s.Certs().Revoked(good.Cert))
	}
}

// TestRevokedFileWatched revokes a certificate by changing the file on disk
// and checks that new handshakes, resumed ones included, refuse it without
// a restart, while a connection that was already open keeps working (the
// documented limit: revocation is checked at the handshake).
func TestRevokedFileWatched(t *testing.T) {
	partnerCA := certs.SelfSigned(t, certs.Options{IsCA: true})
	partner := certs.SelfSigned(t, certs.Options{CommonName: "partner-b", Parent: partnerCA})
	m := startMTLS(t, ClientAuthRequire, []*certs.Cert{partnerCA}, []byte("# nothing revoked yet\n"))
	watch(t, m.s.Certs(), discardLogger())

	// TLS 1.3 tickets arrive after the handshake, so the first request
	// fills the cache and a second client sharing it resumes.
	cache := tls.NewLRUClientSessionCache(4)
	m.wantAccepted(t, "before revocation", m.client(t, partner, false, cache), true)
	if resp := m.wantAccepted(t, "with a cached session", m.client(t, partner, false, cache), true); !resp.TLS.DidResume {
		t.Fatal("GET with a cached session: got a full handshake, want a resumed one (the test relies on it)")
	}
	open := m.client(t, partner, false, nil)
	m.wantAccepted(t, "on a keep-alive connection", open, true)

	writeFile(t, m.revokedFile, []byte(Fingerprint(partner.Cert)+"\n"))
	waitFor(t, "the revoked file to be reloaded", func() bool { return m.s.Certs().Revoked(partner.Cert) })
	m.wantRefused(t, "after revocation", m.client(t, partner, false, nil), reasonRevoked)
	m.wantRefused(t, "after revocation with a cached session", m.client(t, partner, false, cache), reasonRevoked)
	if !strings.Contains(m.logs.String(), "resumed=true") {
		t.Errorf("logs: got none with resumed=true, want the resumed handshake's refusal logged as such")
	}
	resp := m.wantAccepted(t, "on the connection opened before revocation", open, true)
	if resp.TLS.DidResume {
		t.Error("GET on the old connection: got a resumed handshake, want the kept-alive connection")
	}
}

func TestClientCAReload(t *testing.T) {
	ca1 := certs.SelfSigned(t, certs.Options{IsCA: true, CommonName: "partner CA 1"})
	ca2 := certs.SelfSigned(t, certs.Options{IsCA: true, CommonName: "partner CA 2"})
	p1 := certs.SelfSigned(t, certs.Options{CommonName: "partner-1", Parent: ca1})
	p2 := certs.SelfSigned(t, certs.Options{CommonName: "partner-2", Parent: ca2})
	m := startMTLS(t, ClientAuthRequire, []*certs.Cert{ca1}, nil)

	m.wantAccepted(t, "partner of CA 1", m.client(t, p1, false, nil), true)
	m.wantRefused(t, "partner of CA 2 before the CA file changes", m.client(t, p2, false, nil), reasonUnknownCA)

	// Nothing is watching: the new file takes effect only on Reload.
	cache := tls.NewLRUClientSessionCache(4)
	m.wantAccepted(t, "partner of CA 1, filling a session cache", m.client(t, p1, false, cache), true)
	writeFile(t, m.caFile, ca2.CertPEM)
	m.wantAccepted(t, "partner of CA 1 before Reload", m.client(t, p1, false, nil), true)
	if err := m.s.Certs().Reload(); err != nil {
		t.Fatalf("Reload(): %v", err)
	}
	m.wantAccepted(t, "partner of CA 2 after Reload", m.client(t, p2, false, nil), true)
	m.wantRefused(t, "partner of CA 1 after Reload", m.client(t, p1, false, nil), reasonUnknownCA)
	// crypto/tls re-checks a resumed session's chain against the CAs now
	// current; without that, a cached session would outlive the old CA.
	_, _, err := m.get(m.client(t, p1, false, cache))
	if err == nil {
		t.Error("GET from partner of CA 1 with a session from before Reload: got success, want refused")
	}

	// A broken CA file is reported and the previous CAs stay; the server
	// certificate beside it still reloads.
	serverCA := newCA(t)
	leaf, key := serverCA.leaf(t, "ecdsa")
	certFile, keyFile := m.s.Certs().certFile, m.s.Certs().keyFile
	writeFile(t, certFile, certPEM(leaf))
	writeFile(t, keyFile, keyPEM(t, key))
	writeFile(t, m.caFile, p2.CertPEM)
	err = m.s.Certs().Reload()
	if err == nil || !strings.Contains(err.Error(), m.caFile) || !strings.Contains(err.Error(), "not a CA") {
		t.Fatalf("Reload() with a partner certificate as the CA file: got %v, want an error naming %q and saying it is not a CA", err, m.caFile)
	}
	if got, want := servedSerial(t, m.s.Addr().String(), serverCA.pool()), leaf.SerialNumber.String(); got != want {
		t.Errorf("server certificate after Reload with a broken CA file: got serial %s, want %s", got, want)
	}
	m.serverRoots = serverCA.pool()
	m.wantAccepted(t, "partner of CA 2 after a failed CA reload", m.client(t, p2, false, nil), true)
}

func TestWatchBrokenClientCAKeepsOld(t *testing.T) {
	ca := certs.SelfSigned(t, certs.Options{IsCA: true})
	partner := certs.SelfSigned(t, certs.Options{Parent: ca})
	m := startMTLS(t, ClientAuthRequire, []*certs.Cert{ca}, []byte(""))
	var logs logBuffer
	results := watch(t, m.s.Certs(), logs.logger(slog.LevelInfo))

	writeFile(t, m.caFile, []byte("not PEM\n"))
	if err := waitResult(t, results); err == nil || !strings.Contains(err.Error(), m.caFile) {
		t.Fatalf("reload of a garbage CA file: got %v, want an error naming %q", err, m.caFile)
	}
	if got := logs.String(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "reloading client CA file; keeping the previous one") {
		t.Errorf("log after failed reload: got %q, want an ERROR saying the previous client CAs are kept", got)
	}
	m.wantAccepted(t, "partner after a broken CA file", m.client(t, partner, false, nil), true)

	// The revoked file beside it still reloads.
	writeFile(t, m.revokedFile, []byte(Fingerprint(partner.Cert)+"\n"))
	if err := waitResult(t, results); err != nil {
		t.Fatalf("reload of the revoked file: %v", err)
	}
	m.wantRefused(t, "revoked partner", m.client(t, partner, false, nil), reasonRevoked)
}

func waitResult(t *testing.T, results <-chan error) error {
	t.Helper()
	var err error
	waitFor(t, "a reload attempt", func() bool {
		select {
		case err = <-results:
			return true
		default:
			return false
		}
	})
	return err
}

func TestNewClientAuthErrors(t *testing.T) {
	ca := newCA(t)
	leaf, key := ca.leaf(t, "ecdsa")
	dir := t.TempDir()
	certFile, keyFile := certFiles(t, dir, key, leaf)
	clientCA := certs.SelfSigned(t, certs.Options{IsCA: true})
	partner := certs.SelfSigned(t, certs.Options{CommonName: "partner-x", Parent: clientCA})
	file := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodCA := file("ca.pem", clientCA.CertPEM)
	leafAsCA := file("leaf-as-ca.pem", append(append([]byte{}, clientCA.CertPEM...), partner.CertPEM...))
	keyAsCA := file("key-as-ca.pem", clientCA.KeyPEM)
	emptyCA := file("empty.pem", []byte("\n"))
	garbageCA := file("garbage.pem", []byte("hello\n"))
	badRevoked := file("revoked.txt", []byte("# ok\n"+Fingerprint(partner.Cert)+"\nmd5:0123\n"))
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		desc string
		o    Options
		want []string
	}{
		{desc: "CA file missing", o: Options{ClientCAFile: missing},
			want: []string{"reading client CA file", missing}},
		{desc: "CA file empty", o: Options{ClientCAFile: emptyCA},
			want: []string{`client CA file "` + emptyCA + `"`, "empty"}},
		{desc: "CA file not PEM", o: Options{ClientCAFile: garbageCA},
			want: []string{`client CA file "` + garbageCA + `"`, "no PEM data"}},
		{desc: "CA file holds a key", o: Options{ClientCAFile: keyAsCA},
			want: []string{`client CA file "` + keyAsCA + `"`, "private key"}},
		{desc: "CA file holds a partner certificate", o: Options{ClientCAFile: leafAsCA},
			want: []string{`client CA file "` + leafAsCA + `"`, "certificate 2", "partner-x", "not a CA"}},
		{desc: "revoked file missing", o: Options{ClientCAFile: goodCA, RevokedFile: missing},
			want: []string{"reading revoked file", missing}},
		{desc: "revoked file bad line", o: Options{ClientCAFile: goodCA, RevokedFile: badRevoked},
			want: []string{`revoked file "` + badRevoked + `"`, "line 3", `"md5:0123"`}},
		{desc: "unknown client auth", o: Options{ClientCAFile: goodCA, ClientAuth: "required"},
			want: []string{`client auth "required"`, `"optional" or "require"`}},
		{desc: "client auth without CA file", o: Options{ClientAuth: ClientAuthRequire},
			want: []string{`client auth "require" needs a client CA file`}},
		{desc: "revoked file without CA file", o: Options{RevokedFile: badRevoked},
			want: []string{"needs a client CA file"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			o := tc.o
			o.Name, o.Addr, o.CertFile, o.KeyFile, o.Logger = "partners", "127.0.0.1:0", certFile, keyFile, discardLogger()
			s, err := New(o, nil)
			if err == nil {
				t.Fatalf("New(%+v): got %v, nil error; want an error", tc.o, s)
			}
			for _, w := range append(tc.want, `listener "partners"`) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New(%+v): got error %q, want it to contain %q", tc.o, err, w)
				}
			}
		})
	}
}

func TestParseRevoked(t *testing.T) {
	a := strings.Repeat("ab", 32)
	b := strings.Repeat("0f", 32)
	tests := []struct {
		desc    string
		in      string
		want    []string
		wantErr string
	}{
		{desc: "empty", in: "", want: nil},
		{desc: "comments and blank lines", in: "# header\n\n   \n# sha256:" + a + "\n", want: nil},
		{desc: "two entries", in: "sha256:" + a + "\nsha256:" + b, want: []string{a, b}},
		{desc: "upper case, spaces, CRLF, trailing comment", in: "  SHA256:" + strings.ToUpper(a) + "\t# partner a\r\n", want: []string{a}},
		{desc: "no prefix", in: a + "\n", wantErr: "line 1"},
		{desc: "short", in: "sha256:abcd\n", wantErr: "line 1"},
		{desc: "not hex", in: "# x\nsha256:" + strings.Repeat("zz", 32) + "\n", wantErr: "line 2"},
		// The form openssl x509 -noout -fingerprint -sha256 prints, as
		// partners' client certificate fingerprints accept it too.
		{desc: "openssl colon form", in: "sha256:" + strings.Repeat("AB:", 31) + "AB\n", want: []string{a}},
		{desc: "colon form with a pair missing", in: "sha256:" + strings.Repeat("AB:", 30) + "AB\n", wantErr: "line 1"},
		{desc: "other hash", in: "sha1:" + a[:40] + "\n", wantErr: "line 1"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := parseRevoked("revoked.txt", []byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), `"revoked.txt"`) {
					t.Errorf("parseRevoked(%q): got (%v, %v), want an error naming the file and %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseRevoked(%q): %v", tc.in, err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("parseRevoked(%q): got %d entries %v, want %d", tc.in, len(got), got, len(tc.want))
			}
			for _, w := range tc.want {
				if _, ok := got["sha256:"+w]; !ok {
					t.Errorf("parseRevoked(%q): got %v, want it to hold sha256:%s", tc.in, got, w)
				}
			}
		})
	}
}

func TestParseFingerprint(t *testing.T) {
	a := strings.Repeat("ab", 32)
	for _, in := range []string{"sha256:" + a, "SHA256:" + strings.ToUpper(a), "sha256:" + strings.Repeat("aB:", 31) + "Ab"} {
		if got, err := ParseFingerprint(in); err != nil || got != "sha256:"+a {
			t.Errorf("ParseFingerprint(%q): got %q, %v, want %q, nil", in, got, err, "sha256:"+a)
		}
	}
	for _, in := range []string{a, "sha256:" + a[:62], "md5:0123"} {
		if got, err := ParseFingerprint(in); err == nil {
			t.Errorf("ParseFingerprint(%q): got %q, nil, want an error", in, got)
		}
	}
}

func TestFingerprint(t *testing.T) {
	c := certs.SelfSigned(t, certs.Options{})
	sum := sha256.Sum256(c.Cert.Raw)
	if got, want := Fingerprint(c.Cert), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Fingerprint(cert): got %q, want %q", got, want)
	}
	if got := Fingerprint(nil); got != "" {
		t.Errorf("Fingerprint(nil): got %q, want \"\"", got)
	}
	var zero Certs
	if zero.Revoked(c.Cert) || zero.Revoked(nil) {
		t.Error("(&Certs{}).Revoked: got true, want false with no revoked file")
	}
}
