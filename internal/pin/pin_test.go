package pin

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// tlsBlock is the YAML block Run prints.
type tlsBlock struct {
	TLS struct {
		ServerName string   `yaml:"server_name"`
		Pins       []string `yaml:"pins"`
	} `yaml:"tls"`
}

// yamlBlock returns the lines from "tls:" up to the next blank line.
func yamlBlock(t *testing.T, out string) string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "\ntls:\n")
	if !ok {
		t.Fatalf("output has no tls: block:\n%s", out)
	}
	block, _, _ := strings.Cut(rest, "\n\n")
	return "tls:\n" + block
}

func TestRun(t *testing.T) {
	t.Parallel()
	loopback := net.IPv4(127, 0, 0, 1)
	ca := certs.SelfSigned(t, certs.Options{IsCA: true})
	tests := []struct {
		desc       string
		cert       *certs.Cert
		target     func(srv *httptest.Server) string
		serverName string
		h2         bool
		wantName   string   // server_name in the YAML block
		wantSNI    string   // SNI the backend saw
		wantOut    []string // substrings of the output
		notOut     []string
	}{
		{
			desc:     "self-signed, https URL with IP",
			cert:     certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}, IPs: []net.IP{loopback}}),
			target:   func(s *httptest.Server) string { return s.URL },
			wantName: "backend.internal",
			wantOut: []string{"tls version:  TLS 1.3", "alpn:         http/1.1", "self-signed", "DNS:backend.internal, IP:127.0.0.1",
				"key:        ECDSA P-256", "signature:  ECDSA-SHA256", "days left", "chain:        1 certificate"},
			notOut: []string{"note:"},
		},
		{
			desc:       "host:port with server name, rsa, h2",
			cert:       certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}, KeyType: "rsa"}),
			target:     func(s *httptest.Server) string { return s.Listener.Addr().String() },
			serverName: "backend.internal",
			h2:         true,
			wantName:   "backend.internal",
			wantSNI:    "backend.internal",
			wantOut:    []string{"alpn:         h2", "RSA 2048 bits", "(sent as SNI)"},
			notOut:     []string{"note:"},
		},
		{
			desc:       "no SAN matches server name",
			cert:       certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}}),
			target:     func(s *httptest.Server) string { return s.URL },
			serverName: "lb.corp.internal",
			wantName:   "lb.corp.internal",
			wantSNI:    "lb.corp.internal",
			wantOut:    []string{`note: the leaf has no SAN matching "lb.corp.internal"`},
		},
		{
			desc:     "CA-signed leaf with intermediate sent, ed25519",
			cert:     certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}, Parent: ca}),
			target:   func(s *httptest.Server) string { return s.URL },
			wantName: "backend.internal",
			wantOut:  []string{"chain:        2 certificate", "[1] intermediate", "CN=drawbridge test CA"},
		},
		{
			desc:     "no DNS SAN: suggest the IP",
			cert:     certs.SelfSigned(t, certs.Options{IPs: []net.IP{loopback}, KeyType: "ed25519"}),
			target:   func(s *httptest.Server) string { return s.URL },
			wantName: "127.0.0.1",
			wantOut:  []string{"Ed25519", "SANs:       IP:127.0.0.1"},
		},
		{
			desc: "expired",
			cert: certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"},
				NotBefore: time.Now().Add(-30 * 24 * time.Hour), NotAfter: time.Now().Add(-72 * time.Hour)}),
			target:   func(s *httptest.Server) string { return s.URL },
			wantName: "backend.internal",
			wantOut:  []string{"EXPIRED 3 days ago", "expired: on ", "accept_expired: true", "warning: every start of drawbridge will log a warning for tls.accept_expired"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var sni string
			srv := httptest.NewUnstartedServer(http.NotFoundHandler())
			srv.EnableHTTP2 = tt.h2
			srv.TLS = &tls.Config{
				Certificates: []tls.Certificate{tt.cert.TLS},
				GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
					mu.Lock()
					sni = hello.ServerName
					mu.Unlock()
					return nil, nil
				},
			}
			srv.StartTLS()
			defer srv.Close()

			var out bytes.Buffer
			o := Options{Target: tt.target(srv), ServerName: tt.serverName}
			if err := Run(t.Context(), &out, o); err != nil {
				t.Fatalf("Run(%+v): %v", o, err)
			}
			got := out.String()
			wantPin := transport.SPKIPin(tt.cert.Cert)

			pinLines := regexp.MustCompile(`(?m)^pin: sha256/.*$`).FindAllString(got, -1)
			if len(pinLines) != 1 || pinLines[0] != "pin: "+wantPin {
				t.Errorf("Run(%+v): ^pin: lines: got %q, want [%q]", o, pinLines, "pin: "+wantPin)
			}
			var cfg tlsBlock
			block := yamlBlock(t, got)
			if err := yaml.Unmarshal([]byte(block), &cfg); err != nil {
				t.Fatalf("yaml.Unmarshal(%q): %v", block, err)
			}
			if len(cfg.TLS.Pins) != 1 || cfg.TLS.Pins[0] != wantPin {
				t.Errorf("YAML tls.pins: got %q, want [%q]", cfg.TLS.Pins, wantPin)
			}
			if cfg.TLS.ServerName != tt.wantName {
				t.Errorf("YAML tls.server_name: got %q, want %q", cfg.TLS.ServerName, tt.wantName)
			}
			if _, err := transport.ParsePin(cfg.TLS.Pins[0]); err != nil {
				t.Errorf("transport.ParsePin(%q): %v", cfg.TLS.Pins[0], err)
			}
			mu.Lock()
			if sni != tt.wantSNI {
				t.Errorf("SNI seen by backend: got %q, want %q", sni, tt.wantSNI)
			}
			mu.Unlock()
			for _, s := range tt.wantOut {
				if !strings.Contains(got, s) {
					t.Errorf("Run(%+v): output lacks %q:\n%s", o, s, got)
				}
			}
			for _, s := range tt.notOut {
				if strings.Contains(got, s) {
					t.Errorf("Run(%+v): output has %q:\n%s", o, s, got)
				}
			}
		})
	}
}

// TestPinnedTransportAccepts checks the printed config end to end: the pin
// Run prints is one transport accepts for the same backend.
func TestPinnedTransportAccepts(t *testing.T) {
	t.Parallel()
	c := certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{c.TLS}}
	srv.StartTLS()
	defer srv.Close()

	var out bytes.Buffer
	if err := Run(t.Context(), &out, Options{Target: srv.URL}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var cfg tlsBlock
	if err := yaml.Unmarshal([]byte(yamlBlock(t, out.String())), &cfg); err != nil {
		t.Fatal(err)
	}
	tr, err := transport.New(transport.Options{Upstream: "u", ServerName: cfg.TLS.ServerName, Pins: cfg.TLS.Pins})
	if err != nil {
		t.Fatalf("transport.New: %v", err)
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(srv.URL)
	if err != nil {
		t.Fatalf("GET %s with printed pin: %v", srv.URL, err)
	}
	resp.Body.Close()
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	closed := testutil.FreeAddr(t) // nothing listens there

	// Subtests run in parallel after this function returns, so servers
	// are closed in Cleanup, not defer.
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)

	// Accepts connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()

	tests := []struct {
		desc string
		o    Options
		want string
	}{
		{desc: "closed port", o: Options{Target: "https://" + closed}, want: "connecting to https://" + closed},
		{desc: "not TLS", o: Options{Target: plain.Listener.Addr().String()}, want: "is the port serving TLS?"},
		{desc: "no handshake in time", o: Options{Target: silent.Addr().String(), Timeout: 200 * time.Millisecond}, want: "no TLS handshake within 200ms"},
		{desc: "http scheme", o: Options{Target: "http://127.0.0.1:1"}, want: "scheme must be https"},
		{desc: "empty target", o: Options{Target: ""}, want: "want https://host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			err := Run(t.Context(), &out, tt.o)
			if err == nil {
				t.Fatalf("Run(%+v): got nil error, want one", tt.o)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("Run(%+v): got %q, want one line containing %q", tt.o, msg, tt.want)
			}
			if tt.o.Target != "" && !strings.Contains(msg, tt.o.Target) {
				t.Errorf("Run(%+v): got %q, want it to name the target", tt.o, msg)
			}
			if out.Len() != 0 {
				t.Errorf("Run(%+v): wrote %q, want nothing", tt.o, out.String())
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, in, wantAddr, wantHost string
		wantErr                      bool
	}{
		{desc: "https URL", in: "https://10.0.0.5:8443", wantAddr: "10.0.0.5:8443", wantHost: "10.0.0.5"},
		{desc: "https URL default port", in: "https://lb.corp.internal", wantAddr: "lb.corp.internal:443", wantHost: "lb.corp.internal"},
		{desc: "host:port", in: "lb.corp.internal:443", wantAddr: "lb.corp.internal:443", wantHost: "lb.corp.internal"},
		{desc: "ipv6", in: "https://[::1]:8443", wantAddr: "[::1]:8443", wantHost: "::1"},
		{desc: "bare host", in: "lb.corp.internal", wantAddr: "lb.corp.internal:443", wantHost: "lb.corp.internal"},
		{desc: "http", in: "http://x:80", wantErr: true},
		{desc: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			addr, host, err := parseTarget(tt.in)
			if (err != nil) != tt.wantErr || addr != tt.wantAddr || host != tt.wantHost {
				t.Errorf("parseTarget(%q): got %q, %q, %v, want %q, %q, error %t", tt.in, addr, host, err, tt.wantAddr, tt.wantHost, tt.wantErr)
			}
		})
	}
}
