package upstream

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// quiet discards the logs of tests that provoke warnings on purpose.
var quiet = slog.New(slog.DiscardHandler)

func TestNewPoolErrors(t *testing.T) {
	tests := []struct {
		desc    string
		opts    PoolOptions
		wantErr string
	}{
		{desc: "no targets", opts: PoolOptions{Name: "a"}, wantErr: "no targets"},
		{desc: "bad scheme", opts: PoolOptions{Targets: []string{"ftp://h:1"}}, wantErr: "scheme must be https, http, tls or tcp"},
		{desc: "path", opts: PoolOptions{Targets: []string{"https://h:1/api"}}, wantErr: "without path"},
		{desc: "query", opts: PoolOptions{Targets: []string{"https://h:1?x=1"}}, wantErr: "without path"},
		{desc: "credentials", opts: PoolOptions{Targets: []string{"https://u:p@h:1"}}, wantErr: "credentials"},
		{desc: "missing host", opts: PoolOptions{Targets: []string{"https://:443"}}, wantErr: "missing host"},
		{desc: "bad port", opts: PoolOptions{Targets: []string{"https://h:99999"}}, wantErr: "invalid port"},
		{desc: "unparsable", opts: PoolOptions{Targets: []string{"https://[::1"}}, wantErr: "target"},
		{desc: "duplicate", opts: PoolOptions{Targets: []string{"https://H:443", "https://h"}}, wantErr: "duplicate"},
		{desc: "unknown balance", opts: PoolOptions{Targets: []string{"https://h"}, Balance: "random"}, wantErr: "unknown balance policy"},
		{desc: "bad resolver", opts: PoolOptions{Targets: []string{"https://h"}, Resolver: "10.0.0.1"}, wantErr: "resolver"},
		{desc: "negative refresh", opts: PoolOptions{Targets: []string{"https://h"}, DNSRefresh: -time.Second}, wantErr: "negative dns refresh"},
		{desc: "negative eject", opts: PoolOptions{Targets: []string{"https://h"}, Passive: PassiveOptions{MaxFails: 1, EjectFor: -1}}, wantErr: "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			p, err := NewPool(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewPool(%+v): got (%v, %v), want error containing %q", tc.opts, p, err, tc.wantErr)
			}
		})
	}
}

func TestNewPoolDefaults(t *testing.T) {
	p, err := NewPool(PoolOptions{Name: "onprem", Targets: []string{"https://10.0.0.5", "https://lb.internal"},
		Passive: PassiveOptions{MaxFails: 2}})
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	if got, want := p.Name(), "onprem"; got != want {
		t.Errorf("Name(): got %q, want %q", got, want)
	}
	if got, want := p.refresh, DefaultDNSRefresh; got != want {
		t.Errorf("DNS refresh: got %v, want %v", got, want)
	}
	got := p.Targets()[0].passive
	want := PassiveOptions{MaxFails: 2, FailWindow: DefaultFailWindow, EjectFor: DefaultEjectFor}
	if got != want {
		t.Errorf("passive options: got %+v, want %+v", got, want)
	}
	if _, ok := p.selector.(*RoundRobin); !ok {
		t.Errorf("default selector: got %T, want *RoundRobin", p.selector)
	}
}

// serveID starts a TCP listener on addr that writes id to every connection.
func serveID(t *testing.T, addr, id string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on %s: %v (Linux routes all of 127.0.0.0/8 to lo; is this a sandbox without it?)", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(id))
			c.Close()
		}
	}()
	return ln
}

// dialID dials addr through p and returns what the server wrote.
func dialID(p *Pool, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestDialContextIPTarget(t *testing.T) {
	ln := serveID(t, "127.0.0.1:0", "ip")
	other := serveID(t, "127.0.0.1:0", "other")
	p, err := NewPool(PoolOptions{Name: "test", Targets: []string{"https://" + ln.Addr().String()}})
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	for _, tc := range []struct{ addr, want string }{
		{ln.Addr().String(), "ip"},
		{other.Addr().String(), "other"}, // not a target: dialed as given
	} {
		if got, err := dialID(p, tc.addr); err != nil || got != tc.want {
			t.Errorf("DialContext(%q): got (%q, %v), want (%q, nil)", tc.addr, got, err, tc.want)
		}
	}
}
