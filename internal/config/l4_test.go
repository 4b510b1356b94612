package config

import (
	"strings"
	"testing"
)

// TestUpstreamScheme: the kind of an upstream does not depend on the
// order of its targets (a mixed upstream is refused by Load, but its
// other checks must not change with the order either).
func TestUpstreamScheme(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		targets []string
		want    string
	}{
		{nil, ""},
		{[]string{"https://a:443"}, "https"},
		{[]string{"http://a:80"}, "http"},
		{[]string{"http://a:80", "https://b:443"}, "https"},
		{[]string{"https://b:443", "http://a:80"}, "https"},
		{[]string{"tls://a:443"}, "tls"},
		{[]string{"https://a:443", "tls://b:443"}, "tls"},
		{[]string{"tls://b:443", "https://a:443"}, "tls"},
		{[]string{"http://a:80", "tls://b:443"}, "tls"},
		{[]string{"tcp://a:443", "https://b:443"}, "tcp"},
		{[]string{"https://b:443", "tcp://a:443"}, "tcp"},
		{[]string{"tls://b:443", "tcp://a:443"}, "tcp"},
	} {
		u := &Upstream{Targets: tc.targets}
		if got := u.Scheme(); got != tc.want {
			t.Errorf("Scheme() of %v: got %q, want %q", tc.targets, got, tc.want)
		}
	}
}

// TestL4Warnings: a tcp listener reaching the upstream of routes guarded
// by an API key, IP rules or a client certificate is warned of, once per
// SNI route, naming at most three routes; unguarded routes are not.
func TestL4Warnings(t *testing.T) {
	t.Parallel()
	tcp := func(upstream string) Listener {
		return Listener{Name: "nlb", Type: ListenerTCP, SNI: SNIRoutes{{Line: 7, Name: "*", Upstream: upstream}}}
	}
	for _, tc := range []struct {
		desc   string
		routes []*Route
		want   string // "" for no warning
	}{
		{desc: "unguarded route", routes: []*Route{{Name: "open", Upstream: "web"}}},
		{desc: "guarded route of another upstream", routes: []*Route{{Name: "k", Upstream: "other", APIKeyRequired: true}}},
		{desc: "api key", routes: []*Route{{Name: "k", Upstream: "web", APIKeyRequired: true}}, want: `route(s) "k", which`},
		{desc: "ip rules", routes: []*Route{{Name: "i", Upstream: "web", IP: &IPRules{}}}, want: `route(s) "i", which`},
		{desc: "client cert", routes: []*Route{{Name: "c", Upstream: "web", ClientCert: "required"}}, want: `route(s) "c", which`},
		{desc: "unnamed and many", routes: []*Route{
			{Upstream: "web", APIKeyRequired: true}, {Name: "b", Upstream: "web", APIKeyRequired: true}, nil,
			{Name: "d", Upstream: "web", APIKeyRequired: true}, {Name: "e", Upstream: "web", APIKeyRequired: true}, {Name: "f", Upstream: "web", APIKeyRequired: true},
		}, want: `route(s) "#1", "b", "d" and 2 more, which`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			c := &Config{File: "x.yaml", Listeners: []Listener{{Name: "public", SNI: SNIRoutes{{Line: 3, Name: "*", Upstream: "web"}}}, tcp("web")}, Routes: tc.routes}
			got := c.l4Warnings()
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("l4Warnings(): got %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], `x.yaml:7: listener "nlb": sni "*": upstream "web"`) || !strings.Contains(got[0], tc.want)):
				t.Errorf("l4Warnings(): got %q, want one warning at x.yaml:7 containing %q", got, tc.want)
			}
		})
	}
}
