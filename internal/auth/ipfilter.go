package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strings"

	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"
	"github.com/drawbridge-gw/drawbridge/internal/observe"
)

// IPRules is an allow list and a deny list of client addresses. Deny wins
// over Allow; an empty Allow list allows every address not denied.
type IPRules struct {
	Allow, Deny []netip.Prefix
}

// ParseIPRules parses allow and deny entries, each a CIDR prefix
// ("10.0.0.0/8", "2001:db8::/32") or a single address ("192.0.2.7",
// "::1"). Every bad entry is reported, each by its list and position.
func ParseIPRules(allow, deny []string) (IPRules, error) {
	var rules IPRules
	var errs []error
	parse := func(list string, entries []string) []netip.Prefix {
		out := make([]netip.Prefix, 0, len(entries))
		for i, s := range entries {
			p, err := parsePrefix(strings.TrimSpace(s))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s[%d] %q: %w", list, i, s, err))
				continue
			}
			out = append(out, p)
		}
		return out
	}
	rules.Allow = parse("allow", allow)
	rules.Deny = parse("deny", deny)
	if err := errors.Join(errs...); err != nil {
		return IPRules{}, err
	}
	return rules, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("empty entry")
	}
	if strings.Contains(s, "%") {
		return netip.Prefix{}, errors.New("zoned addresses are not allowed")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errors.New("not a CIDR prefix or an IP address")
		}
		return normalizePrefix(p)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, errors.New("not a CIDR prefix or an IP address")
	}
	return normalizePrefix(netip.PrefixFrom(a, a.BitLen()))
}

// normalizePrefix masks p and turns an IPv4-mapped IPv6 prefix
// (::ffff:10.0.0.0/104) into the IPv4 one (10.0.0.0/8), since client
// addresses are unmapped before matching.
func normalizePrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, errors.New("invalid prefix")
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, errors.New("zoned addresses are not allowed")
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, errors.New("IPv4-mapped prefix shorter than /96")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

func (rules IPRules) normalize() (IPRules, error) {
	var out IPRules
	var errs []error
	for i, p := range rules.Allow {
		q, err := normalizePrefix(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("allow[%d] %v: %w", i, p, err))
		}
		out.Allow = append(out.Allow, q)
	}
	for i, p := range rules.Deny {
		q, err := normalizePrefix(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("deny[%d] %v: %w", i, p, err))
		}
		out.Deny = append(out.Deny, q)
	}
	return out, errors.Join(errs...)
}

func (rules IPRules) empty() bool { return len(rules.Allow) == 0 && len(rules.Deny) == 0 }

// allows reports whether rules let a (unmapped, without zone) through.
func (rules IPRules) allows(a netip.Addr) bool {
	for _, p := range rules.Deny {
		if p.Contains(a) {
			return false
		}
	}
	if len(rules.Allow) == 0 {
		return true
	}
	for _, p := range rules.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ipFilter is the handler NewIPFilter returns.
type ipFilter struct {
	route    IPRules
	partners map[string]IPRules
	next     http.Handler
}

// NewIPFilter returns a handler that refuses clients whose address rules
// or, when a check before it identified the caller, partnerRules[partner]
// do not allow, with API Gateway's ACCESS_DENIED (403, "Message").
// The partner is Identity.Partner, or Identity.KeyName when Partner is
// empty. Put it after the key and client certificate checks.
//
// The client's address is the TCP peer's (r.RemoteAddr); X-Forwarded-For
// is ignored, since any client can send it. IPv4-mapped IPv6 addresses
// are matched as IPv4.
func NewIPFilter(rules IPRules, partnerRules map[string]IPRules, next http.Handler) (http.Handler, error) {
	if next == nil {
		return nil, errors.New("ip filter: next handler is nil")
	}
	route, err := rules.normalize()
	if err != nil {
		return nil, fmt.Errorf("ip filter: %w", err)
	}
	f := &ipFilter{route: route, partners: make(map[string]IPRules), next: next}
	names := make([]string, 0, len(partnerRules))
	for name := range partnerRules {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		if name == "" {
			errs = append(errs, errors.New("ip filter: partner rules with empty name"))
			continue
		}
		pr, err := partnerRules[name].normalize()
		if err != nil {
			errs = append(errs, fmt.Errorf("ip filter: partner %q: %w", name, err))
			continue
		}
		if !pr.empty() {
			f.partners[name] = pr
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if f.route.empty() && len(f.partners) == 0 {
		return next, nil
	}
	return f, nil
}

func (f *ipFilter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rules := [2]IPRules{f.route}
	n := 1
	if id := identityFrom(r.Context()); id != nil {
		name := id.Partner
		if name == "" {
			name = id.KeyName
		}
		if pr, ok := f.partners[name]; ok {
			rules[1] = pr
			n = 2
		}
	}
	if n == 1 && f.route.empty() {
		f.next.ServeHTTP(w, r)
		return
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		// Fail closed: with rules to apply, an address that cannot be
		// read (a Unix socket, a broken wrapper) is not allowed.
		f.deny(w, r, "ip: unreadable client address")
		return
	}
	a := ap.Addr().Unmap().WithZone("")
	for _, rs := range rules[:n] {
		if !rs.allows(a) {
			f.deny(w, r, "ip: not allowed")
			return
		}
	}
	f.next.ServeHTTP(w, r)
}

func (f *ipFilter) deny(w http.ResponseWriter, r *http.Request, detail string) {
	observe.RecordFrom(r.Context()).Error = detail
	gwresponse.Write(w, gwresponse.AccessDenied)
}
