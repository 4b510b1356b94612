package auth

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func mustRules(t *testing.T, allow, deny []string) IPRules {
	t.Helper()
	r, err := ParseIPRules(allow, deny)
	if err != nil {
		t.Fatalf("ParseIPRules(%q, %q): %v", allow, deny, err)
	}
	return r
}

func TestParseIPRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc      string
		allow     []string
		wantAllow []string
		wantErr   []string
	}{
		{desc: "v4 cidr", allow: []string{"10.0.0.0/8"}, wantAllow: []string{"10.0.0.0/8"}},
		{desc: "v4 address", allow: []string{"192.0.2.7"}, wantAllow: []string{"192.0.2.7/32"}},
		{desc: "v6 cidr and address", allow: []string{"2001:db8::/32", "::1"}, wantAllow: []string{"2001:db8::/32", "::1/128"}},
		{desc: "host bits masked", allow: []string{"10.1.2.3/8"}, wantAllow: []string{"10.0.0.0/8"}},
		{desc: "mapped prefix unmapped", allow: []string{"::ffff:10.0.0.0/104", "::ffff:192.0.2.7"}, wantAllow: []string{"10.0.0.0/8", "192.0.2.7/32"}},
		{desc: "spaces trimmed", allow: []string{" 10.0.0.0/8 "}, wantAllow: []string{"10.0.0.0/8"}},
		{desc: "hostname", allow: []string{"example.com"}, wantErr: []string{`allow[0] "example.com"`}},
		{desc: "bad bits", allow: []string{"10.0.0.0/33"}, wantErr: []string{`allow[0] "10.0.0.0/33"`}},
		{desc: "empty", allow: []string{""}, wantErr: []string{`allow[0] "": empty entry`}},
		{desc: "zone", allow: []string{"fe80::1%eth0"}, wantErr: []string{"zoned"}},
		{desc: "short mapped prefix", allow: []string{"::ffff:0.0.0.0/80"}, wantErr: []string{"shorter than /96"}},
		{desc: "every bad entry named", allow: []string{"10.0.0.0/8", "nope", "1.2.3.4/40"}, wantErr: []string{`allow[1] "nope"`, `allow[2] "1.2.3.4/40"`}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			got, err := ParseIPRules(tt.allow, []string{"10.9.9.9"})
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("ParseIPRules(%q): got %v, nil; want an error", tt.allow, got)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("ParseIPRules(%q): got error %q, want it to contain %q", tt.allow, err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseIPRules(%q): %v", tt.allow, err)
			}
			var gotAllow []string
			for _, p := range got.Allow {
				gotAllow = append(gotAllow, p.String())
			}
			if strings.Join(gotAllow, " ") != strings.Join(tt.wantAllow, " ") {
				t.Errorf("ParseIPRules(%q).Allow: got %q, want %q", tt.allow, gotAllow, tt.wantAllow)
			}
			if len(got.Deny) != 1 || got.Deny[0].String() != "10.9.9.9/32" {
				t.Errorf("ParseIPRules(_, [10.9.9.9]).Deny: got %v, want [10.9.9.9/32]", got.Deny)
			}
		})
	}
	if _, err := ParseIPRules(nil, []string{"x"}); err == nil || !strings.Contains(err.Error(), `deny[0] "x"`) {
		t.Errorf(`ParseIPRules(nil, ["x"]): got %v, want an error naming deny[0] "x"`, err)
	}
}

func TestIPFilter(t *testing.T) {
	t.Parallel()
	route := mustRules(t, []string{"10.0.0.0/8", "2001:db8::/32", "127.0.0.0/8", "::1"}, []string{"10.66.0.0/16", "2001:db8:bad::/48"})
	partners := map[string]IPRules{
		"acme": mustRules(t, []string{"10.1.0.0/16", "2001:db8:1::/48"}, nil),
		"beta": mustRules(t, nil, []string{"10.2.0.0/16"}),
	}
	h, err := NewIPFilter(route, partners, identityEcho)
	if err != nil {
		t.Fatalf("NewIPFilter: %v", err)
	}
	tests := []struct {
		desc       string
		remote     string
		identity   *Identity
		wantStatus int
	}{
		{desc: "v4 allowed", remote: "10.3.4.5:40000", wantStatus: 200},
		{desc: "v4 not in allow", remote: "192.0.2.1:40000", wantStatus: 403},
		{desc: "v4 deny wins over allow", remote: "10.66.1.1:40000", wantStatus: 403},
		{desc: "v6 allowed", remote: "[2001:db8::5]:40000", wantStatus: 200},
		{desc: "v6 denied", remote: "[2001:db8:bad::5]:40000", wantStatus: 403},
		{desc: "v6 not in allow", remote: "[2001:db9::1]:40000", wantStatus: 403},
		{desc: "v6 with zone", remote: "[2001:db8::5%eth0]:40000", wantStatus: 200},
		{desc: "mapped v4 allowed", remote: "[::ffff:10.3.4.5]:40000", wantStatus: 200},
		{desc: "mapped v4 denied", remote: "[::ffff:10.66.1.1]:40000", wantStatus: 403},
		{desc: "unreadable address", remote: "@", wantStatus: 403},
		{desc: "X-Forwarded-For ignored", remote: "192.0.2.1:40000", wantStatus: 403},
		{desc: "partner allowed by its rules", remote: "10.1.2.3:1", identity: &Identity{Partner: "acme"}, wantStatus: 200},
		{desc: "partner outside its allow list", remote: "10.3.4.5:1", identity: &Identity{Partner: "acme"}, wantStatus: 403},
		{desc: "partner v6 inside its allow list", remote: "[2001:db8:1::9]:1", identity: &Identity{Partner: "acme"}, wantStatus: 200},
		{desc: "partner by key name", remote: "10.3.4.5:1", identity: &Identity{KeyName: "acme"}, wantStatus: 403},
		{desc: "partner deny", remote: "10.2.0.1:1", identity: &Identity{Partner: "beta"}, wantStatus: 403},
		{desc: "partner rules cannot widen route rules", remote: "10.66.0.1:1", identity: &Identity{Partner: "beta"}, wantStatus: 403},
		{desc: "partner without rules", remote: "10.2.0.1:1", identity: &Identity{Partner: "gamma"}, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			r.Header.Set("X-Forwarded-For", "10.3.4.5")
			if tt.identity != nil {
				r = r.WithContext(WithIdentity(r.Context(), *tt.identity))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("ServeHTTP from %s as %+v: got %d, want %d", tt.remote, tt.identity, w.Code, tt.wantStatus)
			}
			if w.Code == 403 {
				wantBody := `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke"}`
				if got := w.Body.String(); got != wantBody {
					t.Errorf("body: got %q, want %q", got, wantBody)
				}
				if got := w.Header().Get("X-Amzn-Errortype"); got != "AccessDeniedException" {
					t.Errorf("x-amzn-ErrorType: got %q, want %q", got, "AccessDeniedException")
				}
			}
		})
	}
}

// TestIPFilterLoopback runs the filter over real sockets, where the
// address comes from the TCP connection.
func TestIPFilterLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc       string
		listen     string
		allow      []string
		deny       []string
		wantStatus int
	}{
		{desc: "v4 allowed", listen: "127.0.0.1:0", allow: []string{"127.0.0.0/8"}, wantStatus: 200},
		{desc: "v4 denied", listen: "127.0.0.1:0", allow: []string{"127.0.0.0/8"}, deny: []string{"127.0.0.1"}, wantStatus: 403},
		{desc: "v4 not in allow", listen: "127.0.0.1:0", allow: []string{"10.0.0.0/8"}, wantStatus: 403},
		{desc: "v6 allowed", listen: "[::1]:0", allow: []string{"::1"}, wantStatus: 200},
		{desc: "v6 not in allow", listen: "[::1]:0", allow: []string{"127.0.0.0/8"}, wantStatus: 403},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", tt.listen)
			if err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("net.Listen(%q): %v: CI machines have IPv4 and IPv6 loopback", tt.listen, err)
				}
				t.Skipf("net.Listen(%q): %v (no such loopback here)", tt.listen, err)
			}
			h, err := NewIPFilter(mustRules(t, tt.allow, tt.deny), nil, identityEcho)
			if err != nil {
				t.Fatalf("NewIPFilter: %v", err)
			}
			srv := httptest.NewUnstartedServer(h)
			srv.Listener.Close()
			srv.Listener = ln
			srv.Start()
			t.Cleanup(srv.Close)
			if got := get(t, srv.Client(), srv.URL, nil); got.status != tt.wantStatus {
				t.Errorf("GET %s: got %d %q, want %d", srv.URL, got.status, got.body, tt.wantStatus)
			}
		})
	}
}

func TestNewIPFilter(t *testing.T) {
	t.Parallel()
	bad := IPRules{Allow: []netip.Prefix{{}}}
	if _, err := NewIPFilter(bad, nil, identityEcho); err == nil {
		t.Errorf("NewIPFilter(invalid prefix): got nil error, want one")
	}
	if _, err := NewIPFilter(IPRules{}, map[string]IPRules{"acme": bad}, identityEcho); err == nil || !strings.Contains(err.Error(), `partner "acme"`) {
		t.Errorf("NewIPFilter(partner acme invalid prefix): got %v, want an error naming the partner", err)
	}
	if _, err := NewIPFilter(IPRules{}, map[string]IPRules{"": {}}, identityEcho); err == nil {
		t.Errorf("NewIPFilter(partner with empty name): got nil error, want one")
	}
	if _, err := NewIPFilter(IPRules{}, nil, nil); err == nil {
		t.Errorf("NewIPFilter(nil next): got nil error, want one")
	}
	// Prefixes built by hand, not through ParseIPRules, are normalised too.
	raw := IPRules{Allow: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}}
	h, err := NewIPFilter(raw, nil, identityEcho)
	if err != nil {
		t.Fatalf("NewIPFilter(%v): %v", raw, err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.1.1.1:5"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Errorf("ServeHTTP from 10.1.1.1 with allow ::ffff:10.0.0.0/104: got %d, want 200", w.Code)
	}
}
