package l4

import (
	"fmt"
	"strings"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/transport"
	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

// Route is where connections for one server name pattern go.
type Route struct {
	// Upstream names the upstream in logs and metrics.
	Upstream string
	// Pool chooses and dials the targets. Required.
	Pool *upstream.Pool
	// TLS, if set (terminate mode), makes the verified TLS connection to
	// the target, after the PROXY header. Nil copies raw TCP.
	TLS *transport.Handshaker
	// ProxyProtocol is 1 or 2 to send a PROXY protocol header of that
	// version to the target first; 0 sends none.
	ProxyProtocol int
	// MaxConns caps the connections open to each target (with the HTTP
	// requests in flight to it, when the upstream serves both); a target
	// at the cap is skipped. 0 means no cap.
	MaxConns int
	// DialTimeout bounds the TCP connect to one target. It defaults to
	// DefaultDialTimeout. (The TLS handshake has its own bound, in TLS.)
	DialTimeout time.Duration
}

func (r *Route) dialTimeout() time.Duration {
	if r.DialTimeout <= 0 {
		return DefaultDialTimeout
	}
	return r.DialTimeout
}

// Table routes server names: an exact name first, then the one-label
// wildcard of its parent ("*.example.com" for "api.example.com"), then the
// default route "*", which also takes connections without SNI. A Table is
// immutable once built.
type Table struct {
	exact    map[string]*Route
	wildcard map[string]*Route // by the parent name, "example.com"
	fallback *Route
}

// NewTable builds a table from patterns ("api.example.com",
// "*.example.com" or "*") to routes. Patterns are matched without regard
// to case or a trailing dot.
func NewTable(routes map[string]*Route) (*Table, error) {
	t := &Table{exact: map[string]*Route{}, wildcard: map[string]*Route{}}
	for pattern, r := range routes {
		if r == nil || r.Pool == nil {
			return nil, fmt.Errorf("sni %q: no upstream pool", pattern)
		}
		if r.ProxyProtocol < 0 || r.ProxyProtocol > 2 {
			return nil, fmt.Errorf("sni %q: proxy protocol version %d: want 1 or 2", pattern, r.ProxyProtocol)
		}
		p := normalizeName(pattern)
		switch {
		case p == "*":
			t.fallback = r
		case strings.HasPrefix(p, "*."):
			parent := p[2:]
			if parent == "" || strings.Contains(parent, "*") {
				return nil, fmt.Errorf("sni %q: a wildcard is \"*.\" and a name, as *.example.com", pattern)
			}
			t.wildcard[parent] = r
		case p == "" || strings.Contains(p, "*"):
			return nil, fmt.Errorf("sni %q: want a host name, *.name or *", pattern)
		default:
			t.exact[p] = r
		}
	}
	return t, nil
}

// Match returns the route for server name sni ("" when the client sent
// none), or nil when no route takes it.
func (t *Table) Match(sni string) *Route {
	name := normalizeName(sni)
	if name != "" {
		if r, ok := t.exact[name]; ok {
			return r
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if r, ok := t.wildcard[name[i+1:]]; ok {
				return r
			}
		}
	}
	return t.fallback
}

func normalizeName(s string) string {
	return strings.TrimSuffix(strings.ToLower(s), ".")
}
