package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// PoolOptions configures a [Pool]. Zero fields take the documented defaults.
type PoolOptions struct {
	// Name is the upstream's name, used in logs.
	Name string
	// Targets are "https://host:port" or "http://host:port" URLs, or the
	// L4 tier's "tcp://host:port" and "tls://host:port"; the port defaults
	// to the scheme's (443 for tcp and tls). The host may be an IP literal or a DNS name.
	// At least one is required.
	Targets []string
	// Balance is BalanceRoundRobin (the default when empty) or
	// BalanceLeastRequests.
	Balance string
	// DNSRefresh is how often host-name targets are re-resolved. It defaults
	// to DefaultDNSRefresh.
	DNSRefresh time.Duration
	// Resolver is an optional "host:port" of a DNS server to query instead
	// of the system resolver. Empty means the system resolver.
	Resolver string
	// Passive configures passive ejection; the zero value disables it.
	Passive PassiveOptions
	// Logger receives DNS and ejection events. If nil, slog.Default() is used.
	Logger *slog.Logger
	// OnAddrChange, if set, is called from the refresh goroutine after a
	// host-name target's resolved addresses change (not on the first
	// successful resolution), so the caller can move new requests off
	// the old addresses (the gateway starts a new connection pool: closing
	// idle connections is not enough, as a busy HTTP/2 one is never idle).
	// It must not block for long.
	OnAddrChange func(t *Target)
}

// hostGroup is the set of targets sharing one DNS name, so each name is
// looked up once per refresh however many ports it is listed with.
type hostGroup struct {
	host    string
	targets []*Target
}

// Pool is the set of targets of one upstream with its balancing policy and
// its dialer. A Pool is safe for concurrent use; its target list is fixed
// at construction.
type Pool struct {
	name         string
	targets      []*Target
	byAddr       map[string]*Target
	hosts        []hostGroup
	selector     Selector
	refresh      time.Duration
	resolver     *net.Resolver
	resolverAddr string // "" for the system resolver
	logger       *slog.Logger
	onAddrChange func(*Target)
	dialer       net.Dialer
	started      atomic.Bool
}

// NewPool validates o and builds the pool. It does no network I/O: host
// names are resolved by [Pool.Start], or on the first dial if that comes
// first, so a slow or failing DNS server never blocks startup.
func NewPool(o PoolOptions) (*Pool, error) {
	if len(o.Targets) == 0 {
		return nil, fmt.Errorf("upstream %q: no targets", o.Name)
	}
	sel, err := newSelector(o.Balance)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", o.Name, err)
	}
	if o.DNSRefresh < 0 {
		return nil, fmt.Errorf("upstream %q: negative dns refresh %v", o.Name, o.DNSRefresh)
	}
	if o.DNSRefresh == 0 {
		o.DNSRefresh = DefaultDNSRefresh
	}
	passive, err := passiveDefaults(o.Passive)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", o.Name, err)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("upstream", o.Name)

	p := &Pool{
		name:         o.Name,
		byAddr:       make(map[string]*Target, len(o.Targets)),
		selector:     sel,
		refresh:      o.DNSRefresh,
		resolver:     net.DefaultResolver,
		logger:       logger,
		onAddrChange: o.OnAddrChange,
	}
	if o.Resolver != "" {
		if _, _, err := net.SplitHostPort(o.Resolver); err != nil {
			return nil, fmt.Errorf("upstream %q: resolver %q: want host:port: %w", o.Name, o.Resolver, err)
		}
		p.resolver = newResolver(o.Resolver)
		p.resolverAddr = o.Resolver
	}

	for _, raw := range o.Targets {
		t, err := newTarget(raw)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", o.Name, err)
		}
		if _, dup := p.byAddr[t.hostport]; dup {
			return nil, fmt.Errorf("upstream %q: target %q: duplicate of %s", o.Name, raw, t.hostport)
		}
		t.passive = passive
		t.logger = logger
		if passive.MaxFails > 0 {
			t.fails = make([]time.Time, 0, passive.MaxFails)
		}
		p.targets = append(p.targets, t)
		p.byAddr[t.hostport] = t
		if !t.ip {
			p.addToHostGroup(t)
		}
	}
	return p, nil
}

func (p *Pool) addToHostGroup(t *Target) {
	for i := range p.hosts {
		if p.hosts[i].host == t.host {
			p.hosts[i].targets = append(p.hosts[i].targets, t)
			return
		}
	}
	p.hosts = append(p.hosts, hostGroup{host: t.host, targets: []*Target{t}})
}

func passiveDefaults(o PassiveOptions) (PassiveOptions, error) {
	if o.MaxFails <= 0 {
		return PassiveOptions{}, nil
	}
	if o.FailWindow < 0 || o.EjectFor < 0 {
		return o, fmt.Errorf("passive: negative fail window %v or eject duration %v", o.FailWindow, o.EjectFor)
	}
	if o.FailWindow == 0 {
		o.FailWindow = DefaultFailWindow
	}
	if o.EjectFor == 0 {
		o.EjectFor = DefaultEjectFor
	}
	return o, nil
}

// DefaultPort is the port of a target URL with scheme that names none;
// ok is false for a scheme a target cannot have. tcp:// and tls:// are the
// L4 tier's raw TCP and TLS targets; the pool dials and balances them as
// it does https ones.
func DefaultPort(scheme string) (port string, ok bool) {
	switch scheme {
	case "https", "tls", "tcp":
		return "443", true
	case "http":
		return "80", true
	}
	return "", false
}

// newTarget parses one target URL into a Target with its host:port key.
func newTarget(raw string) (*Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	defPort, ok := DefaultPort(u.Scheme)
	if !ok {
		return nil, fmt.Errorf("target %q: scheme must be https, http, tls or tcp", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("target %q: must not contain credentials", raw)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("target %q: must be scheme://host:port only, without path or query", raw)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("target %q: missing host", raw)
	}
	port := u.Port()
	if port == "" {
		port = defPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("target %q: invalid port %q", raw, port)
	}
	_, ipErr := netip.ParseAddr(host)
	isIP := ipErr == nil
	if !isIP {
		// DNS names are case-insensitive; one spelling keeps dial keys
		// matching what the transport asks for.
		host = strings.ToLower(host)
	}
	hostport := net.JoinHostPort(host, port)
	return &Target{
		url:      &url.URL{Scheme: u.Scheme, Host: hostport},
		hostport: hostport,
		host:     host,
		port:     port,
		ip:       isIP,
	}, nil
}

// Name returns the upstream's name.
func (p *Pool) Name() string { return p.name }

// Targets returns the pool's targets in configuration order. The slice is
// shared and must not be modified.
func (p *Pool) Targets() []*Target { return p.targets }

// Select returns an available target not in tried (which may be nil), or nil
// when none is available. It does not allocate.
func (p *Pool) Select(tried []*Target) *Target {
	return p.selector.Select(p.targets, tried)
}

// DialContext dials addr, the "host:port" of one of the pool's targets,
// using that target's currently resolved addresses, trying each in turn
// until one connects. If none is known yet it resolves the name first. IP
// targets and addresses that are not targets of the pool are dialed as
// given. It has the signature of [net/http.Transport.DialContext].
func (p *Pool) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	t := p.byAddr[addr]
	if t == nil {
		t = p.byAddr[strings.ToLower(addr)]
	}
	if t == nil || t.ip {
		return p.dialer.DialContext(ctx, network, addr)
	}
	addrs := t.loadAddrs()
	if len(addrs) == 0 {
		var err error
		if addrs, err = p.resolveNow(ctx, t); err != nil {
			return nil, fmt.Errorf("dialing %s: %w", addr, err)
		}
	}
	var first error
	for i, a := range addrs {
		c, err := p.dialOne(ctx, network, a, len(addrs)-i)
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if len(addrs) == 1 {
		return nil, fmt.Errorf("dialing %s: %w", addr, first)
	}
	return nil, fmt.Errorf("dialing %s: none of %d addresses connected, first error: %w", addr, len(addrs), first)
}

// dialOne dials a single address. When the context has a deadline and more
// addresses remain, this attempt gets only its share of the remaining time
// (but at least minDialAttempt), so one unresponsive address does not use
// up the time meant for the others.
func (p *Pool) dialOne(ctx context.Context, network, addr string, remaining int) (net.Conn, error) {
	if deadline, ok := ctx.Deadline(); ok && remaining > 1 {
		left := time.Until(deadline)
		share := max(left/time.Duration(remaining), minDialAttempt)
		if share < left {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, share)
			defer cancel()
		}
	}
	return p.dialer.DialContext(ctx, network, addr)
}

// errNoAddrs reports a lookup that succeeded without any address.
var errNoAddrs = errors.New("no addresses")
