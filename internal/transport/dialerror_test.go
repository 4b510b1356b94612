package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/dnstest"
)

// silentListener accepts TCP connections and never reads or writes, like a
// backend whose TLS stack is stuck.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				break
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// refusedAddr returns a loopback address where nothing listens.
func refusedAddr(t *testing.T) string { return testutil.FreeAddr(t) }

// resolvingDial returns a DialContext hook that resolves the host through
// a loopback DNS server knowing no names, wrapping the lookup error as the
// upstream pool does: not in a dial *net.OpError.
func resolvingDial(t *testing.T) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dns := dnstest.Start(t, "known.test.")
	var d net.Dialer
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, dns.Addr())
		},
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		ips, err := r.LookupNetIP(ctx, "ip4", host)
		if err != nil {
			return nil, fmt.Errorf("dialing %s: resolving %q: %w", addr, host, err)
		}
		return d.DialContext(ctx, network, net.JoinHostPort(ips[0].String(), port))
	}
}

// TestDialError: every failure before the request is written is a
// *DialError naming the stage, the upstream and the address; failures
// after it are not.
func TestDialError(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	pinned := []string{SPKIPin(f.selfIP.Cert)}
	tests := []struct {
		desc      string
		o         Options
		url       func(t *testing.T) string
		wantOp    string // "" = not a *DialError
		wantCause func(err error) bool
	}{
		{
			desc:   "connection refused",
			o:      Options{Pins: pinned},
			url:    func(t *testing.T) string { return "https://" + refusedAddr(t) + "/" },
			wantOp: OpDial,
			wantCause: func(err error) bool {
				var op *net.OpError
				return errors.As(err, &op) && op.Op == "dial"
			},
		},
		{
			desc:   "host name does not resolve in the dial hook",
			o:      Options{Pins: pinned, DialContext: resolvingDial(t)},
			url:    func(t *testing.T) string { return "https://missing.test:443/" },
			wantOp: OpDial,
			wantCause: func(err error) bool {
				var dnsErr *net.DNSError
				return errors.As(err, &dnsErr) && dnsErr.IsNotFound
			},
		},
		{
			desc:      "handshake never answered",
			o:         Options{Pins: pinned, DialTimeout: 200 * time.Millisecond},
			url:       func(t *testing.T) string { return "https://" + silentListener(t) + "/" },
			wantOp:    OpHandshake,
			wantCause: func(err error) bool { return errors.Is(err, context.DeadlineExceeded) },
		},
		{
			desc: "backend does not speak TLS",
			o:    Options{Pins: pinned},
			url: func(t *testing.T) string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
				t.Cleanup(srv.Close)
				return strings.Replace(srv.URL, "http:", "https:", 1) + "/"
			},
			wantOp: OpHandshake,
		},
		{
			desc: "certificate refused",
			o:    Options{Upstream: "onprem", Pins: []string{SPKIPin(f.rogue.Cert)}},
			url: func(t *testing.T) string {
				return backend(t, f.selfIP.TLS, nil).URL + "/"
			},
			wantOp: OpHandshake,
			wantCause: func(err error) bool {
				ve, ok := AsVerifyError(err)
				return ok && ve.Reason == ReasonPinMismatch
			},
		},
		{
			desc: "plaintext refused",
			o:    Options{Pins: pinned},
			url: func(t *testing.T) string {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					t.Errorf("plaintext backend reached")
				}))
				t.Cleanup(srv.Close)
				return srv.URL + "/"
			},
			wantOp: OpDial,
		},
		{
			desc:   "plaintext allowed, connection refused",
			o:      Options{AllowPlaintext: true},
			url:    func(t *testing.T) string { return "http://" + refusedAddr(t) + "/" },
			wantOp: OpDial,
			wantCause: func(err error) bool {
				var op *net.OpError
				return errors.As(err, &op) && op.Op == "dial"
			},
		},
		{
			desc:   "plaintext allowed, host name does not resolve",
			o:      Options{AllowPlaintext: true, DialContext: resolvingDial(t)},
			url:    func(t *testing.T) string { return "http://missing.test:80/" },
			wantOp: OpDial,
			wantCause: func(err error) bool {
				var dnsErr *net.DNSError
				return errors.As(err, &dnsErr)
			},
		},
		{
			// Loopback connects at once or is refused, so the hook stands
			// in for a SYN that is never answered.
			desc: "plaintext allowed, connect never completes",
			o: Options{AllowPlaintext: true, DialTimeout: 200 * time.Millisecond,
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					<-ctx.Done()
					return nil, ctx.Err()
				}},
			url:       func(t *testing.T) string { return "http://127.0.0.1:9/" },
			wantOp:    OpDial,
			wantCause: func(err error) bool { return errors.Is(err, context.DeadlineExceeded) },
		},
		{
			desc: "backend hangs up after the request",
			o:    Options{Pins: pinned},
			url: func(t *testing.T) string {
				return backendFunc(t, f, func(w http.ResponseWriter, r *http.Request) {
					if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
						c.Close()
					}
				}).URL + "/"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			o := tt.o
			if o.Upstream == "" {
				o.Upstream = "onprem"
			}
			rawURL := tt.url(t)
			_, _, err := get(t, o, rawURL)
			if err == nil {
				t.Fatalf("GET %s: got success, want an error", rawURL)
			}
			var de *DialError
			if !errors.As(err, &de) {
				if tt.wantOp != "" {
					t.Fatalf("GET %s: got %v (%T), want a *DialError", rawURL, err, errors.Unwrap(err))
				}
				return
			}
			if tt.wantOp == "" {
				t.Fatalf("GET %s: got *DialError %v, want none: the request was written", rawURL, de)
			}
			u, _ := url.Parse(rawURL)
			if de.Op != tt.wantOp || de.Upstream != "onprem" || de.Addr != u.Host {
				t.Errorf("GET %s: got DialError{Op: %q, Upstream: %q, Addr: %q}, want {%q, %q, %q}",
					rawURL, de.Op, de.Upstream, de.Addr, tt.wantOp, "onprem", u.Host)
			}
			if tt.wantCause != nil && !tt.wantCause(err) {
				t.Errorf("GET %s: cause not reachable through %v", rawURL, err)
			}
		})
	}
}

func TestPlaintextAllowed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "plain")
	}))
	t.Cleanup(srv.Close)
	body, _, err := get(t, Options{Upstream: "onprem", AllowPlaintext: true}, srv.URL)
	if err != nil || body != "plain" {
		t.Errorf("GET %s with AllowPlaintext: got %q, %v, want %q", srv.URL, body, err, "plain")
	}
}

// backendFunc starts a TLS backend on loopback serving f.selfIP with h.
func backendFunc(t *testing.T, f *fixture, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{f.selfIP.TLS}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestDialErrorMessage(t *testing.T) {
	t.Parallel()
	inner := errors.New("connect: connection refused")
	ve := &VerifyError{Upstream: "onprem", Reason: ReasonPinMismatch}
	tests := []struct {
		desc string
		err  *DialError
		want string
	}{
		{
			desc: "dial",
			err:  &DialError{Upstream: "onprem", Addr: "10.0.0.1:443", Op: OpDial, Err: inner},
			want: `upstream "onprem": connecting to 10.0.0.1:443: connect: connection refused`,
		},
		{
			desc: "handshake",
			err:  &DialError{Upstream: "onprem", Addr: "10.0.0.1:443", Op: OpHandshake, Err: context.DeadlineExceeded},
			want: `upstream "onprem": tls handshake with 10.0.0.1:443: context deadline exceeded`,
		},
		{
			desc: "refused certificate names the upstream once",
			err:  &DialError{Upstream: "onprem", Addr: "10.0.0.1:443", Op: OpHandshake, Err: ve},
			want: `tls handshake with 10.0.0.1:443: upstream "onprem": backend certificate refused: pin mismatch`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("DialError.Error(): got %q, want %q", got, tt.want)
			}
			if !errors.Is(tt.err, tt.err.Err) {
				t.Errorf("errors.Is(DialError, Err): got false, want true")
			}
		})
	}
	wrapped := &url.Error{Op: "Get", URL: "https://x", Err: &DialError{Upstream: "onprem", Op: OpHandshake, Err: fmt.Errorf("remote: %w", ve)}}
	if got, ok := AsVerifyError(wrapped); !ok || got != ve {
		t.Errorf("AsVerifyError(url.Error{DialError{VerifyError}}): got %v, %t, want the VerifyError, true", got, ok)
	}
}
