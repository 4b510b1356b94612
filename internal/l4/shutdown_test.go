package l4

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/listener"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

// silentTarget accepts TCP connections and never says a word, as a
// wedged backend does: a TLS handshake to it waits for its timeout.
type silentTarget struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func startSilentTarget(t *testing.T) *silentTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st := &silentTarget{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			st.mu.Lock()
			st.conns = append(st.conns, c)
			st.mu.Unlock()
			st.accepted.Add(1)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		st.mu.Lock()
		defer st.mu.Unlock()
		for _, c := range st.conns {
			c.Close()
		}
	})
	return st
}

// TestForcedShutdownStopsConnecting is the reviewer's repro: a terminate
// listener whose targets accept TCP but never answer TLS, with a long
// dial timeout, and a shutdown with 100 ms of grace. Shutdown must not
// wait for the handshakes (three targets × the dial timeout before the
// fix); it returns before one dial timeout, and the connection is logged
// as shut down with no target blamed for it.
func TestForcedShutdownStopsConnecting(t *testing.T) {
	t.Parallel()
	const dialTimeout = 10 * time.Second
	var targets []*silentTarget
	var addrs []string
	for range 3 {
		st := startSilentTarget(t)
		targets = append(targets, st)
		addrs = append(addrs, st.ln.Addr().String())
	}
	front := certs.SelfSigned(t, certs.Options{DNSNames: []string{"api.example.com"}})
	certFile, keyFile := front.WriteFiles(t, t.TempDir())
	lc, err := listener.LoadCerts(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	h, err := transport.NewHandshaker(transport.Options{Upstream: "wedged", Pins: []string{transport.SPKIPin(front.Cert)}, DialTimeout: dialTimeout})
	if err != nil {
		t.Fatal(err)
	}
	p := pool(t, "wedged", upstream.PassiveOptions{MaxFails: 1, EjectFor: time.Hour}, addrs...)
	g := startServer(t, Options{Certs: lc}, map[string]*Route{"*": {Upstream: "wedged", Pool: p, TLS: h, DialTimeout: dialTimeout}})

	s, err := dialTLS(t, g.addr(), "api.example.com", front.Pool())
	if err != nil {
		t.Fatalf("handshake with the terminating listener: %v", err)
	}
	testutil.WaitFor(t, "a target to accept the gateway's connection", func() bool {
		var n int64
		for _, st := range targets {
			n += st.accepted.Load()
		}
		return n >= 1
	})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- g.srv.Shutdown(ctx) }()
	select {
	case err := <-shut:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown: got %v, want the context's deadline error", err)
		}
	case <-time.After(dialTimeout):
		t.Fatalf("Shutdown still waiting after the dial timeout (%s): dials and handshakes ignore the shutdown", dialTimeout)
	}
	e := g.waitEntryFor(t, s.raw.LocalAddr().String())
	if e["result"] != ResultShutdown {
		t.Errorf("access log: got %v, want result %s", e, ResultShutdown)
	}
	for _, tg := range p.Targets() {
		if tg.Ejected() {
			t.Errorf("target %s ejected: a handshake cut by shutdown is not the target's failure", tg)
		}
	}
}

// TestShutdownWaitsForEveryHandler: a Shutdown whose context is already
// done still waits for the handler of every connection it saw, so that
// each is logged before Shutdown returns. (The race this guards, a
// handler counted after Shutdown began waiting, is narrow: this test
// catches it only when the scheduler hits it.)
func TestShutdownWaitsForEveryHandler(t *testing.T) {
	t.Parallel()
	back := startBackend(t, "onprem", false, "api.example.com")
	g := startServer(t, Options{}, map[string]*Route{"*": {Upstream: "onprem", Pool: pool(t, "onprem", upstream.PassiveOptions{}, back.addr())}})
	s, err := dialTLS(t, g.addr(), "api.example.com", poolOf(back))
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the connection to be active", func() bool {
		return g.counter(t, "drawbridge_l4_active_connections", map[string]string{"listener": "nlb"}) == 1
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g.srv.Shutdown(ctx)
	// No waiting: the handler has logged by the time Shutdown returns.
	found := false
	for _, e := range g.entries(t) {
		if e["client"] == s.raw.LocalAddr().String() {
			found = e["result"] == ResultShutdown
		}
	}
	if !found {
		t.Errorf("after Shutdown returned: access log %v has no shutdown line for %s", g.entries(t), s.raw.LocalAddr())
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (near, far *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-accepted
	if a == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); a.Close() })
	return c.(*net.TCPConn), a.(*net.TCPConn)
}

// TestSpliceReportsTheCause: when one side resets, the connection ends
// with the reset, not with the idle timeout or deadline of the direction
// cut off after it; and a direction cut off returns errAborted.
func TestSpliceReportsTheCause(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc          string
		resetByTarget bool
	}{
		{"target resets", true},
		{"client resets", false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			for i := range 10 {
				clientPeer, client := tcpPair(t)
				targetPeer, target := tcpPair(t)
				sp := &splicer{client: client, target: target, idle: time.Minute, onCopy: func(int64, int64) {}}
				done := make(chan error, 1)
				go func() { done <- sp.run() }()
				resetter := clientPeer
				if tc.resetByTarget {
					resetter = targetPeer
				}
				resetter.SetLinger(0) // Close sends RST
				resetter.Close()
				select {
				case err := <-done:
					if !errors.Is(err, syscall.ECONNRESET) {
						t.Fatalf("run %d: got %v, want the reset", i, err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("run %d: the splice did not end after a reset", i)
				}
			}
		})
	}

	t.Run("cut off direction", func(t *testing.T) {
		t.Parallel()
		_, client := tcpPair(t)
		_, target := tcpPair(t)
		sp := &splicer{client: client, target: target, idle: time.Minute, onCopy: func(int64, int64) {}}
		done := make(chan error, 1)
		go func() { done <- sp.copy(target, client, true) }()
		sp.aborted.Store(true)
		client.SetDeadline(time.Unix(1, 0))
		select {
		case err := <-done:
			if !errors.Is(err, errAborted) {
				t.Errorf("copy after an abort: got %v, want errAborted", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("copy did not return after an abort")
		}
	})
}
