package auth

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

// pki is the certificates of the client-certificate tests: a CA the
// listener trusts, a server certificate, and client certificates.
type pki struct {
	ca, server        *certs.Cert
	acme, beta, stray *certs.Cert // signed by ca
	rogue             *certs.Cert // self-signed, not trusted
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca := certs.SelfSigned(t, certs.Options{IsCA: true})
	return &pki{
		ca:     ca,
		server: certs.SelfSigned(t, certs.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Parent: ca}),
		acme:   certs.SelfSigned(t, certs.Options{CommonName: "acme client", Parent: ca}),
		beta:   certs.SelfSigned(t, certs.Options{CommonName: "beta client", Parent: ca}),
		stray:  certs.SelfSigned(t, certs.Options{CommonName: "someone else", Parent: ca}),
		rogue:  certs.SelfSigned(t, certs.Options{CommonName: "acme client"}),
	}
}

func fingerprint(c *certs.Cert) string {
	sum := sha256.Sum256(c.Cert.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// newMTLSServer serves h over TLS the way the listener does: client
// certificates verified against p.ca when given. With clientAuth
// tls.RequestClientCert, certificates are accepted unverified instead.
func newMTLSServer(t *testing.T, p *pki, clientAuth tls.ClientAuthType, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{p.server.TLS},
		ClientAuth:   clientAuth,
		ClientCAs:    p.ca.Pool(),
		MinVersion:   tls.VersionTLS12,
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// mtlsClient trusts p.ca and presents cert, if not nil.
func mtlsClient(t *testing.T, p *pki, cert *certs.Cert) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: p.ca.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLS}
	}
	tr := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestClientCertCheck(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	partners := map[string]PartnerMatch{
		"acme": {Subjects: []string{p.acme.Cert.Subject.String()}},
		// Upper case and colons, as openssl prints fingerprints.
		"beta": {Fingerprints: []string{colonHex(fingerprint(p.beta))}},
	}
	ms := newKeyStore(t, time.Now())
	tests := []struct {
		desc       string
		required   bool
		clientAuth tls.ClientAuthType
		cert       *certs.Cert
		key        string // x-api-key; "" for none
		keyFirst   bool   // key check before cert check
		wantStatus int
		wantBody   string
		wantReason string
		wantError  string
	}{
		{desc: "required, no cert", required: true, wantStatus: 403, wantBody: `{"message":"Forbidden"}`, wantReason: ReasonMissing, wantError: "client cert: none verified"},
		{desc: "required, partner by subject", required: true, cert: p.acme, wantStatus: 200, wantBody: "key= name= plan= partner=acme cert=" + fingerprint(p.acme)},
		{desc: "required, partner by fingerprint", required: true, cert: p.beta, wantStatus: 200, wantBody: "key= name= plan= partner=beta cert=" + fingerprint(p.beta)},
		{desc: "required, verified cert of no partner", required: true, cert: p.stray, wantStatus: 403, wantBody: `{"message":"Forbidden"}`, wantReason: ReasonInvalid, wantError: "client cert: no partner matches"},
		{desc: "required, unverified cert", required: true, clientAuth: tls.RequestClientCert, cert: p.rogue, wantStatus: 403, wantBody: `{"message":"Forbidden"}`, wantReason: ReasonMissing, wantError: "client cert: none verified"},
		{desc: "optional, no cert", wantStatus: 200, wantBody: "no identity"},
		{desc: "optional, unverified cert with a partner's subject", clientAuth: tls.RequestClientCert, cert: p.rogue, wantStatus: 200, wantBody: "no identity"},
		{desc: "optional, verified cert of no partner", cert: p.stray, wantStatus: 200, wantBody: "key= name= plan= partner= cert=" + fingerprint(p.stray)},
		{desc: "key then cert, same partner", cert: p.acme, key: valueAcme, keyFirst: true, wantStatus: 200, wantBody: "key=key_acme name=acme plan=gold partner=acme cert=" + fingerprint(p.acme)},
		{desc: "cert then key, same partner", cert: p.acme, key: valueAcme, wantStatus: 200, wantBody: "key=key_acme name=acme plan=gold partner=acme cert=" + fingerprint(p.acme)},
		{desc: "key then cert, other partner", cert: p.beta, key: valueAcme, keyFirst: true, wantStatus: 403, wantBody: `{"message":"Forbidden"}`, wantReason: ReasonMismatch, wantError: "client cert: partner differs from api key's"},
		{desc: "cert then key, other partner", cert: p.beta, key: valueAcme, wantStatus: 403, wantBody: `{"message":"Forbidden"}`, wantReason: ReasonMismatch, wantError: "api key: partner differs from client certificate's"},
		{desc: "key with a cert of no partner", cert: p.stray, key: valueAcme, keyFirst: true, wantStatus: 200, wantBody: "key=key_acme name=acme plan=gold partner=acme cert=" + fingerprint(p.stray)},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			var rs reasons
			var sink recordSink
			var h http.Handler
			var err error
			if tt.key == "" {
				h, err = NewClientCertCheck(ClientCertOptions{Required: tt.required, Partners: partners, OnReject: rs.add}, identityEcho)
			} else if tt.keyFirst {
				h, err = NewClientCertCheck(ClientCertOptions{Required: tt.required, Partners: partners, OnReject: rs.add}, identityEcho)
				if err == nil {
					h, err = NewKeyCheck(KeyOptions{Store: ms, OnReject: rs.add}, h)
				}
			} else {
				h, err = NewKeyCheck(KeyOptions{Store: ms, OnReject: rs.add}, identityEcho)
				if err == nil {
					h, err = NewClientCertCheck(ClientCertOptions{Required: tt.required, Partners: partners, OnReject: rs.add}, h)
				}
			}
			if err != nil {
				t.Fatalf("building the chain: %v", err)
			}
			clientAuth := tt.clientAuth
			if clientAuth == 0 {
				clientAuth = tls.VerifyClientCertIfGiven
			}
			srv := newMTLSServer(t, p, clientAuth, sink.wrap(h))
			header := http.Header{}
			if tt.key != "" {
				header.Set("x-api-key", tt.key)
			}
			got := get(t, mtlsClient(t, p, tt.cert), srv.URL+"/", header)
			if got.status != tt.wantStatus || got.body != tt.wantBody {
				t.Errorf("GET: got %d %q, want %d %q", got.status, got.body, tt.wantStatus, tt.wantBody)
			}
			if got.status == 403 && got.errorType != "ForbiddenException" {
				t.Errorf("x-amzn-ErrorType: got %q, want %q", got.errorType, "ForbiddenException")
			}
			rec := sink.last(t)
			if rec.Error != tt.wantError {
				t.Errorf("record.Error: got %q, want %q", rec.Error, tt.wantError)
			}
			if wantPartner := strings.Contains(tt.wantBody, "partner=acme"); wantPartner && rec.Partner != "acme" {
				t.Errorf("record.Partner: got %q, want %q", rec.Partner, "acme")
			}
			if gotReasons := rs.get(); (tt.wantReason == "" && len(gotReasons) > 0) || (tt.wantReason != "" && !contains(gotReasons, tt.wantReason)) {
				t.Errorf("OnReject calls: got %q, want %q", gotReasons, tt.wantReason)
			}
		})
	}
}

// colonHex writes a "sha256:<hex>" fingerprint as openssl does:
// upper case, colons between bytes.
func colonHex(f string) string {
	h := strings.ToUpper(strings.TrimPrefix(f, "sha256:"))
	var b strings.Builder
	b.WriteString("SHA256:")
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

func TestNewClientCertCheckErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc     string
		partners map[string]PartnerMatch
		wantErr  []string
	}{
		{desc: "empty name", partners: map[string]PartnerMatch{"": {Subjects: []string{"CN=x"}}}, wantErr: []string{"empty name"}},
		{desc: "nothing to match", partners: map[string]PartnerMatch{"acme": {}}, wantErr: []string{`partner "acme": no subjects or fingerprints`}},
		{desc: "bad prefix", partners: map[string]PartnerMatch{"acme": {Fingerprints: []string{"md5:00"}}}, wantErr: []string{`fingerprint "md5:00"`}},
		{desc: "short", partners: map[string]PartnerMatch{"acme": {Fingerprints: []string{"sha256:abcd"}}}, wantErr: []string{`want 64 hex digits`}},
		{desc: "not hex", partners: map[string]PartnerMatch{"acme": {Fingerprints: []string{"sha256:" + strings.Repeat("zz", 32)}}}, wantErr: []string{`fingerprint "sha256:zz`}},
		{desc: "subject of two partners", partners: map[string]PartnerMatch{
			"acme": {Subjects: []string{"CN=shared"}},
			"beta": {Subjects: []string{"CN=shared"}},
		}, wantErr: []string{`partner "beta": subject "CN=shared" is also partner "acme"'s`}},
		{desc: "fingerprint of two partners", partners: map[string]PartnerMatch{
			"acme": {Fingerprints: []string{"sha256:" + strings.Repeat("ab", 32)}},
			"beta": {Fingerprints: []string{"SHA256:" + strings.Repeat("AB", 32)}},
		}, wantErr: []string{`is also partner "acme"'s`}},
		{desc: "every problem reported", partners: map[string]PartnerMatch{
			"acme": {Fingerprints: []string{"sha1:00"}},
			"beta": {},
		}, wantErr: []string{`partner "acme"`, `partner "beta"`}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			_, err := NewClientCertCheck(ClientCertOptions{Partners: tt.partners}, identityEcho)
			if err == nil {
				t.Fatalf("NewClientCertCheck(%v): got nil error, want one containing %q", tt.partners, tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("NewClientCertCheck(%v): got %q, want it to contain %q", tt.partners, err, want)
				}
			}
		})
	}
}

// TestClientCertIdentityPreserved checks that an Identity already in the
// context survives the certificate check.
func TestClientCertIdentityPreserved(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	h, err := NewClientCertCheck(ClientCertOptions{Partners: map[string]PartnerMatch{"acme": {Subjects: []string{p.acme.Cert.Subject.String()}}}}, identityEcho)
	if err != nil {
		t.Fatal(err)
	}
	outer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), Identity{KeyID: "key_x", KeyName: "x", Plan: "silver"})))
	})
	srv := newMTLSServer(t, p, tls.VerifyClientCertIfGiven, outer)
	got := get(t, mtlsClient(t, p, p.acme), srv.URL, nil)
	want := "key=key_x name=x plan=silver partner=acme cert=" + fingerprint(p.acme)
	if got.body != want {
		t.Errorf("GET: got %q, want %q", got.body, want)
	}
	if _, ok := IdentityFrom(context.Background()); ok {
		t.Errorf("IdentityFrom(context.Background()): got ok, want none")
	}
}
