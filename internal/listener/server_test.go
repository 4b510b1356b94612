package listener

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestServeHTTPS(t *testing.T) {
	tests := []struct {
		desc    string
		keyType string
		chain   bool // leaf signed by an intermediate, both in the cert file
	}{
		{desc: "RSA", keyType: "rsa"},
		{desc: "ECDSA", keyType: "ecdsa"},
		{desc: "Ed25519", keyType: "ed25519"},
		{desc: "chain with intermediate", keyType: "ecdsa", chain: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			root := newCA(t)
			issuer := root
			if tc.chain {
				issuer = root.intermediate(t)
			}
			leaf, key := issuer.leaf(t, tc.keyType)
			chain := []*x509.Certificate{leaf}
			if tc.chain {
				chain = append(chain, issuer.cert)
			}
			certFile, keyFile := certFiles(t, t.TempDir(), key, chain...)
			s := startServer(t, Options{CertFile: certFile, KeyFile: keyFile},
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") }))

			// The client trusts only the root, so the chain must be sent.
			resp, body := get(t, newClient(t, root.pool(), false), "https://"+s.Addr().String()+"/")
			if resp.StatusCode != http.StatusOK || body != "hello" {
				t.Errorf("GET: got %d %q, want 200 %q", resp.StatusCode, body, "hello")
			}
			if got, want := len(resp.TLS.PeerCertificates), len(chain); got != want {
				t.Errorf("peer certificates: got %d, want %d", got, want)
			}
		})
	}
}

func TestMinVersion(t *testing.T) {
	ca := newCA(t)
	leaf, key := ca.leaf(t, "ecdsa")
	certFile, keyFile := certFiles(t, t.TempDir(), key, leaf)
	servers := map[uint16]string{}
	for _, v := range []uint16{0, tls.VersionTLS13} {
		servers[v] = startServer(t, Options{CertFile: certFile, KeyFile: keyFile, MinVersion: v}, nil).Addr().String()
	}

	tests := []struct {
		desc           string
		serverMin      uint16
		clientMin      uint16
		clientMax      uint16
		wantOK         bool
		wantNegotiated uint16
	}{
		{desc: "default refuses TLS 1.1", serverMin: 0, clientMin: tls.VersionTLS10, clientMax: tls.VersionTLS11},
		{desc: "default accepts TLS 1.2", serverMin: 0, clientMax: tls.VersionTLS12, wantOK: true, wantNegotiated: tls.VersionTLS12},
		{desc: "default prefers TLS 1.3", serverMin: 0, wantOK: true, wantNegotiated: tls.VersionTLS13},
		{desc: "1.3 refuses a 1.2-max client", serverMin: tls.VersionTLS13, clientMax: tls.VersionTLS12},
		{desc: "1.3 accepts TLS 1.3", serverMin: tls.VersionTLS13, wantOK: true, wantNegotiated: tls.VersionTLS13},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			cfg := &tls.Config{RootCAs: ca.pool(), ServerName: "127.0.0.1", MinVersion: tc.clientMin, MaxVersion: tc.clientMax}
			conn, err := tls.Dial("tcp", servers[tc.serverMin], cfg)
			if !tc.wantOK {
				if err == nil {
					conn.Close()
					t.Fatalf("handshake with client max %s: got success, want refusal", tls.VersionName(tc.clientMax))
				}
				if !strings.Contains(err.Error(), "protocol version") {
					t.Errorf("handshake with client max %s: got %v, want a protocol version alert", tls.VersionName(tc.clientMax), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			if got := conn.ConnectionState().Version; got != tc.wantNegotiated {
				t.Errorf("negotiated version: got %s, want %s", tls.VersionName(got), tls.VersionName(tc.wantNegotiated))
			}
		})
	}
}

func TestALPN(t *testing.T) {
	ca := newCA(t)
	leaf, key := ca.leaf(t, "ecdsa")
	certFile, keyFile := certFiles(t, t.TempDir(), key, leaf)
	s := startServer(t, Options{CertFile: certFile, KeyFile: keyFile},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Proto) }))
	url := "https://" + s.Addr().String() + "/"

	tests := []struct {
		desc      string
		offerH2   bool
		wantProto string
		wantALPN  string
	}{
		{desc: "client offers h2", offerH2: true, wantProto: "HTTP/2.0", wantALPN: "h2"},
		{desc: "client offers http/1.1 only", offerH2: false, wantProto: "HTTP/1.1", wantALPN: "http/1.1"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			resp, body := get(t, newClient(t, ca.pool(), tc.offerH2), url)
			if body != tc.wantProto {
				t.Errorf("request protocol seen by handler: got %q, want %q", body, tc.wantProto)
			}
			if got := resp.TLS.NegotiatedProtocol; got != tc.wantALPN {
				t.Errorf("NegotiatedProtocol: got %q, want %q", got, tc.wantALPN)
			}
		})
	}
}

func TestReadHeaderTimeoutClosesSlowClient(t *testing.T) {
	ca := newCA(t)
	leaf, key := ca.leaf(t, "ecdsa")
	certFile, keyFile := certFiles(t, t.TempDir(), key, leaf)
	s := startServer(t, Options{CertFile: certFile, KeyFile: keyFile, ReadHeaderTimeout: 200 * time.Millisecond},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "should not be reached") }))

	conn, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: ca.pool(), ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	// Half a header: no terminating blank line.
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	// The deadline only bounds a broken server; the server must close first.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("reading after half a header: connection still open after 10s, want it closed by ReadHeaderTimeout")
	}
	if strings.Contains(string(got), "should not be reached") {
		t.Errorf("reading after half a header: got response %q, want the connection closed", got)
	}
}

func TestMaxHeaderBytes(t *testing.T) {
	ca := newCA(t)
	leaf, key := ca.leaf(t, "ecdsa")
	certFile, keyFile := certFiles(t, t.TempDir(), key, leaf)
	s := startServer(t, Options{CertFile: certFile, KeyFile: keyFile, MaxHeaderBytes: 1024},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req, err := http.NewRequest("GET", "https://"+s.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", strings.Repeat("a", 8<<10))
	resp, err := newClient(t, ca.pool(), false).Do(req)
	if err != nil {
		t.Fatalf("GET with 8 KiB header: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("GET with 8 KiB header: got status %d, want %d", resp.StatusCode, http.StatusRequestHeaderFieldsTooLarge)
	}
}

func TestSetHandler(t *testing.T) {
	ca := newCA(t)
	leaf, key := ca.leaf(t, "ecdsa")
	certFile, keyFile := certFiles(t, t.TempDir(), key, leaf)
	text := func(s string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, s) })
	}
	s := startServer(t, Options{CertFile: certFile, KeyFile: keyFile}, text("a"))
	url := "https://" + s.Addr().String() + "/"
	c := newClient(t, ca.pool(), true)

	if _, body := get(t, c, url); body != "a" {
		t.Fatalf("GET before SetHandler: got %q, want %q", body, "a")
	}
	s.SetHandler(text("b"))
	if _, body := get(t, c, url); body != "b" {
		t.Errorf("GET after SetHandler(b) on the same client: got %q, want %q", body, "b")
	}
	s.SetHandler(nil)
	if resp, _ := get(t, c, url); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET after SetHandler(nil): got status %d, want 404", resp.StatusCode)
	}

	// Swapping while requests run must be race-free (checked by -race).
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				resp, err := c.Get(url)
				if err != nil {
					t.Errorf("GET during swaps: %v", err)
					return
				}
				resp.Body.Close()
			}
		}()
		s.SetHandler(text(fmt.Sprint(i)))
	}
	wg.Wait()
}

func TestShutdownWaitsForInFlight(t *testing.T) {
	ca := newCA(t)
	leaf, key := ca.leaf(t, "ecdsa")
	certFile, keyFile := certFiles(t, t.TempDir(), key, leaf)
	entered := make(chan struct{})
	release := make(chan struct{})
	s, err := New(Options{Name: "test", Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile,
		Logger: discardLogger()},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
			fmt.Fprint(w, "done")
		}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	addr := s.Addr().String()
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()

	type result struct {
		status int
		body   string
		err    error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := newClient(t, ca.pool(), false).Get("https://" + addr + "/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		slow <- result{resp.StatusCode, string(b), err}
	}()
	<-entered

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown <- s.Shutdown(ctx)
	}()
	waitFor(t, "the listener to refuse new connections", func() bool {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return true
		}
		conn.Close()
		return false
	})
	if err := <-served; err != nil {
		t.Errorf("Serve after Shutdown: got %v, want nil", err)
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned (%v) while a request was still in flight", err)
	default:
	}

	close(release)
	r := <-slow
	if r.err != nil || r.status != http.StatusOK || r.body != "done" {
		t.Errorf("in-flight request across Shutdown: got (%d, %q, %v), want (200, %q, nil)", r.status, r.body, r.err, "done")
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown: got %v, want nil", err)
	}
}

func TestShutdownDeadlineClosesConnections(t *testing.T) {
	ca := newCA(t)
	leaf, key := ca.leaf(t, "ecdsa")
	certFile, keyFile := certFiles(t, t.TempDir(), key, leaf)
	entered := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	s, err := New(Options{Name: "test", Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile,
		Logger: discardLogger()},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
		}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	go s.Serve()
	clientErr := make(chan error, 1)
	go func() {
		resp, err := newClient(t, ca.pool(), false).Get("https://" + s.Addr().String() + "/stuck")
		if err == nil {
			resp.Body.Close()
		}
		clientErr <- err
	}()
	<-entered

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a stuck request: got %v, want context.DeadlineExceeded", err)
	}
	err = <-clientErr
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("stuck request after Shutdown's deadline: got %v, want the connection closed by the server", err)
	}
}

func TestShutdownWithoutServe(t *testing.T) {
	ca := newCA(t)
	leaf, key := ca.leaf(t, "ecdsa")
	certFile, keyFile := certFiles(t, t.TempDir(), key, leaf)
	s, err := New(Options{Name: "test", Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, Logger: discardLogger()}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	addr := s.Addr().String()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Errorf("Dial(%s) after Shutdown without Serve: got a connection, want refused", addr)
	}
	if err := s.Serve(); err != nil {
		t.Errorf("Serve after Shutdown: got %v, want nil", err)
	}
}

func TestListenErrors(t *testing.T) {
	ca := newCA(t)
	leaf, key := ca.leaf(t, "ecdsa")
	certFile, keyFile := certFiles(t, t.TempDir(), key, leaf)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	s, err := New(Options{Name: "public", Addr: busy.Addr().String(), CertFile: certFile, KeyFile: keyFile}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Listen(); err == nil || !strings.Contains(err.Error(), `listener "public"`) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Listen() on a busy port: got %v, want an error naming the listener and the bind failure", err)
	}
	if got := s.Addr(); got != nil {
		t.Errorf("Addr() after failed Listen: got %v, want nil", got)
	}
}

// TestHandshakeErrorsLogAtDebug checks that scanners failing the handshake
// do not produce log lines above debug.
func TestHandshakeErrorsLogAtDebug(t *testing.T) {
	ca := newCA(t)
	leaf, key := ca.leaf(t, "ecdsa")
	certFile, keyFile := certFiles(t, t.TempDir(), key, leaf)
	var logs logBuffer
	s := startServer(t, Options{CertFile: certFile, KeyFile: keyFile, Logger: logs.logger(slog.LevelDebug)}, nil)

	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n") // plaintext HTTP on a TLS port
	io.ReadAll(conn)
	conn.Close()

	waitFor(t, "the handshake error to be logged", func() bool {
		return strings.Contains(logs.String(), "TLS handshake error")
	})
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "TLS handshake error") && !strings.Contains(line, "level=DEBUG") {
			t.Errorf("handshake error log line: got %q, want level=DEBUG", line)
		}
		if strings.Contains(line, "TLS handshake error") && !strings.Contains(line, "listener=test") {
			t.Errorf("handshake error log line: got %q, want listener=test", line)
		}
	}
}
