package pin

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// oldCert returns a self-signed certificate with only a Common Name, as
// old load balancers serve them.
func oldCert(t *testing.T, rsaBits int, sigAlg x509.SignatureAlgorithm, notBefore, notAfter time.Time) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	var key crypto.Signer
	var err error
	if rsaBits > 0 {
		key, err = rsa.GenerateKey(rand.Reader, rsaBits)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:       big.NewInt(1),
		Subject:            pkix.Name{CommonName: "lb.corp.internal"},
		NotBefore:          notBefore,
		NotAfter:           notAfter,
		SignatureAlgorithm: sigAlg,
		KeyUsage:           x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("x509.CreateCertificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, leaf
}

// legacyBlock is the YAML block Run prints, with the legacy flags.
type legacyBlock struct {
	TLS struct {
		ServerName    string   `yaml:"server_name"`
		Pins          []string `yaml:"pins"`
		AcceptExpired bool     `yaml:"accept_expired"`
		MinVersion    string   `yaml:"min_version"`
		LegacyCiphers bool     `yaml:"legacy_ciphers"`
	} `yaml:"tls"`
}

// TestRunLegacy checks that Run inspects old backends, reports what is old
// about them, and prints a config block with which the transport connects.
func TestRunLegacy(t *testing.T) {
	t.Parallel()
	now := time.Now()
	valid := [2]time.Time{now.Add(-time.Hour), now.Add(24 * time.Hour)}
	expired := [2]time.Time{now.Add(-3 * 365 * 24 * time.Hour), time.Date(2020, 3, 1, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		desc      string
		rsaBits   int
		sigAlg    x509.SignatureAlgorithm
		dates     [2]time.Time
		configure func(*tls.Config)
		want      legacyBlock
		wantOut   []string
		notOut    []string
	}{
		{
			desc: "CN only, otherwise modern", dates: valid,
			wantOut: []string{"no SAN: the leaf has only CN=\"lb.corp.internal\"", "tls.legacy_common_name: true"},
			notOut:  []string{"expired:", "weak", "old protocol", "old cipher", "warning: every start"},
		},
		{
			desc: "museum piece: TLS 1.0, RSA key exchange, RSA-1024, SHA-1, expired", rsaBits: 1024, sigAlg: x509.SHA1WithRSA, dates: expired,
			configure: func(c *tls.Config) {
				c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS10
				c.CipherSuites = []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}
			},
			wantOut: []string{
				"no SAN:", "expired: on 2020-03-01", "weak signature: SHA1-RSA", "weak key: RSA 1024 bits",
				"old protocol: the backend speaks at most TLS 1.0", "old cipher suite: the backend chose TLS_RSA_WITH_AES_128_CBC_SHA",
				"warning: every start of drawbridge will log a warning for tls.accept_expired, tls.min_version, tls.legacy_ciphers",
			},
		},
		{
			desc: "TLS 1.1 with a default suite", dates: valid,
			configure: func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS11, tls.VersionTLS11 },
			wantOut:   []string{"old protocol: the backend speaks at most TLS 1.1"},
			notOut:    []string{"old cipher", "accept_expired"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			cert, leaf := oldCert(t, tc.rsaBits, tc.sigAlg, tc.dates[0], tc.dates[1])
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			if tc.configure != nil {
				tc.configure(srv.TLS)
			}
			srv.StartTLS()
			defer srv.Close()

			var out bytes.Buffer
			o := Options{Target: srv.URL}
			if err := Run(t.Context(), &out, o); err != nil {
				t.Fatalf("Run(%+v): %v", o, err)
			}
			got := out.String()
			for _, s := range tc.wantOut {
				if !strings.Contains(got, s) {
					t.Errorf("Run(%+v): output lacks %q:\n%s", o, s, got)
				}
			}
			for _, s := range append(tc.notOut, "insecure_skip_verify") {
				if strings.Contains(got, s) {
					t.Errorf("Run(%+v): output has %q:\n%s", o, s, got)
				}
			}
			var cfg legacyBlock
			block := yamlBlock(t, got)
			if err := yaml.Unmarshal([]byte(block), &cfg); err != nil {
				t.Fatalf("yaml.Unmarshal(%q): %v", block, err)
			}

			// Without the printed flags the gateway refuses the backend
			// (unless none are needed); with them it connects.
			minVersion, err := transport.ParseVersion(cfg.TLS.MinVersion)
			if err != nil {
				t.Fatalf("printed min_version: %v", err)
			}
			full := transport.Options{
				Upstream: "lb", ServerName: cfg.TLS.ServerName, Pins: cfg.TLS.Pins,
				AcceptExpired: cfg.TLS.AcceptExpired, MinVersion: minVersion, LegacyCiphers: cfg.TLS.LegacyCiphers,
			}
			if len(cfg.TLS.Pins) != 1 || cfg.TLS.Pins[0] != transport.SPKIPin(leaf) {
				t.Errorf("printed pins: got %q, want [%s]", cfg.TLS.Pins, transport.SPKIPin(leaf))
			}
			if err := getWith(t, full, srv.URL); err != nil {
				t.Errorf("GET %s with the printed block %+v: %v", srv.URL, cfg.TLS, err)
			}
			flagsNeeded := full.AcceptExpired || full.LegacyCiphers || full.MinVersion != transport.DefaultMinVersion
			bare := transport.Options{Upstream: "lb", ServerName: cfg.TLS.ServerName, Pins: cfg.TLS.Pins}
			if err := getWith(t, bare, srv.URL); (err != nil) != flagsNeeded {
				t.Errorf("GET %s with pins only: got %v, want an error: %v", srv.URL, err, flagsNeeded)
			}
		})
	}
}

func getWith(t *testing.T, o transport.Options, url string) error {
	t.Helper()
	tr, err := transport.New(o)
	if err != nil {
		t.Fatalf("transport.New: %v", err)
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
