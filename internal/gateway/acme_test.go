package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/acme"
	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/pebbletest"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

const acmeDomain = "api.example.com"

// startOnFreePorts starts a gateway whose config setup writes for two
// ports picked with testutil.FreePort (setup also starts what must know
// them, such as pebble: it must know the gateway's ports before the
// gateway starts). A port taken by another process in between fails
// gateway.New with EADDRINUSE: it tries again with new ports, up to 5
// times.
func startOnFreePorts(t *testing.T, setup func(httpsPort, httpPort int) string) (h *harness, httpsPort, httpPort int) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		httpsPort, httpPort = testutil.FreePort(t), testutil.FreePort(t)
		if httpsPort == httpPort {
			continue
		}
		h = newHarness(t, setup(httpsPort, httpPort))
		err := h.tryStart()
		if err == nil {
			return h, httpsPort, httpPort
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 5 {
			t.Fatalf("gateway.New (attempt %d): %v", attempt, err)
		}
		t.Logf("port taken before the gateway bound it, trying new ports: %v", err)
	}
}

// tryStart is [harness.start] returning gateway.New's error.
func (h *harness) tryStart() error {
	t := h.t
	t.Helper()
	cfg, err := config.Load(h.cfg)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	h.g, err = New(cfg, Options{Version: "test", Logger: slog.New(slog.NewTextHandler(h.logs, nil))})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.g.Run(ctx) }()
	t.Cleanup(h.stop)
	h.base = "https://" + h.g.ListenerAddrs()[0].String()
	waitFor(t, "gateway ready", func() bool { return h.g.ready.Load() })
	return nil
}

// TestACMEListener runs the whole path against a real ACME CA (pebble): a
// mixed listener gets an ACME certificate for its public name (HTTP-01 on
// its http_addr or TLS-ALPN-01, as the client picks) and keeps serving its file certificate to other names;
// partners' requests reach the backend over the ACME certificate; the
// admin API and metrics show both certificates; a restart serves the
// stored certificate without ordering again.
func TestACMEListener(t *testing.T) {
	cert := backendCert(t)
	srv := backend(t, cert, nil)
	var pebble *pebbletest.Server
	h, httpsPort, httpPort := startOnFreePorts(t, func(httpsPort, httpPort int) string {
		pebble = pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort, TLSPort: httpsPort})
		cfg := oneUpstream(srv.URL, fmt.Sprintf(`{server_name: backend.internal, pins: [%q]}`, transport.SPKIPin(cert.Cert)))
		cfg = strings.Replace(cfg, `    addr: 127.0.0.1:0
    tls: {cert: "{{FRONT_CERT}}", key: "{{FRONT_KEY}}"}`, fmt.Sprintf(`    addr: 127.0.0.1:%d
    http_addr: 127.0.0.1:%d
    tls:
      cert: "{{FRONT_CERT}}"
      key: "{{FRONT_KEY}}"
      acme:
        domains: [%s]
        email: ops@example.com
        ca: %s
        ca_root: %s`, httpsPort, httpPort, acmeDomain, pebble.DirectoryURL(), pebble.CAFile()), 1)
		return cfg + "store: {type: memory}\n"
	})
	roots := pebble.IssuerRoots()

	// The ACME certificate: a partner trusting the CA verifies it.
	acmeClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(httpsPort))
		},
	}}
	url := "https://" + acmeDomain + ":" + strconv.Itoa(httpsPort) + "/orders/7"
	var resp *http.Response
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		if resp, err = acmeClient.Get(url); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: no verified ACME certificate after 60s: %v\nlogs:\n%s", url, err, h.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "backend:/orders/7" {
		t.Errorf("GET %s: got %d %q, want 200 from the backend", url, resp.StatusCode, body)
	}
	acmeLeaf := leafOf(t, resp)

	// Other names: the file certificate.
	fileResp, err := h.client.Get(h.base + "/x")
	if err != nil {
		t.Fatalf("GET by IP (file certificate): %v", err)
	}
	fileResp.Body.Close()
	if leaf := leafOf(t, fileResp); leaf.Equal(acmeLeaf) {
		t.Errorf("GET by IP: served the ACME certificate, want the file one")
	}

	// Plain HTTP redirects to HTTPS with the same host and path.
	noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(httpPort)+"/orders/7?x=1", nil)
	req.Host = acmeDomain
	redirect, err := noFollow.Do(req)
	if err != nil {
		t.Fatalf("GET over plain HTTP: %v", err)
	}
	redirect.Body.Close()
	wantLoc := "https://" + acmeDomain + ":" + strconv.Itoa(httpsPort) + "/orders/7?x=1"
	if redirect.StatusCode != http.StatusPermanentRedirect || redirect.Header.Get("Location") != wantLoc {
		t.Errorf("GET over plain HTTP: got %d %q, want 308 %q", redirect.StatusCode, redirect.Header.Get("Location"), wantLoc)
	}

	var listed []certificateStatus
	if err := json.Unmarshal([]byte(h.adminGet("/v1/certificates")), &listed); err != nil {
		t.Fatalf("GET /v1/certificates: %v", err)
	}
	sources := map[string]certificateStatus{}
	for _, c := range listed {
		sources[c.Source] = c
	}
	if c := sources["acme"]; c.Serial != acmeLeaf.SerialNumber.Text(16) || c.Domain != acmeDomain || !strings.Contains(c.Issuer, "Pebble") || c.NotAfter.IsZero() {
		t.Errorf("GET /v1/certificates: acme entry %+v, want serial %x issued by Pebble", c, acmeLeaf.SerialNumber)
	}
	if c := sources["file"]; c.Listener != "public" || c.NotAfter.IsZero() {
		t.Errorf("GET /v1/certificates: file entry %+v, want the listener's file certificate", c)
	}
	m := h.adminGet("/metrics")
	for _, want := range []string{
		`drawbridge_acme_renewals_total{kind="obtain",listener="public",result="ok"} 1`,
		`drawbridge_cert_expiry_seconds{kind="acme",name="public/` + acmeDomain + `"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// A restart serves the stored certificate from the first handshake,
	// without a new order.
	h.stop()
	h2 := newHarness(t, "")
	h2.cfg, h2.logs = h.cfg, h.logs
	h2.start()
	acmeClient.CloseIdleConnections()
	resp, err = acmeClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s after restart: %v", url, err)
	}
	resp.Body.Close()
	if leaf := leafOf(t, resp); !leaf.Equal(acmeLeaf) {
		t.Errorf("after restart: serial %x, want the stored %x", leaf.SerialNumber, acmeLeaf.SerialNumber)
	}
	if m := h2.adminGet("/metrics"); strings.Contains(m, "drawbridge_acme_renewals_total{") {
		t.Errorf("after restart: an ACME order was made; want the stored certificate reused")
	}
}

// TestACMEOnlyListenerWithoutCertificate: a listener whose only
// certificate would come from a CA that refuses the name starts, fails
// handshakes with an alert, and says why in the log and the admin API.
func TestACMEOnlyListenerWithoutCertificate(t *testing.T) {
	const blocked = "blocked.example.com"
	cert := backendCert(t)
	srv := backend(t, cert, nil)
	h, httpsPort, _ := startOnFreePorts(t, func(httpsPort, _ int) string {
		pebble := pebbletest.Start(t, pebbletest.Options{TLSPort: httpsPort, Blocklist: []string{blocked}})
		cfg := oneUpstream(srv.URL, fmt.Sprintf(`{server_name: backend.internal, pins: [%q]}`, transport.SPKIPin(cert.Cert)))
		cfg = strings.Replace(cfg, `    addr: 127.0.0.1:0
    tls: {cert: "{{FRONT_CERT}}", key: "{{FRONT_KEY}}"}`, fmt.Sprintf(`    addr: 127.0.0.1:%d
    tls:
      acme: {domains: [%s], ca: %s, ca_root: %s, storage: "{{DIR}}/acme"}`, httpsPort, blocked, pebble.DirectoryURL(), pebble.CAFile()), 1)
		return cfg + "store: {type: memory}\n"
	})
	waitFor(t, "the CA's refusal in the log", func() bool { return strings.Contains(h.logs.String(), "rejectedIdentifier") })
	if !strings.Contains(h.logs.String(), "no ACME certificate yet") {
		t.Errorf("log lacks the no-certificate warning:\n%s", h.logs)
	}
	conn, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(httpsPort), &tls.Config{ServerName: blocked, RootCAs: x509.NewCertPool()})
	if err == nil {
		conn.Close()
		t.Fatalf("handshake for %s: succeeded, want an alert", blocked)
	}
	if !strings.Contains(err.Error(), "internal error") {
		t.Errorf("handshake for %s: got %v, want a TLS alert", blocked, err)
	}
	if body := h.adminGet("/v1/certificates"); !strings.Contains(body, "rejectedIdentifier") {
		t.Errorf("GET /v1/certificates: %s; want the CA's error", body)
	}
	m := h.adminGet("/metrics")
	if want := `drawbridge_acme_renewals_total{kind="obtain",listener="public",result="error"}`; !strings.Contains(m, want) {
		t.Errorf("metrics lack %s", want)
	}
}

// TestCheckACME: validate checks an ACME listener offline: it creates no
// storage, contacts no CA, and names a ca_root that holds no certificate.
func TestCheckACME(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc    string
		caRoot  string // file contents; "" for none
		storage string // under the config's folder; "" for acme
		want    string // "" for a valid config
	}{
		{desc: "acme only, Let's Encrypt", want: ""},
		{desc: "private CA root", caRoot: string(backendCert(t).CertPEM), want: ""},
		{desc: "ca_root without a certificate", caRoot: "not PEM\n", want: `drawbridge.yaml:5: listener "public": tls.acme: ca_root`},
		{desc: "storage under a file", storage: "upstream.pem/acme", want: `drawbridge.yaml:5: listener "public": tls.acme: storage`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			storage := "acme"
			if tc.storage != "" {
				storage = tc.storage
			}
			acmeYAML := "{domains: [api.example.com], storage: \"{{DIR}}/" + storage + "\"}"
			h := newHarness(t, "")
			if tc.caRoot != "" {
				if err := os.WriteFile(filepath.Join(h.dir, "root.pem"), []byte(tc.caRoot), 0o600); err != nil {
					t.Fatal(err)
				}
				acmeYAML = "{domains: [api.example.com], storage: \"{{DIR}}/" + storage + "\", ca_root: root.pem}"
			}
			h.rewrite(strings.NewReplacer("{{DIR}}", h.dir).Replace(fmt.Sprintf(`listeners:
  - name: public
    addr: 127.0.0.1:0
    tls:
      acme: %s
upstreams:
  onprem: {targets: ["https://10.0.0.5"], tls: {ca: upstream.pem}}
routes:
  - {path: "/{proxy+}", upstream: onprem}
`, acmeYAML)))
			if err := os.WriteFile(filepath.Join(h.dir, "upstream.pem"), backendCert(t).CertPEM, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(h.cfg)
			if err != nil {
				t.Fatalf("config.Load: %v", err)
			}
			err = Check(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check: %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), h.cfg, "drawbridge.yaml"), tc.want)):
				t.Errorf("Check: got %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(h.dir, "acme")); !os.IsNotExist(err) {
				t.Errorf("Check created the storage folder (stat: %v); validate must not write", err)
			}
		})
	}
}

// TestACMEChangesNeedRestart: a reload cannot change a listener's ACME
// settings or plain-HTTP address (the manager and socket are built at
// start), but moving the same block to other lines is no change.
func TestACMEChangesNeedRestart(t *testing.T) {
	t.Parallel()
	base := config.Listener{Name: "public", Addr: "0.0.0.0:443", HTTPAddr: "0.0.0.0:80",
		TLS: config.ListenerTLS{ACME: &config.ACME{Line: 5, Domains: []string{"api.example.com"}, CA: "https://ca/dir", Storage: "/s"}}}
	edit := func(f func(l *config.Listener)) config.Listener {
		l := base
		a := *base.TLS.ACME
		l.TLS.ACME = &a
		f(&l)
		return l
	}
	for _, tc := range []struct {
		desc string
		l    config.Listener
		want []string
	}{
		{"same settings on other lines", edit(func(l *config.Listener) { l.TLS.ACME.Line = 9 }), nil},
		{"another domain", edit(func(l *config.Listener) { l.TLS.ACME.Domains = []string{"x.example.com"} }), []string{"tls.acme"}},
		{"acme removed", edit(func(l *config.Listener) { l.TLS.ACME = nil }), []string{"tls.acme"}},
		{"http_addr moved", edit(func(l *config.Listener) { l.HTTPAddr = "0.0.0.0:8080" }), []string{"http_addr"}},
	} {
		if got := listenerChanges(base, tc.l); !slices.Equal(got, tc.want) {
			t.Errorf("%s: listenerChanges: got %v, want %v", tc.desc, got, tc.want)
		}
	}
}

// TestTLSALPNOff: TLS-ALPN-01 is off where the CA cannot reach it, and a
// listener that Let's Encrypt can validate only through a forwarded 443
// keeps it, with a warning.
func TestTLSALPNOff(t *testing.T) {
	t.Parallel()
	const private = "https://ca.internal/directory"
	for _, tc := range []struct {
		desc    string
		ca      string
		port    int
		hasHTTP bool
		wantOff bool
		wantWhy string // substring; "" for no log line
	}{
		{"port 0 (tests)", private, 0, true, true, ""},
		{"Let's Encrypt on 443", "", 443, true, false, ""},
		{"Let's Encrypt named, on 443", acme.LetsEncrypt, 443, false, false, ""},
		{"Let's Encrypt on 8443 with HTTP-01", "", 8443, true, true, "port 443 only, and this listener is on port 8443"},
		{"Let's Encrypt named, on 8443 with HTTP-01", acme.LetsEncrypt, 8443, true, true, "port 8443"},
		{"Let's Encrypt on 8443 without HTTP-01", "", 8443, false, false, "only if port 443 is forwarded here"},
		{"Let's Encrypt staging on 8443 with HTTP-01", acme.LetsEncryptStaging, 8443, true, true, "port 8443"},
		{"private CA on 8443", private, 8443, true, false, ""},
	} {
		off, why := tlsALPNOff(tc.ca, tc.port, tc.hasHTTP)
		if off != tc.wantOff || (tc.wantWhy == "") != (why == "") || !strings.Contains(why, tc.wantWhy) {
			t.Errorf("%s: tlsALPNOff = %v, %q; want %v, %q", tc.desc, off, why, tc.wantOff, tc.wantWhy)
		}
	}
}

// TestCertificatesListsEveryListener: GET /v1/certificates has the HTTPS
// listener's, the terminate tcp listener's and the admin API's
// certificates, and nothing for a passthrough listener (it has none).
func TestCertificatesListsEveryListener(t *testing.T) {
	t.Parallel()
	h := newHarness(t, `
listeners:
  - name: public
    addr: 127.0.0.1:0
    tls: {cert: "{{FRONT_CERT}}", key: "{{FRONT_KEY}}"}
  - name: nlb-tls
    type: tcp
    addr: 127.0.0.1:0
    tls: {mode: terminate, cert: "{{FRONT_CERT}}", key: "{{FRONT_KEY}}"}
    sni: {"*": term}
  - name: nlb-pass
    type: tcp
    addr: 127.0.0.1:0
    tls: {mode: passthrough}
    sni: {"*": pass}
admin: {addr: 127.0.0.1:0, tls: {cert: "{{FRONT_CERT}}", key: "{{FRONT_KEY}}"}}
store: {type: memory}
log: {access: "off"}
upstreams:
  pass: {targets: ["tcp://127.0.0.1:9"]}
  term: {targets: ["tls://127.0.0.1:9"], tls: {ca: "{{FRONT_CERT}}"}}
  onprem: {targets: ["https://127.0.0.1:9"], tls: {ca: "{{FRONT_CERT}}"}}
routes:
  - {path: "/{proxy+}", upstream: onprem}
`)
	h.start()
	got := map[string]string{}
	for _, c := range h.g.certificates() {
		if c.NotAfter.IsZero() || c.Serial == "" {
			t.Errorf("entry %+v lacks expiry or serial", c)
		}
		got[c.Listener] = c.Source
	}
	want := map[string]string{"public": "file", "nlb-tls": "file", "admin": "file"}
	if !maps.Equal(got, want) {
		t.Errorf("certificates(): listeners %v, want %v", got, want)
	}
}

// TestStartOnFreePortsRetries: a port another process takes between
// testutil.FreePort and the gateway's bind costs one more attempt, not the
// test.
func TestStartOnFreePortsRetries(t *testing.T) {
	t.Parallel()
	attempts := 0
	h, httpsPort, _ := startOnFreePorts(t, func(httpsPort, httpPort int) string {
		attempts++
		if attempts == 1 {
			// The other process.
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(httpsPort))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}
		return strings.Replace(oneUpstream("https://127.0.0.1:9", `{ca: "{{FRONT_CERT}}"}`), "addr: 127.0.0.1:0",
			fmt.Sprintf("addr: 127.0.0.1:%d\n    http_addr: 127.0.0.1:%d", httpsPort, httpPort), 1)
	})
	if attempts != 2 {
		t.Errorf("setup ran %d times, want 2 (one retry)", attempts)
	}
	if got := h.g.ListenerAddrs()[0].String(); got != "127.0.0.1:"+strconv.Itoa(httpsPort) {
		t.Errorf("listener on %s, want port %d", got, httpsPort)
	}
}
