package pebbletest

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

const (
	// readyTimeout bounds how long pebble may take to answer on its
	// directory URL; it is usually ready in well under a second.
	readyTimeout = 10 * time.Second
	// stopTimeout bounds a graceful stop before SIGKILL.
	stopTimeout = 5 * time.Second
)

// Options says what pebble validates against.
type Options struct {
	// HTTPPort is the port pebble fetches HTTP-01 challenges from (the
	// gateway's plain-HTTP listener). 0 leaves nothing to validate there.
	HTTPPort int
	// TLSPort is the port pebble dials for TLS-ALPN-01 challenges (the
	// gateway's HTTPS listener).
	TLSPort int
	// Blocklist are names pebble refuses to issue for, with ACME's
	// rejectedIdentifier error: a real refusal for tests.
	Blocklist []string
	// CertValidity is the lifetime of the certificates pebble issues;
	// short ones let a test see a renewal made ahead of expiry. Zero
	// means pebble's default (years).
	CertValidity time.Duration
	// OCSPResponderURL, if set, is written into the certificates pebble
	// issues (pebble runs no OCSP responder: the test serves one, signing
	// with [Server.Issuer]).
	OCSPResponderURL string
}

// Server is a running pebble and pebble-challtestsrv pair. Its ports stay
// the same across Stop and Start; pebble's issuing root does not, since
// pebble makes a new one at every start.
type Server struct {
	t         testing.TB
	dir       string
	pebble    string
	config    string
	dnsAddr   string
	acmePort  int
	mgmtPort  int
	caFile    string
	caPool    *x509.CertPool
	log       *testutil.SyncBuffer
	challtest *process

	mu  sync.Mutex
	cur *process
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs pebble-challtestsrv and pebble until the test ends. If they
// are not installed the test is skipped, or fails when the environment
// variable CI is "true" (CI must run every test).
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	pebble := lookPath(t, "pebble")
	challtest := lookPath(t, "pebble-challtestsrv")
	s := &Server{t: t, dir: t.TempDir(), pebble: pebble, log: &testutil.SyncBuffer{}}
	t.Cleanup(s.kill)

	// pebble's directory is HTTPS; its certificate comes from a CA the
	// ACME client is told to trust (the ca_root of drawbridge's config).
	ca := certs.SelfSigned(t, certs.Options{CommonName: "pebbletest CA", IsCA: true})
	leaf := certs.SelfSigned(t, certs.Options{Parent: ca, DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	certFile, keyFile := leaf.WriteFiles(t, s.dir)
	s.caFile = filepath.Join(s.dir, "pebble-ca.pem")
	if err := os.WriteFile(s.caFile, ca.CertPEM, 0o600); err != nil {
		t.Fatalf("pebbletest: %v", err)
	}
	s.caPool = ca.Pool()

	dnsPort, mgmtDNS := testutil.FreePort(t), testutil.FreePort(t)
	s.dnsAddr = "127.0.0.1:" + strconv.Itoa(dnsPort)
	// Only the DNS server: the gateway under test answers the challenges.
	s.challtest = s.run(challtest,
		"-defaultIPv4", "127.0.0.1",
		"-defaultIPv6", "",
		"-dns01", s.dnsAddr,
		"-http01", "", "-https01", "", "-tlsalpn01", "",
		"-management", "127.0.0.1:"+strconv.Itoa(mgmtDNS))
	testutil.WaitFor(t, "pebble-challtestsrv management port", func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(mgmtDNS), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	s.acmePort, s.mgmtPort = testutil.FreePort(t), testutil.FreePort(t)
	blocklist := o.Blocklist
	if blocklist == nil {
		blocklist = []string{}
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  "127.0.0.1:" + strconv.Itoa(s.acmePort),
		"managementListenAddress":        "127.0.0.1:" + strconv.Itoa(s.mgmtPort),
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       o.HTTPPort,
		"tlsPort":                        o.TLSPort,
		"ocspResponderURL":               o.OCSPResponderURL,
		"externalAccountBindingRequired": false,
		"domainBlocklist":                blocklist,
	}}
	if o.CertValidity > 0 {
		cfg["pebble"].(map[string]any)["certificateValidityPeriod"] = int(o.CertValidity.Seconds())
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("pebbletest: %v", err)
	}
	s.config = filepath.Join(s.dir, "pebble-config.json")
	if err := os.WriteFile(s.config, data, 0o600); err != nil {
		t.Fatalf("pebbletest: %v", err)
	}
	s.Start()
	return s
}

func lookPath(t testing.TB, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI (apt-get install pebble): %v", name, err)
		}
		t.Skipf("%s not installed (apt-get install pebble): %v", name, err)
	}
	return bin
}

// run starts bin with args, its output going to the shared log.
func (s *Server) run(bin string, args ...string) *process {
	s.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.dir
	// Pebble's knobs for tests: no artificial validation delay, no
	// rejected nonces, and a new authorization for every order so that
	// each order really solves a challenge.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("pebbletest: running %s: %v", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	return p
}

// Start starts pebble again after Stop, on the same ports and with the
// same config. Pebble keeps no state: accounts, orders and the issuing
// root are new.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		s.t.Fatalf("pebbletest: pebble is already running")
	}
	p := s.run(s.pebble, "-config", s.config, "-dnsserver", s.dnsAddr)
	s.cur = p
	client := s.client()
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := client.Get(s.DirectoryURL())
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			s.t.Fatalf("pebbletest: pebble exited at start; log:\n%s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("pebbletest: pebble not ready after %v: %v; log:\n%s", readyTimeout, err, s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends pebble (not the DNS server) and waits for it to exit.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return
	}
	stop(s.cur)
	s.cur = nil
}

func stop(p *process) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (s *Server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range []*process{s.cur, s.challtest} {
		if p != nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	s.cur = nil
}

// DirectoryURL is pebble's ACME directory, the ca of an acme config.
func (s *Server) DirectoryURL() string {
	return "https://127.0.0.1:" + strconv.Itoa(s.acmePort) + "/dir"
}

// CAFile is the PEM file of the CA of pebble's own HTTPS certificate, the
// ca_root of an acme config.
func (s *Server) CAFile() string { return s.caFile }

// Log is what pebble and pebble-challtestsrv printed so far.
func (s *Server) Log() string { return s.log.String() }

// client trusts pebble's HTTPS certificate (and nothing else).
func (s *Server) client() *http.Client {
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.caPool}},
	}
}

// IssuerRoots is the pool of the root pebble issues under now, fetched
// from its management interface: a client trusting it verifies the
// certificates pebble issued since its last start.
func (s *Server) IssuerRoots() *x509.CertPool {
	s.t.Helper()
	url := "https://127.0.0.1:" + strconv.Itoa(s.mgmtPort) + "/roots/0"
	resp, err := s.client().Get(url)
	if err != nil {
		s.t.Fatalf("pebbletest: fetching %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("pebbletest: fetching %s: %s %v", url, resp.Status, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(body) {
		s.t.Fatalf("pebbletest: %s: no PEM certificate in %q", url, firstLine(body))
	}
	return pool
}

// Issuer is the intermediate certificate pebble issues under now, and its
// private key, from the management interface: what a test OCSP responder
// signs with.
func (s *Server) Issuer() (*x509.Certificate, crypto.Signer) {
	s.t.Helper()
	certPEM := s.management("/intermediates/0")
	keyPEM := s.management("/intermediate-keys/0")
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		s.t.Fatalf("pebbletest: intermediate: no PEM in %q / %q", firstLine(certPEM), firstLine(keyPEM))
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		s.t.Fatalf("pebbletest: intermediate certificate: %v", err)
	}
	var key any
	switch kb.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	}
	signer, ok := key.(crypto.Signer)
	if err != nil || !ok {
		s.t.Fatalf("pebbletest: intermediate key (%s): %v", kb.Type, err)
	}
	return cert, signer
}

// management GETs path from pebble's management interface.
func (s *Server) management(path string) []byte {
	s.t.Helper()
	url := "https://127.0.0.1:" + strconv.Itoa(s.mgmtPort) + path
	resp, err := s.client().Get(url)
	if err != nil {
		s.t.Fatalf("pebbletest: fetching %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("pebbletest: fetching %s: %s %v", url, resp.Status, err)
	}
	return body
}

func firstLine(b []byte) string {
	if block, _ := pem.Decode(b); block != nil {
		return block.Type
	}
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}
