package l4

import (
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/health"
	"github.com/drawbridge-gw/drawbridge/internal/listener"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

// TestPassthroughRoutesBySNI: each server name reaches the backend its
// route names, and the client sees that backend's own certificate, so
// the gateway did not terminate TLS.
func TestPassthroughRoutesBySNI(t *testing.T) {
	t.Parallel()
	api := startBackend(t, "api", false, "api.example.com")
	wild := startBackend(t, "wild", false, "*.example.com")
	def := startBackend(t, "default", false, "a.b.example.com", "other.test")
	g := startServer(t, Options{}, map[string]*Route{
		"api.example.com": {Upstream: "api", Pool: pool(t, "api", upstream.PassiveOptions{}, api.addr())},
		"*.example.com":   {Upstream: "wild", Pool: pool(t, "wild", upstream.PassiveOptions{}, wild.addr())},
		"*":               {Upstream: "default", Pool: pool(t, "default", upstream.PassiveOptions{}, def.addr())},
	})
	for _, tc := range []struct {
		desc, sni string
		want      *backend
	}{
		{desc: "exact name", sni: "api.example.com", want: api},
		{desc: "exact name in other case", sni: "API.Example.COM", want: api},
		{desc: "one-label wildcard", sni: "shop.example.com", want: wild},
		{desc: "two labels fall to the default", sni: "a.b.example.com", want: def},
		{desc: "unlisted name takes the default", sni: "other.test", want: def},
		{desc: "no SNI takes the default", sni: "127.0.0.1", want: def},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			answer, peer := roundTrip(t, g.addr(), tc.sni, poolOf(api, wild, def), "hello")
			if !strings.HasPrefix(answer, "backend="+tc.want.id+" ") || !strings.HasSuffix(answer, " got=hello") {
				t.Errorf("answer for SNI %q: got %q, want backend=%s ... got=hello", tc.sni, answer, tc.want.id)
			}
			if !peer.Equal(tc.want.cert.Cert) {
				t.Errorf("certificate seen for SNI %q: got %q, want backend %s's own", tc.sni, peer.Subject.CommonName, tc.want.id)
			}
		})
	}
}

// TestNoRouteClosed: a name no route takes gets its connection closed
// without a byte of TLS, and is logged and counted.
func TestNoRouteClosed(t *testing.T) {
	t.Parallel()
	api := startBackend(t, "api", false, "api.example.com")
	g := startServer(t, Options{}, map[string]*Route{
		"api.example.com": {Upstream: "api", Pool: pool(t, "api", upstream.PassiveOptions{}, api.addr())},
	})
	if _, err := dialTLS(t, g.addr(), "stranger.example.net", poolOf(api)); err == nil {
		t.Fatal("TLS handshake for an unrouted name: got success, want the connection closed")
	}
	e := g.waitEntry(t, 1)
	if e["result"] != ResultNoRoute || e["sni"] != "stranger.example.net" || e["upstream"] != "" {
		t.Errorf("access log: got %v, want result %s, sni stranger.example.net, no upstream", e, ResultNoRoute)
	}
	if got := g.counter(t, "drawbridge_l4_connections_total", map[string]string{"listener": "nlb", "result": ResultNoRoute}); got != 1 {
		t.Errorf("drawbridge_l4_connections_total{result=no_route}: got %v, want 1", got)
	}
}

// TestNotTLSClosed: a client that speaks no TLS gets nothing back, not
// even an alert, and the connection is logged as bad_hello.
func TestNotTLSClosed(t *testing.T) {
	t.Parallel()
	api := startBackend(t, "api", false, "api.example.com")
	g := startServer(t, Options{}, map[string]*Route{
		"*": {Upstream: "api", Pool: pool(t, "api", upstream.PassiveOptions{}, api.addr())},
	})
	c, err := net.Dial("tcp", g.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET / HTTP/1.0\r\n\r\n")
	got, _ := io.ReadAll(c)
	if len(got) != 0 {
		t.Errorf("answer to plain HTTP: got %q, want nothing", got)
	}
	if e := g.waitEntry(t, 1); e["result"] != ResultBadHello {
		t.Errorf("access log: got %v, want result %s", e, ResultBadHello)
	}
}

// TestTerminateVerifiesTarget: in terminate mode the client sees the
// listener's certificate, and the target is reached only when its
// certificate passes the upstream's verification.
func TestTerminateVerifiesTarget(t *testing.T) {
	t.Parallel()
	back := startBackend(t, "onprem", false, "backend.internal")
	other := certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}})
	front := certs.SelfSigned(t, certs.Options{DNSNames: []string{"api.example.com"}})
	certFile, keyFile := front.WriteFiles(t, t.TempDir())
	lc, err := listener.LoadCerts(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc      string
		pin       string
		wantOK    bool
		wantError string
	}{
		{desc: "pinned target", pin: transport.SPKIPin(back.cert.Cert), wantOK: true},
		{desc: "wrong pin", pin: transport.SPKIPin(other.Cert), wantError: "pin mismatch"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			h, err := transport.NewHandshaker(transport.Options{Upstream: "onprem", Pins: []string{tc.pin}, ServerName: "backend.internal"})
			if err != nil {
				t.Fatal(err)
			}
			g := startServer(t, Options{Certs: lc}, map[string]*Route{
				"*": {Upstream: "onprem", Pool: pool(t, "onprem", upstream.PassiveOptions{}, back.addr()), TLS: h},
			})
			s, err := dialTLS(t, g.addr(), "api.example.com", front.Pool())
			if err != nil {
				t.Fatalf("handshake with the terminating listener: %v", err)
			}
			if peer := s.tls.ConnectionState().PeerCertificates[0]; !peer.Equal(front.Cert) {
				t.Errorf("certificate seen: got %q, want the listener's", peer.Subject)
			}
			answer, _ := s.exchange("hello")
			e := g.waitEntry(t, 1)
			if tc.wantOK {
				if want := "backend=onprem"; !strings.HasPrefix(answer, want) || !strings.HasSuffix(answer, "sni=backend.internal got=hello") {
					t.Errorf("answer: got %q, want %s ... sni=backend.internal got=hello", answer, want)
				}
				if e["result"] != ResultOK || e["sni"] != "api.example.com" {
					t.Errorf("access log: got %v, want result ok, sni api.example.com", e)
				}
				return
			}
			if answer != "" {
				t.Errorf("answer through an unverified target: got %q, want none", answer)
			}
			if e["result"] != ResultUpstreamTLS || !strings.Contains(e["error"].(string), tc.wantError) {
				t.Errorf("access log: got %v, want result %s and an error saying %q", e, ResultUpstreamTLS, tc.wantError)
			}
		})
	}
}

// TestProxyProtocol: the target reads the client's real address from the
// PROXY header, parsed by go-proxyproto, in both versions.
func TestProxyProtocol(t *testing.T) {
	t.Parallel()
	for _, version := range []int{1, 2} {
		t.Run("v"+string(rune('0'+version)), func(t *testing.T) {
			t.Parallel()
			back := startBackend(t, "onprem", true, "api.example.com")
			g := startServer(t, Options{}, map[string]*Route{
				"*": {Upstream: "onprem", Pool: pool(t, "onprem", upstream.PassiveOptions{}, back.addr()), ProxyProtocol: version},
			})
			s, err := dialTLS(t, g.addr(), "api.example.com", poolOf(back))
			if err != nil {
				t.Fatal(err)
			}
			answer, err := s.exchange("hi")
			if err != nil {
				t.Fatal(err)
			}
			if want := "client=" + s.raw.LocalAddr().String() + " "; !strings.Contains(answer, want) {
				t.Errorf("answer: got %q, want it to contain %q (the client's own address)", answer, want)
			}
		})
	}
}

// TestHealthCheckAvoidsDeadTarget: once the active TCP check marks a
// stopped target down, connections go to the live one only; none even
// tries the dead one, or passive ejection (after one failure) would show.
func TestHealthCheckAvoidsDeadTarget(t *testing.T) {
	t.Parallel()
	live := startBackend(t, "live", false, "api.example.com")
	dead := startBackend(t, "dead", false, "api.example.com")
	p := pool(t, "onprem", upstream.PassiveOptions{MaxFails: 1, EjectFor: time.Hour}, live.addr(), dead.addr())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var checks []health.Check
	for _, tg := range p.Targets() {
		checks = append(checks, health.Check{URL: &url.URL{Scheme: "tcp", Host: tg.String()}, Target: tg})
	}
	go func() {
		defer close(done)
		health.Run(ctx, health.Options{Logger: slog.New(slog.DiscardHandler), Interval: 10 * time.Millisecond, Timeout: time.Second, HealthyThreshold: 1, UnhealthyThreshold: 1,
			Probe: health.TCPProbe(p.DialContext)}, nil, checks)
	}()
	t.Cleanup(func() { cancel(); <-done })
	g := startServer(t, Options{}, map[string]*Route{"*": {Upstream: "onprem", Pool: p}})

	deadTarget := p.Targets()[1]
	dead.stop()
	testutil.WaitFor(t, "the stopped target to be marked down", func() bool { return !deadTarget.Healthy() })
	for i := range 6 {
		answer, _ := roundTrip(t, g.addr(), "api.example.com", poolOf(live, dead), "x")
		if !strings.HasPrefix(answer, "backend=live ") {
			t.Fatalf("connection %d: got %q, want the live backend", i, answer)
		}
	}
	if deadTarget.Ejected() {
		t.Errorf("the down target was dialed (it got ejected); selection must skip it")
	}
}

// TestHalfClose: after the client shuts its sending half, the target sees
// the end of the request and its answer still reaches the client, in both
// modes (exchange half-closes and reads to the end).
func TestHalfClose(t *testing.T) {
	t.Parallel()
	back := startBackend(t, "onprem", false, "backend.internal")
	front := certs.SelfSigned(t, certs.Options{DNSNames: []string{"api.example.com"}})
	certFile, keyFile := front.WriteFiles(t, t.TempDir())
	lc, err := listener.LoadCerts(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	h, err := transport.NewHandshaker(transport.Options{Upstream: "onprem", CAFile: writePEM(t, back.cert.CertPEM), ServerName: "backend.internal"})
	if err != nil {
		t.Fatal(err)
	}
	p := pool(t, "onprem", upstream.PassiveOptions{}, back.addr())
	for _, tc := range []struct {
		desc  string
		opts  Options
		route *Route
		roots *x509.CertPool
	}{
		{desc: "passthrough", route: &Route{Upstream: "onprem", Pool: p}, roots: back.cert.Pool()},
		{desc: "terminate", opts: Options{Certs: lc}, route: &Route{Upstream: "onprem", Pool: p, TLS: h}, roots: front.Pool()},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			g := startServer(t, tc.opts, map[string]*Route{"*": tc.route})
			sni := "backend.internal"
			if tc.opts.Certs != nil {
				sni = "api.example.com"
			}
			body := strings.Repeat("0123456789", 10000) // several records each way
			answer, _ := roundTrip(t, g.addr(), sni, tc.roots, body)
			if !strings.HasSuffix(answer, " got="+body) {
				t.Fatalf("answer after half-close: got %d bytes ending %q, want the whole body echoed", len(answer), answer[max(0, len(answer)-40):])
			}
			e := g.waitEntry(t, 1)
			if e["result"] != ResultOK || e["bytes_out"].(float64) < float64(len(body)) || e["bytes_in"].(float64) < float64(len(body)) {
				t.Errorf("access log: got %v, want result ok and at least %d bytes each way", e, len(body))
			}
			if got := g.counter(t, "drawbridge_l4_bytes_total", map[string]string{"listener": "nlb", "direction": "in"}); got < float64(len(body)) {
				t.Errorf("drawbridge_l4_bytes_total{direction=in}: got %v, want at least %d", got, len(body))
			}
		})
	}
}

func writePEM(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReloadKeepsOpenConnections: new routes apply to new connections;
// one already open keeps its target and completes.
func TestReloadKeepsOpenConnections(t *testing.T) {
	t.Parallel()
	a := startBackend(t, "a", false, "api.example.com")
	b := startBackend(t, "b", false, "api.example.com")
	g := startServer(t, Options{}, map[string]*Route{"api.example.com": {Upstream: "a", Pool: pool(t, "a", upstream.PassiveOptions{}, a.addr())}})
	open, err := dialTLS(t, g.addr(), "api.example.com", poolOf(a, b))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(open.tls, "before ")

	g.setRoutes(t, map[string]*Route{"api.example.com": {Upstream: "b", Pool: pool(t, "b", upstream.PassiveOptions{}, b.addr())}})
	if answer, _ := roundTrip(t, g.addr(), "api.example.com", poolOf(a, b), "new"); !strings.HasPrefix(answer, "backend=b ") {
		t.Errorf("new connection after reload: got %q, want backend b", answer)
	}
	answer, err := open.exchange("after")
	if err != nil || !strings.HasPrefix(answer, "backend=a ") || !strings.HasSuffix(answer, "got=before after") {
		t.Errorf("connection open across the reload: got %q, %v; want backend a with got=before after", answer, err)
	}
}

// TestShutdownDrains: shutdown stops accepting at once, lets an open
// connection finish within the grace period, and closes one that outlasts
// it, logged as shutdown.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	back := startBackend(t, "onprem", false, "api.example.com")
	for _, tc := range []struct {
		desc       string
		grace      time.Duration
		finish     bool
		wantResult string
	}{
		{desc: "finishes within grace", grace: time.Minute, finish: true, wantResult: ResultOK},
		{desc: "outlasts grace", grace: 50 * time.Millisecond, finish: false, wantResult: ResultShutdown},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			g := startServer(t, Options{}, map[string]*Route{"*": {Upstream: "onprem", Pool: pool(t, "onprem", upstream.PassiveOptions{}, back.addr())}})
			addr := g.addr()
			s, err := dialTLS(t, addr, "api.example.com", poolOf(back))
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(s.tls, "part one ")
			testutil.WaitFor(t, "the connection to be active", func() bool {
				return g.counter(t, "drawbridge_l4_active_connections", map[string]string{"listener": "nlb"}) == 1
			})
			ctx, cancel := context.WithTimeout(context.Background(), tc.grace)
			defer cancel()
			shut := make(chan error, 1)
			go func() { shut <- g.srv.Shutdown(ctx) }()
			testutil.WaitFor(t, "the listener to stop accepting", func() bool {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					return true
				}
				c.Close()
				return false
			})
			if tc.finish {
				answer, err := s.exchange("part two")
				if err != nil || !strings.HasSuffix(answer, "got=part one part two") {
					t.Errorf("draining connection: got %q, %v; want the whole exchange", answer, err)
				}
				if err := <-shut; err != nil {
					t.Errorf("Shutdown: got %v, want nil once the connection ended", err)
				}
			} else if err := <-shut; err == nil {
				t.Errorf("Shutdown with a connection past the grace: got nil, want the context's error")
			}
			if e := g.waitEntryFor(t, s.raw.LocalAddr().String()); e["result"] != tc.wantResult {
				t.Errorf("access log: got %v, want result %s", e, tc.wantResult)
			}
		})
	}
}

// TestIdleTimeout: a connection with no bytes either way is closed after
// the idle timeout, and logged so. The timeout also covers the proxied
// handshake, so it is long enough (1 s) for a busy machine to complete it.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	back := startBackend(t, "onprem", false, "api.example.com")
	g := startServer(t, Options{IdleTimeout: time.Second}, map[string]*Route{"*": {Upstream: "onprem", Pool: pool(t, "onprem", upstream.PassiveOptions{}, back.addr())}})
	s, err := dialTLS(t, g.addr(), "api.example.com", poolOf(back))
	if err != nil {
		t.Fatal(err)
	}
	var buf [1]byte
	if _, err := s.tls.Read(buf[:]); err == nil {
		t.Fatalf("read on an idle connection: got data, want it closed")
	}
	if e := g.waitEntry(t, 1); e["result"] != ResultIdle {
		t.Errorf("access log: got %v, want result %s", e, ResultIdle)
	}
}

// TestTableMatch covers matching rules the end-to-end tests do not.
func TestTableMatch(t *testing.T) {
	t.Parallel()
	p := pool(t, "p", upstream.PassiveOptions{}, "127.0.0.1:1")
	exact, wild := &Route{Upstream: "exact", Pool: p}, &Route{Upstream: "wild", Pool: p}
	table, err := NewTable(map[string]*Route{"API.example.com.": exact, "*.example.com": wild})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sni  string
		want *Route
	}{
		{"api.example.com", exact}, {"api.example.com.", exact}, {"x.example.com", wild},
		{"example.com", nil}, {"a.b.example.com", nil}, {"", nil}, {".example.com", nil},
	} {
		if got := table.Match(tc.sni); got != tc.want {
			t.Errorf("Match(%q): got %v, want %v", tc.sni, got, tc.want)
		}
	}
	for _, bad := range []string{"*x", "a.*.com", "*.*.com", ""} {
		if _, err := NewTable(map[string]*Route{bad: exact}); err == nil {
			t.Errorf("NewTable(%q): got nil error, want one", bad)
		}
	}
}

// TestRefusedBeforeRouting: a client too slow to send its ClientHello is
// cut off at the hello timeout, and in terminate mode a failed client
// handshake is its own result; neither reaches a target.
func TestRefusedBeforeRouting(t *testing.T) {
	t.Parallel()
	back := startBackend(t, "onprem", false, "api.example.com")
	p := pool(t, "onprem", upstream.PassiveOptions{}, back.addr())

	t.Run("slow hello", func(t *testing.T) {
		t.Parallel()
		g := startServer(t, Options{HelloTimeout: 100 * time.Millisecond}, map[string]*Route{"*": {Upstream: "onprem", Pool: p}})
		c, err := net.Dial("tcp", g.addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte{0x16, 0x03, 0x01}) // a record header begun, never finished
		if got, _ := io.ReadAll(c); len(got) != 0 {
			t.Errorf("answer to a stalled hello: got %q, want nothing", got)
		}
		e := g.waitEntryFor(t, c.LocalAddr().String())
		if e["result"] != ResultBadHello || !strings.Contains(e["error"].(string), "timeout") {
			t.Errorf("access log: got %v, want result %s with a timeout error", e, ResultBadHello)
		}
	})

	t.Run("client handshake fails", func(t *testing.T) {
		t.Parallel()
		front := certs.SelfSigned(t, certs.Options{DNSNames: []string{"api.example.com"}})
		certFile, keyFile := front.WriteFiles(t, t.TempDir())
		lc, err := listener.LoadCerts(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		h, err := transport.NewHandshaker(transport.Options{Upstream: "onprem", Pins: []string{transport.SPKIPin(back.cert.Cert)}})
		if err != nil {
			t.Fatal(err)
		}
		g := startServer(t, Options{Certs: lc}, map[string]*Route{"*": {Upstream: "onprem", Pool: p, TLS: h}})
		// The client trusts the backend, not the listener: it refuses the
		// listener's certificate.
		if _, err := dialTLS(t, g.addr(), "api.example.com", back.cert.Pool()); err == nil {
			t.Fatal("handshake trusting another certificate: got success, want failure")
		}
		if e := g.waitEntry(t, 1); e["result"] != ResultClientTLS || e["upstream"] != "" {
			t.Errorf("access log: got %v, want result %s and no upstream", e, ResultClientTLS)
		}
	})
}
