package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

var loopback = net.IPv4(127, 0, 0, 1)

// fixture is the set of certificates the tests serve and trust.
type fixture struct {
	selfIP    *certs.Cert // self-signed, backend.internal + 127.0.0.1
	selfName  *certs.Cert // self-signed, backend.internal only
	rogue     *certs.Cert // self-signed, same names as selfIP, other key
	next      *certs.Cert // self-signed, same names, the key rotated to
	ca        *certs.Cert
	caLeaf    *certs.Cert // signed by ca, backend.internal + 127.0.0.1
	expired   *certs.Cert
	notYet    *certs.Cert
	clientCA  *certs.Cert
	client    *certs.Cert // signed by clientCA
	files     map[*certs.Cert]string
	keyFiles  map[*certs.Cert]string
	rogueWith tls.Certificate // rogue leaf with selfIP appended as if an intermediate
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	names := certs.Options{DNSNames: []string{"backend.internal"}, IPs: []net.IP{loopback}}
	now := time.Now()
	f := &fixture{
		selfIP:   certs.SelfSigned(t, names),
		selfName: certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}}),
		rogue:    certs.SelfSigned(t, names),
		next:     certs.SelfSigned(t, certs.Options{DNSNames: names.DNSNames, IPs: names.IPs, KeyType: "rsa"}),
		ca:       certs.SelfSigned(t, certs.Options{IsCA: true}),
		expired: certs.SelfSigned(t, certs.Options{DNSNames: names.DNSNames, IPs: names.IPs,
			NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}),
		notYet: certs.SelfSigned(t, certs.Options{DNSNames: names.DNSNames, IPs: names.IPs,
			NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(48 * time.Hour)}),
		clientCA: certs.SelfSigned(t, certs.Options{IsCA: true, KeyType: "ed25519"}),
		files:    map[*certs.Cert]string{},
		keyFiles: map[*certs.Cert]string{},
	}
	f.caLeaf = certs.SelfSigned(t, certs.Options{DNSNames: names.DNSNames, IPs: names.IPs, Parent: f.ca})
	f.client = certs.SelfSigned(t, certs.Options{CommonName: "drawbridge", Parent: f.clientCA})
	f.rogueWith = tls.Certificate{
		Certificate: [][]byte{f.rogue.Cert.Raw, f.selfIP.Cert.Raw},
		PrivateKey:  f.rogue.Key,
	}
	dir := t.TempDir()
	for _, c := range []*certs.Cert{f.selfIP, f.selfName, f.rogue, f.ca, f.expired, f.notYet, f.client} {
		f.files[c], f.keyFiles[c] = c.WriteFiles(t, dir)
	}
	return f
}

// backend starts a TLS server on loopback that answers with the protocol
// the request arrived over.
func backend(t *testing.T, cert tls.Certificate, configure func(*httptest.Server)) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	if configure != nil {
		configure(srv)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// leafRecorder is an OnVerified hook that remembers the leaves it saw.
type leafRecorder struct {
	mu     sync.Mutex
	leaves []*x509.Certificate
}

func (r *leafRecorder) record(leaf *x509.Certificate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leaves = append(r.leaves, leaf)
}

func (r *leafRecorder) seen() []*x509.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*x509.Certificate(nil), r.leaves...)
}

// get sends GET url through a transport built from o and returns the
// response body and protocol.
func get(t *testing.T, o Options, rawURL string) (body string, protoMajor int, err error) {
	t.Helper()
	tr, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatalf("http.NewRequest(%q): %v", rawURL, err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got status %d, want 200", rawURL, resp.StatusCode)
	}
	return string(b), resp.ProtoMajor, nil
}

func TestVerification(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pin := SPKIPin
	tests := []struct {
		desc       string
		serve      tls.Certificate
		o          Options
		wantReason Reason // "" means the request succeeds
		wantDetail string // substring of VerifyError.Detail
	}{
		{
			desc:  "ca file: self-signed cert as its own root, IP SAN matches dialed 127.0.0.1",
			serve: f.selfIP.TLS,
			o:     Options{CAFile: f.files[f.selfIP]},
		},
		{
			desc:  "ca file: private CA",
			serve: f.caLeaf.TLS,
			o:     Options{CAFile: f.files[f.ca]},
		},
		{
			desc:  "server_name backend.internal while dialing 127.0.0.1",
			serve: f.selfName.TLS,
			o:     Options{CAFile: f.files[f.selfName], ServerName: "backend.internal"},
		},
		{
			desc:  "pin alone, name does not match",
			serve: f.selfName.TLS,
			o:     Options{Pins: []string{pin(f.selfName.Cert)}, ServerName: "elsewhere.example"},
		},
		{
			desc:  "rotation: old key accepted with two pins",
			serve: f.selfIP.TLS,
			o:     Options{Pins: []string{pin(f.selfIP.Cert), pin(f.next.Cert)}},
		},
		{
			desc:  "rotation: new key accepted with two pins",
			serve: f.next.TLS,
			o:     Options{Pins: []string{pin(f.selfIP.Cert), pin(f.next.Cert)}},
		},
		{
			desc:  "pins and CA: chain verifies, no pin matches",
			serve: f.caLeaf.TLS,
			o:     Options{CAFile: f.files[f.ca], Pins: []string{pin(f.selfIP.Cert)}},
		},
		{
			desc:  "pins and CA: pin matches, chain would not",
			serve: f.selfName.TLS,
			o:     Options{CAFile: f.files[f.ca], Pins: []string{pin(f.selfName.Cert)}},
		},
		{
			desc:  "operator opted out of verification",
			serve: f.rogue.TLS,
			o:     Options{InsecureSkipVerify: true},
		},
		{
			desc:       "rogue cert, pins only",
			serve:      f.rogue.TLS,
			o:          Options{Pins: []string{pin(f.selfIP.Cert)}},
			wantReason: ReasonPinMismatch,
			wantDetail: "leaf " + pin(f.rogue.Cert) + " matches none of 1 pins",
		},
		{
			desc:       "rogue cert, CA only",
			serve:      f.rogue.TLS,
			o:          Options{CAFile: f.files[f.selfIP]},
			wantReason: ReasonUnknownAuthority,
		},
		{
			desc:       "rogue leaf with pinned cert appended as intermediate, pins only",
			serve:      f.rogueWith,
			o:          Options{Pins: []string{pin(f.selfIP.Cert)}},
			wantReason: ReasonPinMismatch,
		},
		{
			desc:       "rogue leaf with trusted cert appended as intermediate, CA only",
			serve:      f.rogueWith,
			o:          Options{CAFile: f.files[f.selfIP]},
			wantReason: ReasonUnknownAuthority,
		},
		{
			desc:       "pins and CA, neither matches",
			serve:      f.rogue.TLS,
			o:          Options{CAFile: f.files[f.ca], Pins: []string{pin(f.selfIP.Cert), pin(f.next.Cert)}},
			wantReason: ReasonUnknownAuthority,
			wantDetail: "no pin matched",
		},
		{
			desc:       "system roots do not trust a self-signed cert",
			serve:      f.selfIP.TLS,
			o:          Options{SystemRoots: true},
			wantReason: ReasonUnknownAuthority,
		},
		{
			desc:       "wrong server_name",
			serve:      f.selfIP.TLS,
			o:          Options{CAFile: f.files[f.selfIP], ServerName: "other.internal"},
			wantReason: ReasonNameMismatch,
		},
		{
			desc:       "dialed IP not in SANs",
			serve:      f.selfName.TLS,
			o:          Options{CAFile: f.files[f.selfName]},
			wantReason: ReasonNameMismatch,
		},
		{
			desc:       "private CA, wrong server_name",
			serve:      f.caLeaf.TLS,
			o:          Options{CAFile: f.files[f.ca], ServerName: "other.internal"},
			wantReason: ReasonNameMismatch,
		},
		{
			desc:       "expired, CA",
			serve:      f.expired.TLS,
			o:          Options{CAFile: f.files[f.expired]},
			wantReason: ReasonExpired,
		},
		{
			desc:       "expired even when pinned",
			serve:      f.expired.TLS,
			o:          Options{Pins: []string{pin(f.expired.Cert)}},
			wantReason: ReasonExpired,
		},
		{
			desc:       "not yet valid, CA",
			serve:      f.notYet.TLS,
			o:          Options{CAFile: f.files[f.notYet]},
			wantReason: ReasonNotYetValid,
		},
		{
			desc:       "not yet valid, pinned",
			serve:      f.notYet.TLS,
			o:          Options{Pins: []string{pin(f.notYet.Cert)}},
			wantReason: ReasonNotYetValid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			srv := backend(t, tt.serve, nil)
			var rec leafRecorder
			o := tt.o
			o.Upstream = "onprem"
			o.OnVerified = rec.record
			_, _, err := get(t, o, srv.URL)
			leaves := rec.seen()
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("GET %s: got %v, want success", srv.URL, err)
				}
				if len(leaves) == 0 || !leaves[0].Equal(mustParse(t, tt.serve.Certificate[0])) {
					t.Errorf("OnVerified: got %d leaves, want the served leaf", len(leaves))
				}
				return
			}
			ve, ok := AsVerifyError(err)
			if !ok {
				t.Fatalf("AsVerifyError(%v): got false, want a *VerifyError", err)
			}
			if ve.Reason != tt.wantReason {
				t.Errorf("AsVerifyError(err).Reason: got %q, want %q (err: %v)", ve.Reason, tt.wantReason, err)
			}
			if ve.Upstream != "onprem" {
				t.Errorf("AsVerifyError(err).Upstream: got %q, want %q", ve.Upstream, "onprem")
			}
			if !strings.Contains(ve.Detail, tt.wantDetail) {
				t.Errorf("AsVerifyError(err).Detail: got %q, want it to contain %q", ve.Detail, tt.wantDetail)
			}
			if !strings.Contains(err.Error(), `upstream "onprem": backend certificate refused: `+string(tt.wantReason)) {
				t.Errorf("err.Error(): got %q, want the refusal named", err)
			}
			if len(leaves) != 0 {
				t.Errorf("OnVerified: called %d times for a refused certificate, want 0", len(leaves))
			}
		})
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("x509.ParseCertificate: %v", err)
	}
	return c
}

// TestIPTargetHasNoServerNameInVerifyConnection records why New dials TLS
// itself: with a plain http.Transport, net/http sets ServerName to the IP
// on its per-connection config clone, but crypto/tls sends no SNI for an IP
// and so VerifyConnection sees an empty ConnectionState.ServerName. A
// verifier relying on it would have no name to check.
func TestIPTargetHasNoServerNameInVerifyConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var mu sync.Mutex
	var gotSNI []string
	srv := backend(t, f.selfIP.TLS, func(s *httptest.Server) {
		s.TLS.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			gotSNI = append(gotSNI, hello.ServerName)
			mu.Unlock()
			return nil, nil
		}
	})
	seen := make(chan string, 1)
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			seen <- cs.ServerName
			return nil
		},
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(srv.URL)
	if err != nil {
		t.Fatalf("GET %s: %v", srv.URL, err)
	}
	resp.Body.Close()
	if got := <-seen; got != "" {
		t.Errorf("ConnectionState.ServerName for %s: got %q, want empty", srv.URL, got)
	}

	// New verifies the dialed IP anyway, and sends SNI only for names.
	if _, _, err := get(t, Options{CAFile: f.files[f.selfIP]}, srv.URL); err != nil {
		t.Fatalf("GET %s via New: %v", srv.URL, err)
	}
	if _, _, err := get(t, Options{CAFile: f.files[f.selfIP], ServerName: "backend.internal"}, srv.URL); err != nil {
		t.Fatalf("GET %s via New with server name: %v", srv.URL, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"", "", "backend.internal"}
	if strings.Join(gotSNI, ",") != strings.Join(want, ",") {
		t.Errorf("SNI seen by backend: got %q, want %q", gotSNI, want)
	}
}

func TestProtocol(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		desc      string
		h2        bool
		wantMajor int
	}{
		{desc: "backend offers h2", h2: true, wantMajor: 2},
		{desc: "backend offers only http/1.1", h2: false, wantMajor: 1},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			srv := backend(t, f.selfIP.TLS, func(s *httptest.Server) { s.EnableHTTP2 = tt.h2 })
			body, major, err := get(t, Options{Pins: []string{SPKIPin(f.selfIP.Cert)}}, srv.URL)
			if err != nil {
				t.Fatalf("GET %s: %v", srv.URL, err)
			}
			if major != tt.wantMajor {
				t.Errorf("GET %s: got ProtoMajor %d (%s), want %d", srv.URL, major, body, tt.wantMajor)
			}
		})
	}
}

func TestClientCertificate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := backend(t, f.selfIP.TLS, func(s *httptest.Server) {
		s.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		s.TLS.ClientCAs = f.clientCA.Pool()
	})
	tests := []struct {
		desc    string
		o       Options
		wantErr bool
	}{
		{
			desc: "client cert presented",
			o:    Options{CAFile: f.files[f.selfIP], ClientCertFile: f.files[f.client], ClientKeyFile: f.keyFiles[f.client]},
		},
		{
			desc:    "no client cert",
			o:       Options{CAFile: f.files[f.selfIP]},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			_, _, err := get(t, tt.o, srv.URL)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("GET %s: got err %v, want error %t", srv.URL, err, tt.wantErr)
			}
			if _, ok := AsVerifyError(err); ok {
				t.Errorf("AsVerifyError(%v): got true, want false (the backend refused us, not we it)", err)
			}
		})
	}
}

func TestDialContextHook(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := backend(t, f.selfName.TLS, nil)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var dialed []string
	o := Options{
		CAFile: f.files[f.selfName],
		// The URL names a host that does not resolve; the hook dials the
		// loopback address in its place, as the upstream pool does.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dialed = append(dialed, addr)
			mu.Unlock()
			var d net.Dialer
			return d.DialContext(ctx, network, srv.Listener.Addr().String())
		},
	}
	target := "https://" + net.JoinHostPort("backend.internal", port) + "/"
	if _, _, err := get(t, o, target); err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := net.JoinHostPort("backend.internal", port); len(dialed) != 1 || dialed[0] != want {
		t.Errorf("DialContext addrs: got %q, want [%q]", dialed, want)
	}
}

func TestPlaintextRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	tr, err := New(Options{Upstream: "onprem", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s: got success, want plaintext refused", srv.URL)
	}
	var uerr *url.Error
	if !errors.As(err, &uerr) || !strings.Contains(err.Error(), "plaintext") {
		t.Errorf("GET %s: got %v, want a plaintext refusal", srv.URL, err)
	}
}

func TestNewTLSConfig(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := backend(t, f.selfIP.TLS, nil)
	addr := srv.Listener.Addr().String()
	tests := []struct {
		desc       string
		o          Options
		wantReason Reason
	}{
		{desc: "server name set", o: Options{CAFile: f.files[f.selfIP], ServerName: "backend.internal"}},
		{desc: "pin, dialing IP without server name", o: Options{Pins: []string{SPKIPin(f.selfIP.Cert)}}},
		{desc: "CA, dialing IP without server name has no name to verify", o: Options{CAFile: f.files[f.selfIP]}, wantReason: ReasonOther},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			cfg, err := NewTLSConfig(tt.o)
			if err != nil {
				t.Fatalf("NewTLSConfig: %v", err)
			}
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("tls.Dial(%s): got %v, want success", addr, err)
				}
				conn.Close()
				return
			}
			if ve, ok := AsVerifyError(err); !ok || ve.Reason != tt.wantReason {
				t.Errorf("tls.Dial(%s): got %v, want reason %q", addr, err, tt.wantReason)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := t.TempDir()
	tests := []struct {
		desc string
		o    Options
		want string // substring of the error
	}{
		{desc: "nothing to verify with", o: Options{}, want: "no way to verify"},
		{desc: "missing CA file", o: Options{CAFile: dir + "/nope.pem"}, want: "nope.pem"},
		{desc: "CA file holds a key", o: Options{CAFile: f.keyFiles[f.ca]}, want: "no PEM certificate found"},
		{desc: "malformed pin", o: Options{Pins: []string{"sha1/abc"}}, want: `parsing pin "sha1/abc"`},
		{desc: "pin of wrong length", o: Options{Pins: []string{"sha256/AAAA"}}, want: "3 bytes"},
		{desc: "client cert without key", o: Options{Pins: []string{SPKIPin(f.ca.Cert)}, ClientCertFile: f.files[f.client]}, want: "both a cert file and a key file"},
		{desc: "client key mismatched", o: Options{Pins: []string{SPKIPin(f.ca.Cert)}, ClientCertFile: f.files[f.client], ClientKeyFile: f.keyFiles[f.ca]}, want: f.files[f.client]},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			o := tt.o
			o.Upstream = "onprem"
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `upstream "onprem"`) {
				t.Errorf("New(%+v): got %v, want error naming the upstream and containing %q", o, err, tt.want)
			}
		})
	}
}

func TestParsePin(t *testing.T) {
	t.Parallel()
	c := certs.SelfSigned(t, certs.Options{})
	good := SPKIPin(c.Cert)
	tests := []struct {
		desc    string
		in      string
		wantErr bool
	}{
		{desc: "as SPKIPin prints it", in: good},
		{desc: "padding omitted", in: strings.TrimRight(good, "=")},
		{desc: "surrounding space", in: " " + good + " "},
		{desc: "no prefix", in: strings.TrimPrefix(good, "sha256/"), wantErr: true},
		{desc: "other hash", in: "sha1/" + strings.TrimPrefix(good, "sha256/"), wantErr: true},
		{desc: "not base64", in: "sha256/!!!", wantErr: true},
		{desc: "too short", in: "sha256/AAAA", wantErr: true},
		{desc: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePin(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Errorf("ParsePin(%q): got nil error, want one", tt.in)
				}
				return
			}
			if err != nil || got != spkiHash(c.Cert) {
				t.Errorf("ParsePin(%q): got %x, %v, want %x", tt.in, got, err, spkiHash(c.Cert))
			}
		})
	}
}

func TestVerifyErrorMessage(t *testing.T) {
	t.Parallel()
	inner := errors.New("x509: boom")
	e := &VerifyError{Upstream: "onprem", Reason: ReasonPinMismatch, Detail: "leaf sha256/AAA matches none of 2 pins", Err: inner}
	want := `upstream "onprem": backend certificate refused: pin mismatch: leaf sha256/AAA matches none of 2 pins`
	if got := e.Error(); got != want {
		t.Errorf("VerifyError.Error(): got %q, want %q", got, want)
	}
	wrapped := &url.Error{Op: "Get", URL: "https://x", Err: &net.OpError{Op: "remote error", Err: e}}
	if got, ok := AsVerifyError(wrapped); !ok || got != e {
		t.Errorf("AsVerifyError(wrapped): got %v, %t, want the error, true", got, ok)
	}
	if !errors.Is(wrapped, inner) {
		t.Errorf("errors.Is(wrapped, inner): got false, want true")
	}
	if _, ok := AsVerifyError(errors.New("other")); ok {
		t.Errorf("AsVerifyError(other): got true, want false")
	}
}
