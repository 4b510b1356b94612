package redistest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

// command sends one inline command and returns the first reply line.
func command(t *testing.T, addr, cmd string) (string, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	var lines []string
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	lines = append(lines, strings.TrimSpace(line))
	// Arrays (CONFIG GET) come as *N then N bulk strings of two lines each.
	if strings.HasPrefix(line, "*") {
		for range 4 {
			l, err := r.ReadString('\n')
			if err != nil {
				break
			}
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return strings.TrimSpace(strings.Join(lines, " ")), nil
}

func TestLifecycle(t *testing.T) {
	srv := Start(t)
	addr := srv.Addr()
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Fatalf("Addr(): got %q, want a 127.0.0.1 address", addr)
	}

	mustReply := func(cmd, want string) {
		t.Helper()
		got, err := command(t, addr, cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if got != want {
			t.Fatalf("%s: got %q, want %q", cmd, got, want)
		}
	}
	mustFail := func() {
		t.Helper()
		if got, err := command(t, addr, "PING"); err == nil {
			t.Fatalf("PING on a stopped server: got %q, want an error", got)
		}
	}

	mustReply("CONFIG GET save", "*2 $4 save $0")
	mustReply("CONFIG GET appendonly", "*2 $10 appendonly $2 no")
	mustReply("SET k v", "+OK")

	srv.Kill()
	mustFail()
	srv.Kill() // killing a dead server does nothing

	srv.Restart()
	if got := srv.Addr(); got != addr {
		t.Fatalf("Addr() after Restart: got %q, want %q", got, addr)
	}
	mustReply("PING", "+PONG")
	mustReply("GET k", "$-1") // no persistence: data is gone

	srv.Stop()
	mustFail()
	srv.Stop()

	srv.Restart()
	mustReply("PING", "+PONG")
	srv.Restart() // restarting a running server replaces it
	mustReply("PING", "+PONG")
}

func TestServersAreSeparate(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatalf("two servers share %s", a.Addr())
	}
	if got, err := command(t, a.Addr(), "SET only-a 1"); err != nil || got != "+OK" {
		t.Fatalf("SET on a: got %q, %v", got, err)
	}
	if got, err := command(t, b.Addr(), "EXISTS only-a"); err != nil || got != ":0" {
		t.Fatalf("EXISTS only-a on b: got %q, %v, want \":0\"", got, err)
	}
}

func TestStartArgs(t *testing.T) {
	srv := StartArgs(t, "--requirepass", "pw")
	for range 2 {
		if got, err := command(t, srv.Addr(), "GET x"); err != nil || !strings.HasPrefix(got, "-NOAUTH") {
			t.Fatalf("GET x without password: got %q, %v, want -NOAUTH", got, err)
		}
		srv.Restart() // the options apply to the new process too
	}
}

// tlsCommand is command over TLS, trusting only roots, presenting client
// if not nil.
func tlsCommand(addr, cmd string, roots *x509.CertPool, client *certs.Cert) (string, error) {
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	if client != nil {
		cfg.Certificates = []tls.Certificate{client.TLS}
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: cfg}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestStartTLS(t *testing.T) {
	dir := t.TempDir()
	ca := certs.SelfSigned(t, certs.Options{IsCA: true})
	leaf := certs.SelfSigned(t, certs.Options{Parent: ca, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	certFile, keyFile := leaf.WriteFiles(t, dir)
	srv := StartTLS(t, certFile, keyFile)

	for range 2 {
		if got, err := tlsCommand(srv.Addr(), "PING", ca.Pool(), nil); err != nil || got != "+PONG" {
			t.Fatalf("PING over TLS: got %q, %v, want +PONG", got, err)
		}
		if got, err := command(t, srv.Addr(), "PING"); err == nil && got == "+PONG" {
			t.Fatalf("PING in plaintext to a TLS port: got %q, want an error", got)
		}
		srv.Restart() // the new process speaks TLS too
	}
}

func TestStartTLSArgsClientAuth(t *testing.T) {
	dir := t.TempDir()
	ca := certs.SelfSigned(t, certs.Options{IsCA: true})
	leaf := certs.SelfSigned(t, certs.Options{Parent: ca, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	client := certs.SelfSigned(t, certs.Options{Parent: ca, CommonName: "gateway"})
	certFile, keyFile := leaf.WriteFiles(t, dir)
	caFile, _ := ca.WriteFiles(t, dir)
	srv := StartTLSArgs(t, certFile, keyFile, "--tls-auth-clients", "yes", "--tls-ca-cert-file", caFile)

	if got, err := tlsCommand(srv.Addr(), "PING", ca.Pool(), client); err != nil || got != "+PONG" {
		t.Fatalf("PING over TLS with a client certificate: got %q, %v, want +PONG", got, err)
	}
	if got, err := tlsCommand(srv.Addr(), "PING", ca.Pool(), nil); err == nil {
		t.Fatalf("PING over TLS without a client certificate: got %q, want an error", got)
	}
}
