package listener

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// startPlainHTTP serves a plain-HTTP listener until the test ends.
func startPlainHTTP(t *testing.T, o PlainHTTPOptions) *PlainHTTP {
	t.Helper()
	if o.Name == "" {
		o.Name = "t"
	}
	o.Addr = "127.0.0.1:0"
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
	p := NewPlainHTTP(o)
	if err := p.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve() }()
	t.Cleanup(func() {
		p.Shutdown(t.Context())
		<-done
	})
	return p
}

// TestPlainHTTPSlowBodyIsNotRead: a POST whose chunked body trickles in
// gets its 308 at once, while the body is still coming: the listener never
// reads a body before redirecting (before the fix, net/http read and
// discarded it with no deadline, so the answer never came).
func TestPlainHTTPSlowBodyIsNotRead(t *testing.T) {
	t.Parallel()
	p := startPlainHTTP(t, PlainHTTPOptions{HTTPSPort: 443})
	conn, err := net.DialTimeout("tcp", p.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprint(conn, "POST /x HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// One byte of body every 100 ms, never the last chunk, until the
	// answer comes or 20 s pass.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range 200 {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := fmt.Fprint(conn, "1\r\na\r\n"); err != nil {
					return
				}
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(plainHTTPTimeout / 2))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer while the body trickles in: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect || !resp.Close {
		t.Errorf("got %d (close %v), want 308 and the connection closed", resp.StatusCode, resp.Close)
	}
}

// TestPlainHTTPBounds: the whole request and answer are bounded, and
// headers are small; a client that trickles bytes cannot hold a socket.
func TestPlainHTTPBounds(t *testing.T) {
	t.Parallel()
	p := NewPlainHTTP(PlainHTTPOptions{Name: "t", Addr: "127.0.0.1:0", Logger: discardLogger()})
	if p.srv.ReadTimeout <= 0 || p.srv.ReadTimeout > 30*time.Second ||
		p.srv.WriteTimeout <= 0 || p.srv.ReadHeaderTimeout <= 0 ||
		p.srv.MaxHeaderBytes <= 0 || p.srv.MaxHeaderBytes > 64<<10 {
		t.Errorf("plain-HTTP server bounds: read %v, read header %v, write %v, max header bytes %d; want all set, read <= 30s, headers <= 64 KiB",
			p.srv.ReadTimeout, p.srv.ReadHeaderTimeout, p.srv.WriteTimeout, p.srv.MaxHeaderBytes)
	}
	// Oversized headers are refused, not read.
	srv := startPlainHTTP(t, PlainHTTPOptions{HTTPSPort: 443})
	req, _ := http.NewRequest("GET", "http://"+srv.Addr().String()+"/", nil)
	req.Host = "api.example.com"
	req.Header.Set("X-Big", strings.Repeat("a", 128<<10))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET with 128 KiB of headers: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("GET with 128 KiB of headers: got %d, want 431", resp.StatusCode)
	}
}
