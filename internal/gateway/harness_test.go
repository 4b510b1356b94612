package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

// harness is a real gateway on loopback, built from a YAML config file,
// with a client that trusts its listener certificate.
type harness struct {
	t      *testing.T
	dir    string
	cfg    string // config file path
	g      *Gateway
	logs   *syncBuffer
	client *http.Client
	base   string // https://127.0.0.1:PORT
	cancel context.CancelFunc
	done   chan error
}

// startGateway writes yaml (with {{DIR}}, {{FRONT_CERT}} and {{FRONT_KEY}}
// replaced) and serves it until the test ends.
func startGateway(t *testing.T, yaml string) *harness {
	t.Helper()
	return newHarness(t, yaml).start()
}

// start loads h's config file and serves it until the test ends.
func (h *harness) start() *harness {
	t := h.t
	t.Helper()
	cfg, err := config.Load(h.cfg)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	h.g, err = New(cfg, Options{Version: "test", Logger: slog.New(slog.NewTextHandler(h.logs, nil))})
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.g.Run(ctx) }()
	t.Cleanup(h.stop)
	h.base = "https://" + h.g.ListenerAddrs()[0].String()
	waitFor(t, "gateway ready", func() bool { return h.g.ready.Load() })
	return h
}

func newHarness(t *testing.T, yaml string) *harness {
	t.Helper()
	dir := t.TempDir()
	front := certs.SelfSigned(t, certs.Options{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	certFile, keyFile := front.WriteFiles(t, dir)
	yaml = strings.NewReplacer("{{DIR}}", dir, "{{FRONT_CERT}}", certFile, "{{FRONT_KEY}}", keyFile).Replace(yaml)
	path := filepath.Join(dir, "drawbridge.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: front.Pool()}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &harness{t: t, dir: dir, cfg: path, logs: &syncBuffer{}, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		h.t.Errorf("gateway did not stop within 10s")
	}
	h.cancel = nil
}

// rewrite replaces the config file (for reload tests).
func (h *harness) rewrite(yaml string) {
	h.t.Helper()
	if err := os.WriteFile(h.cfg, []byte(yaml), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (h *harness) do(method, path string, body io.Reader, header ...string) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (h *harness) get(path string) response { return h.do(http.MethodGet, path, nil) }

// backend is a real HTTPS server with cert, answering with handler, or by
// default with "backend:" and the path it saw.
func backend(t *testing.T, cert *certs.Cert, handler http.Handler) *httptest.Server {
	t.Helper()
	if handler == nil {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "backend:"+r.URL.RequestURI())
		})
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func backendCert(t *testing.T) *certs.Cert {
	return certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}})
}

func writePEM(t *testing.T, dir string, c *certs.Cert) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "ca-*.pem")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(c.CertPEM)
	f.Close()
	return f.Name()
}

func leafOf(t *testing.T, resp *http.Response) *x509.Certificate {
	t.Helper()
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		t.Fatal("response has no peer certificate")
	}
	return resp.TLS.PeerCertificates[0]
}

// httpTestServer is a plaintext backend, for the allow_insecure opt-in.
func httpTestServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "plain:"+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

var waitFor = testutil.WaitFor

type syncBuffer = testutil.SyncBuffer
