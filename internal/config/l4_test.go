package config

import "testing"

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
