package upstream

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"time"
)

// newResolver returns a pure-Go resolver that sends every query to server
// instead of the servers in /etc/resolv.conf. Queries go over UDP; the
// resolver's own TCP retry for truncated answers goes to the same server.
func newResolver(server string) *net.Resolver {
	var d net.Dialer
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, server)
		},
	}
}

// Start launches the DNS refresh of host-name targets: one goroutine with
// one ticker for the whole pool, which resolves every name right away and
// then every DNSRefresh, until ctx is done. It returns at once. Pools with
// only IP targets start nothing; calls after the first do nothing.
func (p *Pool) Start(ctx context.Context) {
	if len(p.hosts) == 0 || !p.started.CompareAndSwap(false, true) {
		return
	}
	go p.refreshLoop(ctx)
}

func (p *Pool) refreshLoop(ctx context.Context) {
	p.refreshAll(ctx)
	tick := time.NewTicker(p.refresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			p.refreshAll(ctx)
		}
	}
}

// refreshAll resolves every host name once. A panic is logged and
// swallowed so the next tick still runs.
func (p *Pool) refreshAll(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			p.logger.Error("panic in DNS refresh", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	for _, g := range p.hosts {
		if ctx.Err() != nil {
			return
		}
		ips, err := p.lookup(ctx, g.host)
		if err != nil && ctx.Err() != nil {
			return // shutting down; not a DNS failure worth logging
		}
		for _, t := range g.targets {
			p.apply(t, ips, err, false)
		}
	}
}

// resolveNow resolves t on the dial path, when no address is known yet.
func (p *Pool) resolveNow(ctx context.Context, t *Target) ([]string, error) {
	ips, err := p.lookup(ctx, t.host)
	p.apply(t, ips, err, true)
	if err != nil {
		return nil, err
	}
	return t.loadAddrs(), nil
}

// lookup returns the sorted, de-duplicated addresses of host, IPv4 first.
// Sorting makes change detection a plain comparison.
func (p *Pool) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultLookupTimeout)
	defer cancel()
	ips, err := p.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		if p.resolverAddr != "" {
			// The net package names the system's server even though Dial
			// redirected the query; name the one actually asked.
			return nil, fmt.Errorf("resolving %q via %s: %w", host, p.resolverAddr, err)
		}
		return nil, fmt.Errorf("resolving %q: %w", host, err)
	}
	for i, ip := range ips {
		ips[i] = ip.Unmap()
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	ips = slices.Compact(ips)
	if len(ips) == 0 {
		return nil, fmt.Errorf("resolving %q: %w", host, errNoAddrs)
	}
	return ips, nil
}

// apply records the outcome of a lookup for t. A failed lookup keeps the
// previous addresses and is logged once per streak of failures; a changed
// address set is logged and reported to OnAddrChange. With onlyIfUnset
// (the dial path) known addresses are left to the refresh goroutine, so
// OnAddrChange is only ever called from there.
func (p *Pool) apply(t *Target, ips []netip.Addr, lookupErr error, onlyIfUnset bool) {
	t.resolveMu.Lock()
	old := t.loadAddrs()
	if lookupErr != nil {
		first := !t.lookupFailing
		t.lookupFailing = true
		t.resolveMu.Unlock()
		if first {
			p.logger.Warn("DNS lookup failed; keeping previous addresses",
				"target", t.hostport, "addrs", old, "error", lookupErr)
		}
		return
	}
	addrs := make([]string, len(ips))
	for i, ip := range ips {
		addrs[i] = net.JoinHostPort(ip.String(), t.port)
	}
	recovered := t.lookupFailing
	t.lookupFailing = false
	changed := !slices.Equal(old, addrs) && !(onlyIfUnset && old != nil)
	if changed {
		t.addrs.Store(&addrs)
	}
	t.resolveMu.Unlock()

	if recovered {
		p.logger.Info("DNS lookup succeeded again", "target", t.hostport)
	}
	switch {
	case !changed:
	case old == nil:
		p.logger.Info("target resolved", "target", t.hostport, "addrs", addrs)
	default:
		p.logger.Info("target addresses changed", "target", t.hostport, "old", old, "new", addrs)
		if p.onAddrChange != nil {
			p.onAddrChange(t)
		}
	}
}
