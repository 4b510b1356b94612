package redistest

import (
	"crypto/x509"
	"encoding/pem"

	"bufio"
	"crypto/tls"
	"fmt"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long a starting server may take to answer
	// PING; redis-server is usually ready in a few milliseconds.
	readyTimeout = 10 * time.Second
	// stopTimeout bounds a graceful shutdown before Stop escalates to SIGKILL.
	stopTimeout = 10 * time.Second
	// startAttempts is how many free ports Start tries: another process may
	// take the port between picking it and redis-server binding it.
	startAttempts = 5
)

// Server is a redis-server process listening on a loopback port, without
// persistence, in a temporary directory. The port stays the same across
// Restart, so clients configured with Addr reconnect to the new process.
//
// Stop, Kill and Restart must be called from the test's goroutine: they
// report problems with t.Fatal.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string
	tls  bool // the port speaks TLS only
	// probe verifies the server's own certificate by its pin when the
	// readiness check speaks TLS.
	probe *tls.Config

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start runs redis-server on a free port of 127.0.0.1 until the test ends.
// If redis-server is not installed, the test is skipped, or fails when the
// environment variable CI is "true" (CI must run every test).
func Start(t testing.TB) *Server {
	t.Helper()
	return StartArgs(t)
}

// StartArgs is Start with extra redis-server options, e.g.
// "--cluster-enabled", "yes" or "--requirepass", "secret". Relative paths
// are in the server's temporary directory. They apply to restarts too.
func StartArgs(t testing.TB, args ...string) *Server {
	t.Helper()
	return start(t, nil, args)
}

// StartTLS is Start with the port speaking TLS only (no plaintext port),
// serving the PEM certificate chain in certFile with the key in keyFile.
// Clients are not asked for certificates. Redis must be built with TLS
// support (Debian's is); if it is not, the test fails.
func StartTLS(t testing.TB, certFile, keyFile string) *Server {
	t.Helper()
	return StartTLSArgs(t, certFile, keyFile)
}

// StartTLSArgs is StartTLS with extra redis-server options, which come
// last and so override StartTLS's own: "--tls-auth-clients", "yes",
// "--tls-ca-cert-file", caFile requires client certificates from caFile.
func StartTLSArgs(t testing.TB, certFile, keyFile string, args ...string) *Server {
	t.Helper()
	// The server runs in its own directory.
	certFile, err := filepath.Abs(certFile)
	if err != nil {
		t.Fatalf("redistest.StartTLS: %v", err)
	}
	keyFile, err = filepath.Abs(keyFile)
	if err != nil {
		t.Fatalf("redistest.StartTLS: %v", err)
	}
	probe, err := pinnedTo(certFile)
	if err != nil {
		t.Fatalf("redistest.StartTLS: %v", err)
	}
	tlsArgs := []string{
		"--tls-cert-file", certFile,
		"--tls-key-file", keyFile,
		"--tls-auth-clients", "no",
	}
	return start(t, probe, append(tlsArgs, args...))
}

// pinnedTo is a client TLS config that trusts exactly the key of the
// first certificate in certFile: the readiness probe checks it is talking
// to the server it started, without depending on the certificate's names.
func pinnedTo(certFile string) (*tls.Config, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no certificate", certFile)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	return transport.NewTLSConfig(transport.Options{Upstream: "redistest", Pins: []string{transport.SPKIPin(leaf)}})
}

// start runs redis-server; probe is nil for a plaintext port.
func start(t testing.TB, probe *tls.Config, args []string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is required in CI: %v", err)
		}
		t.Skipf("redis-server not installed: %v", err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), args: args, tls: probe != nil, probe: probe}
	t.Cleanup(s.kill)

	var lastErr error
	for range startAttempts {
		port, err := testutil.PickPort()
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		s.port = port
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("starting redis-server: %v", lastErr)
	return nil
}

// Addr is the server's host:port, e.g. "127.0.0.1:40123".
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Stop shuts the server down gracefully (SIGTERM) and waits for it to exit.
// Clients see their connections closed. Stopping a stopped server does
// nothing.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.runningLocked() {
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("signalling redis-server: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		s.killLocked()
		s.t.Fatalf("redis-server on %s ignored SIGTERM for %v; killed it", s.Addr(), stopTimeout)
	}
}

// Kill ends the server abruptly (SIGKILL), as a crash or a lost host would,
// and waits for it to exit. Killing a stopped server does nothing.
func (s *Server) Kill() {
	s.t.Helper()
	s.kill()
}

// Restart stops the server if it is running and starts a new one on the same
// port. The new server has no data: persistence is off.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.startLocked(); err != nil {
		s.t.Fatalf("restarting redis-server on %s: %v", s.Addr(), err)
	}
}

func (s *Server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

func (s *Server) killLocked() {
	if !s.runningLocked() {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
}

func (s *Server) runningLocked() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked()
}

// startLocked runs redis-server on s.port and waits until it answers PING.
func (s *Server) startLocked() error {
	logPath := filepath.Join(s.dir, "redis.log")
	port := []string{"--port", strconv.Itoa(s.port)}
	if s.tls {
		port = []string{"--port", "0", "--tls-port", strconv.Itoa(s.port)}
	}
	args := append(port,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", logPath,
		"--daemonize", "no",
	)
	cmd := exec.Command(s.bin, append(args, s.args...)...)
	cmd.Dir = s.dir
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at start (%v); log:\n%s", cmd.ProcessState, tail(logPath))
		default:
		}
		err := ping(s.Addr(), s.probe)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.killLocked()
			return fmt.Errorf("redis-server not ready after %v: %w; log:\n%s", readyTimeout, err, tail(logPath))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping sends one inline PING and expects +PONG, or -NOAUTH from a server
// with a password, which tells a ready server from one still loading
// (-LOADING). Over TLS it also accepts the server refusing a client without
// a certificate, which only a ready server does.
func ping(addr string, probe *tls.Config) error {
	useTLS := probe != nil
	var conn net.Conn
	var err error
	if useTLS {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: probe}
		conn, err = d.Dial("tcp", addr)
	} else {
		conn, err = net.DialTimeout("tcp", addr, time.Second)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if useTLS && err != nil && strings.Contains(err.Error(), "remote error: tls:") {
		// A server that wants a client certificate refuses the
		// handshake with an alert (in TLS 1.3 only once the client
		// reads): its TLS layer, and so the server, is up.
		return nil
	}
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("PING: got %q, want +PONG", line)
	}
	return nil
}

// tail returns the end of the server's log, for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(reading log: %v)", err)
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
