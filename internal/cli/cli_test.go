package cli

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// binary is the drawbridge binary built once for these tests: they drive
// it as an operator does, as a real process with real signals.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drawbridge-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "drawbridge")
	out, err := exec.Command("go", "build", "-o", binary, "../../cmd/drawbridge").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building drawbridge: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running drawbridge %v: %v", args, err)
	}
	return result{code, stdout.String(), stderr.String()}
}

// fixture is a folder with a listener cert and a backend.
type fixture struct {
	dir         string
	frontCert   string // PEM paths of the listener certificate
	frontKey    string
	frontCA     *x509.CertPool
	backend     *httptest.Server
	backendCert *certs.Cert
}

func newFixture(t *testing.T, handler http.Handler) *fixture {
	t.Helper()
	dir := t.TempDir()
	front := certs.SelfSigned(t, certs.Options{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	certFile, keyFile := front.WriteFiles(t, dir)
	bc := certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}})
	if handler == nil {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "backend:"+r.URL.Path) })
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{bc.TLS}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &fixture{dir: dir, frontCert: certFile, frontKey: keyFile, frontCA: front.Pool(), backend: srv, backendCert: bc}
}

func (f *fixture) config(t *testing.T, extra string) string {
	t.Helper()
	text := fmt.Sprintf(`listeners:
  - name: public
    addr: 127.0.0.1:0
    tls: {cert: %q, key: %q}
admin: {addr: "off"}
shutdown_grace: 5s
upstreams:
  onprem:
    targets: [%s]
    tls:
      server_name: backend.internal
      pins: [%q]
routes:
  - path: /{proxy+}
    upstream: onprem
%s`, f.frontCert, f.frontKey, f.backend.URL, transport.SPKIPin(f.backendCert.Cert), extra)
	path := filepath.Join(f.dir, "drawbridge.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestValidate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	good := f.config(t, "")
	if r := run(t, "validate", "-c", good); r.code != 0 || !strings.Contains(r.stdout, "ok") {
		t.Errorf("validate good config: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	bad := filepath.Join(f.dir, "bad.yaml")
	os.WriteFile(bad, []byte(`listeners:
  - addr: 127.0.0.1:8443
    tls: {cert: missing.crt, key: missing.key}
upstreams:
  onprem:
    targets: [http://10.0.0.5]
    tls: {server_name: backend.internal}
    dial_timeout: 3 parsecs
routes:
  - path: /orders/{id}
    upstream: nope
  - path: /orders/{id}
    upstream: onprem
    colour: blue
`), 0o600)
	r := run(t, "validate", "-c", bad)
	if r.code == 0 {
		t.Fatalf("validate bad config: exit 0, want non-zero")
	}
	wantLines := []string{
		bad + `:3: `,  // missing cert file
		bad + `:6: `,  // plaintext target
		bad + `:8: `,  // bad duration
		bad + `:11: `, // unknown upstream
		bad + `:14: `, // unknown key
	}
	for _, want := range wantLines {
		if !strings.Contains(r.stderr, "\n"+want) && !strings.HasPrefix(r.stderr, want) {
			t.Errorf("validate bad config: stderr lacks a line starting %q:\n%s", want, r.stderr)
		}
	}
	for _, want := range []string{"allow_insecure", "parsecs", `"nope"`, "colour"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("validate bad config: stderr does not mention %q:\n%s", want, r.stderr)
		}
	}

	if r := run(t, "validate", "-c", filepath.Join(f.dir, "absent.yaml")); r.code == 0 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("validate missing file: exit %d, stderr %q; want non-zero and one line", r.code, r.stderr)
	}

	// A certificate that does not parse is found by validate, not at serve.
	garbage := filepath.Join(f.dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)
	cfg := strings.Replace(readFile(t, good), f.frontCert, garbage, 1)
	brokenCert := filepath.Join(f.dir, "broken-cert.yaml")
	os.WriteFile(brokenCert, []byte(cfg), 0o600)
	if r := run(t, "validate", "-c", brokenCert); r.code == 0 || !strings.Contains(r.stderr, brokenCert+":") {
		t.Errorf("validate with an unparsable cert: exit %d, stderr %q; want FILE:LINE error", r.code, r.stderr)
	}
}

func TestPin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	r := run(t, "pin", f.backend.URL, "--server-name", "backend.internal")
	if r.code != 0 {
		t.Fatalf("pin: exit %d, stderr %q", r.code, r.stderr)
	}
	want := "pin: " + transport.SPKIPin(f.backendCert.Cert)
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(r.stdout) {
		t.Errorf("pin output lacks the line %q:\n%s", want, r.stdout)
	}
	if r := run(t, "pin", "https://127.0.0.1:1"); r.code == 0 || r.stderr == "" {
		t.Errorf("pin of a closed port: exit %d, stderr %q; want an error", r.code, r.stderr)
	}
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"serve", "validate", "pin", "quickstart", "version"} {
		r := run(t, cmd, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("drawbridge %s --help: exit %d, stdout %q", cmd, r.code, r.stdout)
		}
	}
	if r := run(t, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "drawbridge ") {
		t.Errorf("drawbridge version: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := run(t, "nosuchcommand"); r.code == 0 {
		t.Errorf("drawbridge nosuchcommand: exit 0, want non-zero")
	}
}

// server is a running `drawbridge serve` process.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	logs *lockedBuffer
	addr string
	done chan error
}

func startServe(t *testing.T, cfg string) *server {
	t.Helper()
	cmd := exec.Command(binary, "serve", "-c", cfg)
	// If the test binary dies (a timeout panic skips cleanups), the
	// gateway must not outlive it holding ports.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logs := &lockedBuffer{}
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, logs: logs, done: make(chan error, 1)}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			logs.WriteString(line + "\n")
			if m := regexp.MustCompile(`"msg":"listening".*"addr":"([^"]+)"`).FindStringSubmatch(line); m != nil {
				select {
				case addrCh <- m[1]:
				default:
				}
			}
		}
	}()
	go func() { s.done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
	})
	select {
	case s.addr = <-addrCh:
	case err := <-s.done:
		s.done <- err
		t.Fatalf("drawbridge serve exited early: %v\n%s", err, logs)
	case <-time.After(20 * time.Second):
		t.Fatalf("drawbridge serve did not start listening:\n%s", logs)
	}
	return s
}

func (s *server) client(roots *x509.CertPool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	s.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func (s *server) waitLog(what, substr string) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.logs.String(), substr) {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s (log %q):\n%s", what, substr, s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeSignals drives a real process: SIGHUP with a broken config
// keeps serving, SIGHUP with a good one applies it, and SIGTERM drains a
// request in flight before exiting 0.
func TestServeSignals(t *testing.T) {
	t.Parallel()
	slowStarted := make(chan struct{}, 1)
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/slow") {
			slowStarted <- struct{}{}
			time.Sleep(500 * time.Millisecond)
		}
		io.WriteString(w, "backend:"+r.URL.Path)
	}))
	cfg := f.config(t, "")
	good := readFile(t, cfg)
	s := startServe(t, cfg)
	c := s.client(f.frontCA)
	base := "https://" + s.addr
	if code, body := get(t, c, base+"/a"); code != 200 || body != "backend:/a" {
		t.Fatalf("GET /a: got %d %q", code, body)
	}

	os.WriteFile(cfg, []byte(good+"\nnot_a_key: true\n"), 0o600)
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitLog("failed reload", "config reload failed")
	if code, _ := get(t, c, base+"/a"); code != 200 {
		t.Fatalf("after a broken reload: GET /a got %d, want 200 from the old config", code)
	}

	os.WriteFile(cfg, []byte(strings.Replace(good, "/{proxy+}", "/v2/{proxy+}", 1)), 0o600)
	s.cmd.Process.Signal(syscall.SIGHUP)
	s.waitLog("good reload", "config reloaded")
	if code, _ := get(t, c, base+"/a"); code != 403 {
		t.Errorf("after reload: GET /a got %d, want 403 (route moved)", code)
	}
	if code, _ := get(t, c, base+"/v2/a"); code != 200 {
		t.Errorf("after reload: GET /v2/a got %d, want 200", code)
	}

	type reply struct {
		code int
		body string
	}
	inflight := make(chan reply, 1)
	go func() {
		code, body := get(t, c, base+"/v2/slow")
		inflight <- reply{code, body}
	}()
	select {
	case <-slowStarted:
	case r := <-inflight:
		t.Fatalf("slow request finished before it reached the backend: %+v", r)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case r := <-inflight:
		if r.code != 200 || r.body != "backend:/v2/slow" {
			t.Errorf("request in flight at SIGTERM: got %d %q, want it completed", r.code, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("request in flight at SIGTERM never completed")
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Errorf("drawbridge serve after SIGTERM: %v, want exit 0\n%s", err, s.logs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("drawbridge serve did not exit after SIGTERM")
	}
}

// TestServeCertReplacedOnDisk: new listener certificate files are served
// without a restart or a signal.
func TestServeCertReplacedOnDisk(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	s := startServe(t, f.config(t, ""))
	next := certs.SelfSigned(t, certs.Options{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	roots := f.frontCA.Clone()
	roots.AddCert(next.Cert)

	// Write beside, then rename over: how certificate tools replace files.
	tmpCert, tmpKey := next.WriteFiles(t, f.dir)
	if err := os.Rename(tmpKey, f.frontKey); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmpCert, f.frontCert); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + s.addr + "/x")
		if err == nil {
			resp.Body.Close()
			if resp.TLS.PeerCertificates[0].Equal(next.Cert) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replaced certificate was not served within 10s (last error %v)\n%s", err, s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
