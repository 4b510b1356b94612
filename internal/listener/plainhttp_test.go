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

// TestPlainHTTPRedirects sends raw request lines, as an attacker would,
// and checks the Location never leaves the listener's own names.
func TestPlainHTTPRedirects(t *testing.T) {
	t.Parallel()
	challenge := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
				w.Write([]byte("token.key"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	serves := func(host string) bool {
		return host == "api.example.com" || host == "::1" || host == "2001:db8::1" || host == "127.0.0.1"
	}
	tests := []struct {
		desc      string
		httpsPort int
		method    string
		target    string
		host      string
		wantCode  int
		wantLoc   string
	}{
		{"443 is left out", 443, "GET", "/orders/7?x=1", "api.example.com", 308, "https://api.example.com/orders/7?x=1"},
		{"other port is kept, the HTTP port dropped", 8443, "POST", "/a%20b", "api.example.com:80", 308, "https://api.example.com:8443/a%20b"},
		{"escaped slash kept as sent", 443, "GET", "/a%2Fb?q=%41", "api.example.com", 308, "https://api.example.com/a%2Fb?q=%41"},
		{"host is case-insensitive, trailing dot dropped", 443, "GET", "/", "API.Example.COM.", 308, "https://api.example.com/"},
		{"IPv6 literal on 443", 443, "GET", "/", "[2001:db8::1]:80", 308, "https://[2001:db8::1]/"},
		{"IPv6 literal without port, other HTTPS port", 8443, "GET", "/", "[::1]", 308, "https://[::1]:8443/"},
		{"IPv4 literal", 8443, "GET", "/x", "127.0.0.1", 308, "https://127.0.0.1:8443/x"},
		{"challenge is answered, not redirected", 443, "GET", "/.well-known/acme-challenge/abc", "api.example.com", 200, ""},
		{"opaque target would extend the host", 443, "GET", "x:.evil.example/path", "api.example.com", 400, ""},
		{"opaque target with userinfo", 443, "GET", "http:@evil.example/", "api.example.com", 400, ""},
		{"absolute form", 443, "GET", "http://api.example.com/x", "api.example.com", 400, ""},
		{"asterisk form", 443, "GET", "*", "api.example.com", 400, ""},
		{"OPTIONS *", 443, "OPTIONS", "*", "api.example.com", 400, ""},
		{"another host's name", 443, "GET", "/x", "evil.example", 404, ""},
		{"malformed host", 443, "GET", "/x", "api.example.com@evil.example", 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			p := startPlainHTTP(t, PlainHTTPOptions{HTTPSPort: tc.httpsPort, Challenge: challenge, ServesName: serves})
			conn, err := net.DialTimeout("tcp", p.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n", tc.method, tc.target, tc.host)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("%s %s (Host %s): %v", tc.method, tc.target, tc.host, err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode || resp.Header.Get("Location") != tc.wantLoc {
				t.Errorf("%s %s (Host %s): got %d %q, want %d %q", tc.method, tc.target, tc.host, resp.StatusCode, resp.Header.Get("Location"), tc.wantCode, tc.wantLoc)
			}
		})
	}
}
