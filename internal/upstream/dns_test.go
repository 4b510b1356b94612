package upstream

import (
	"context"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/dnstest"
)

const testName = "backend.test."

// startDNS serves testName on loopback.
func startDNS(t *testing.T) *dnstest.Server { return dnstest.Start(t, testName) }

func TestDNSRefresh(t *testing.T) {
	dns := startDNS(t)
	dns.Set(false, "127.0.0.1")
	ln1 := serveID(t, "127.0.0.1:0", "one")
	_, port, _ := net.SplitHostPort(ln1.Addr().String())
	serveID(t, "127.0.0.2:"+port, "two")
	addr := "backend.test:" + port

	var logs syncBuffer
	changed := make(chan *Target, 16)
	p, err := NewPool(PoolOptions{
		Name:       "test",
		Targets:    []string{"https://" + addr},
		Resolver:   dns.Addr(),
		DNSRefresh: 50 * time.Millisecond,
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
		OnAddrChange: func(t *Target) {
			select {
			case changed <- t:
			default:
			}
		},
	})
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	tg := p.Targets()[0]

	// Before Start nothing is resolved; the first dial resolves on demand.
	if got := tg.Addrs(); got != nil {
		t.Fatalf("Addrs() before any lookup: got %q, want nil", got)
	}
	if got, err := dialID(p, addr); err != nil || got != "one" {
		t.Fatalf("DialContext(%q) before Start: got (%q, %v), want (%q, nil)", addr, got, err, "one")
	}
	if got, want := tg.Addrs(), []string{"127.0.0.1:" + port}; !slices.Equal(got, want) {
		t.Fatalf("Addrs() after on-demand lookup: got %q, want %q", got, want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Start(ctx)

	// Selection and address reads race with the refresh goroutine (-race).
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if p.Select(nil) == nil {
					t.Error("Select(nil): got nil, want the target")
					return
				}
				tg.Addrs()
				time.Sleep(time.Millisecond)
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()

	dns.Set(false, "127.0.0.2")
	waitFor(t, "dials to reach 127.0.0.2", func() bool {
		got, _ := dialID(p, addr)
		return got == "two"
	})
	select {
	case got := <-changed:
		if got != tg {
			t.Errorf("OnAddrChange: got target %v, want %v", got, tg)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("OnAddrChange was not called after the address changed")
	}
	if !strings.Contains(logs.String(), "target addresses changed") {
		t.Errorf("log after address change: got %q, want a line containing %q", logs.String(), "target addresses changed")
	}

	// Failed lookups keep the previous addresses and warn once per streak.
	dns.Set(true)
	q := dns.Queries()
	waitFor(t, "several failed lookups", func() bool { return dns.Queries() >= q+6 })
	if got, want := tg.Addrs(), []string{"127.0.0.2:" + port}; !slices.Equal(got, want) {
		t.Errorf("Addrs() while DNS fails: got %q, want %q", got, want)
	}
	if got, err := dialID(p, addr); err != nil || got != "two" {
		t.Errorf("DialContext(%q) while DNS fails: got (%q, %v), want (%q, nil)", addr, got, err, "two")
	}
	if got := strings.Count(logs.String(), "DNS lookup failed"); got != 1 {
		t.Errorf("warnings for one failure streak: got %d, want 1; log:\n%s", got, logs.String())
	}

	// With two addresses, a dead first one falls through to the second.
	dns.Set(false, "127.0.0.1", "127.0.0.2")
	want := []string{"127.0.0.1:" + port, "127.0.0.2:" + port}
	waitFor(t, "both addresses", func() bool { return slices.Equal(tg.Addrs(), want) })
	// The log line follows the address update; wait rather than race it.
	waitFor(t, "the recovery log line", func() bool { return strings.Contains(logs.String(), "DNS lookup succeeded again") })
	ln1.Close()
	if got, err := dialID(p, addr); err != nil || got != "two" {
		t.Errorf("DialContext(%q) with first address dead: got (%q, %v), want (%q, nil)", addr, got, err, "two")
	}
}

func TestDNSRefreshStops(t *testing.T) {
	dns := startDNS(t)
	dns.Set(false, "127.0.0.1")
	p, err := NewPool(PoolOptions{
		Name:       "test",
		Targets:    []string{"https://backend.test:1"},
		Resolver:   dns.Addr(),
		DNSRefresh: 20 * time.Millisecond,
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.Start(ctx)
	p.Start(ctx) // a second call must not start a second loop
	waitFor(t, "the first refresh", func() bool { return dns.Queries() >= 4 })
	cancel()
	time.Sleep(100 * time.Millisecond) // let a lookup in flight at cancel finish
	before := dns.Queries()
	time.Sleep(200 * time.Millisecond) // ten refresh periods
	if after := dns.Queries(); after != before {
		t.Errorf("DNS queries after cancel: got %d more, want 0", after-before)
	}
}

func TestDialContextLookupFails(t *testing.T) {
	dns := startDNS(t)
	dns.Set(true)
	p, err := NewPool(PoolOptions{
		Name:     "test",
		Targets:  []string{"https://backend.test:1"},
		Resolver: dns.Addr(),
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.DialContext(ctx, "tcp", "backend.test:1")
	if err == nil {
		c.Close()
		t.Fatalf("DialContext with failing DNS: got a connection, want an error")
	}
	if !strings.Contains(err.Error(), `resolving "backend.test"`) {
		t.Errorf("DialContext with failing DNS: got error %q, want it to mention resolving", err)
	}
}

type syncBuffer = testutil.SyncBuffer
