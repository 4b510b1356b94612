package config

import (
	"fmt"
	"net"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// This file holds the L4 tier's settings: tcp listeners routed by SNI,
// their upstreams (tcp://, tls:// targets, PROXY protocol) and TCP and TLS
// health checks.

// Listener types.
const (
	ListenerHTTP = "http"
	ListenerTCP  = "tcp"
)

// TLS modes of a tcp listener.
const (
	// ModePassthrough forwards the client's TLS session untouched: the
	// client sees the target's own certificate.
	ModePassthrough = "passthrough"
	// ModeTerminate ends the client's TLS session with the listener's
	// certificate and opens a verified one to the target.
	ModeTerminate = "terminate"
)

// Health check types.
const (
	HealthHTTP = "http"
	HealthTCP  = "tcp"
	HealthTLS  = "tls"
)

// SNIDefault is the SNI route taken by names no other route matches and by
// connections without SNI.
const SNIDefault = "*"

// SNIRoutes are a tcp listener's routes in file order. In YAML they are a
// mapping of server name to upstream name.
type SNIRoutes []SNIRoute

// SNIRoute sends connections for one server name pattern to an upstream.
type SNIRoute struct {
	Line int
	// Name is an exact host name ("api.example.com"), a one-label wildcard
	// ("*.example.com" matches "a.example.com", not "a.b.example.com" nor
	// "example.com") or SNIDefault. Load lowercases it.
	Name string
	// Upstream names an entry of upstreams.
	Upstream string
}

// MarshalYAML writes the routes back as the mapping they were read from.
func (s SNIRoutes) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, r := range s {
		n.Content = append(n.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: r.Name},
			&yaml.Node{Kind: yaml.ScalarNode, Value: r.Upstream})
	}
	return n, nil
}

var sniRoutesType = reflect.TypeFor[SNIRoutes]()

// decodeSNI reads the mapping of server names to upstream names, keeping
// the line of each entry for messages.
func (d *decoder) decodeSNI(n *yaml.Node, v reflect.Value, w where) {
	if n.Kind != yaml.MappingNode {
		d.wrongType(n, v, w, `a mapping of server names to upstreams, such as {api.example.com: onprem, "*": default-pool}`)
		return
	}
	var routes SNIRoutes
	for _, p := range d.pairs(n, w) {
		val := deref(p.v)
		if val == nil || val.Kind != yaml.ScalarNode || isNull(val) {
			d.markBad(v)
			d.r.add(p.k.Line, "%ssni %q: want the name of an upstream, got %s", where{obj: w.obj}.prefix(), p.k.Value, describe(val))
			continue
		}
		if d.failed[val] {
			d.markBad(v)
			continue
		}
		routes = append(routes, SNIRoute{Line: p.k.Line, Name: p.k.Value, Upstream: val.Value})
	}
	v.Set(reflect.ValueOf(routes))
}

// Scheme is the kind of u's targets once loaded: "tcp", "tls", "https"
// (possibly with http:// targets beside, under allow_insecure), "http"
// when every target is http://, or "" when it has none. It does not
// depend on the targets' order; Load refuses upstreams that mix kinds,
// and for one that does, tcp wins over tls over https.
func (u *Upstream) Scheme() string {
	seen := map[string]bool{}
	for _, t := range u.Targets {
		if s, _, ok := strings.Cut(t, "://"); ok {
			seen[s] = true
		}
	}
	for _, s := range []string{"tcp", "tls", "https", "http"} {
		if seen[s] {
			return s
		}
	}
	if len(u.Targets) > 0 {
		return "http"
	}
	return ""
}

// targetKind groups a target scheme by how drawbridge speaks to it:
// http:// sits beside https:// (both are HTTP targets).
func targetKind(scheme string) string {
	if scheme == "http" {
		return "https"
	}
	return scheme
}

// hasHTTPTarget reports whether any of u's targets is plaintext http://.
func (u *Upstream) hasHTTPTarget() bool {
	for _, t := range u.Targets {
		if strings.HasPrefix(t, "http://") {
			return true
		}
	}
	return false
}

// checkTargetKinds refuses an upstream whose targets are of more than one
// kind: tcp:// (raw TCP, for passthrough), tls:// (TLS to a terminate
// listener's targets) or https:// (HTTP, with http:// beside it under
// allow_insecure). One upstream is used one way; a mix would validate
// for the first kind and fail at serve for the others.
func (v *validator) checkTargetKinds(u *Upstream, obj string) {
	kinds := map[string]bool{}
	for _, t := range u.Targets {
		if s, _, ok := strings.Cut(t, "://"); ok && slices.Contains([]string{"tcp", "tls", "https", "http"}, s) {
			kinds[targetKind(s)] = true
		}
	}
	if len(kinds) > 1 {
		var names []string
		for _, k := range []string{"tcp", "tls", "https"} {
			if kinds[k] {
				names = append(names, k+"://")
			}
		}
		v.add(v.line(&u.Targets, u.Line), "%s: targets mix %s; an upstream's targets are all tcp:// (passthrough), all tls:// (terminate) or https:// (HTTP routes and terminate; http:// beside them needs allow_insecure): make one upstream per kind", obj, strings.Join(names, " and "))
	}
}

// tcpUpstream checks settings of an upstream of tcp:// targets, which
// drawbridge never speaks TLS to except in a tls health check.
func (v *validator) tcpUpstream(u *Upstream, obj string) {
	t := &u.TLS
	hasTrust := t.CA != "" || len(t.Pins) > 0 || t.SystemRoots
	tlsCheck := u.Health != nil && u.Health.Type == HealthTLS
	if v.set(t) && !tlsCheck {
		v.add(v.line(t, u.Line), "%s: tls settings do not apply to tcp:// targets, whose TLS passes through untouched; they are only used by health: {type: tls}. Remove tls, or use tls:// targets with a terminate listener", obj)
	}
	if tlsCheck && !hasTrust && !t.InsecureSkipVerify && !v.bad[&t.CA] && !v.bad[&t.Pins] {
		v.add(u.Health.Line, "%s: health: {type: tls} verifies the target's certificate, so the upstream needs tls.ca, tls.pins or tls.system_roots (run \"drawbridge pin https://%s\" to get a pin)", obj, strings.TrimPrefix(u.Targets[0], "tcp://"))
	}
	if u.HTTP2 != nil && v.set(&u.HTTP2) {
		v.add(v.line(&u.HTTP2, u.Line), "%s: http2 does not apply to tcp:// targets: bytes are copied, not HTTP", obj)
	}
	if v.set(&u.MaxIdleConns) {
		v.add(v.line(&u.MaxIdleConns, u.Line), "%s: max_idle_conns does not apply to tcp:// targets: each client connection gets its own", obj)
	}
}

// healthCheck defaults and checks u's active health check type and path.
func (v *validator) healthCheck(u *Upstream, h *HealthCheck, obj string) {
	scheme := u.Scheme()
	if h.Type == "" {
		switch scheme {
		case "tcp":
			h.Type = HealthTCP
		case "tls":
			h.Type = HealthTLS
		default:
			h.Type = HealthHTTP
		}
	}
	switch h.Type {
	case HealthHTTP:
		switch {
		case scheme == "tcp" || scheme == "tls":
			v.add(v.line(&h.Type, h.Line), "%s: health type http needs https:// targets; for %s:// targets use type tcp (connect) or tls (verified handshake)", obj, scheme)
		case h.Path == "":
			if !v.bad[&h.Path] {
				v.add(h.Line, "%s: health.path is required, e.g. path: /healthz", obj)
			}
		case !strings.HasPrefix(h.Path, "/"):
			v.add(v.line(&h.Path, h.Line), "%s: health.path %q must start with \"/\"", obj, h.Path)
		}
	case HealthTCP, HealthTLS:
		if h.Path != "" {
			v.add(v.line(&h.Path, h.Line), "%s: health.path is only for type http; a %s check sends no request", obj, h.Type)
		}
	default:
		v.add(v.line(&h.Type, h.Line), "%s: health.type must be http, tcp or tls, got %q", obj, h.Type)
	}
}

// tcpListener checks a listener of type tcp: its TLS mode, the keys that
// only HTTP listeners have, and its SNI routes' names. Whether each
// route's upstream fits the mode is checked by l4, once upstreams are.
func (v *validator) tcpListener(l *Listener, obj string) {
	for _, f := range []struct {
		p   any
		key string
	}{
		{&l.ReadHeaderTimeout, "read_header_timeout"},
		{&l.MaxHeaderBytes, "max_header_bytes"},
		{&l.MaxBodyBytes, "max_body_bytes"},
	} {
		if v.set(f.p) {
			v.add(v.line(f.p, l.Line), "%s: %s is for http listeners; a tcp listener copies bytes and reads no HTTP request", obj, f.key)
		}
	}
	v.duration(&l.IdleTimeout, obj, "idle_timeout", DefaultTCPIdleTimeout, l.Line)
	switch {
	case l.MaxConnections < 0:
		v.add(v.line(&l.MaxConnections, l.Line), "%s: max_connections must be at least 1, got %d (it defaults to %d)", obj, l.MaxConnections, DefaultTCPMaxConnections)
	case l.MaxConnections == 0 && v.set(&l.MaxConnections):
		v.add(v.line(&l.MaxConnections, l.Line), "%s: max_connections must be at least 1, got 0; leave it out for the default, %d", obj, DefaultTCPMaxConnections)
	case l.MaxConnections == 0:
		l.MaxConnections = DefaultTCPMaxConnections
	}
	if l.HTTPAddr != "" {
		v.add(v.line(&l.HTTPAddr, l.Line), "%s: http_addr is for http listeners (ACME HTTP-01 and redirects to https); a tcp listener has none", obj)
	}

	t := &l.TLS
	tlsLine := v.line(t, l.Line)
	if t.ACME != nil {
		v.add(v.line(&t.ACME, tlsLine), "%s: tls.acme is not supported on tcp listeners; get ACME certificates on an http listener, or give this one tls.cert and tls.key with mode terminate", obj)
	}
	switch t.Mode {
	case ModePassthrough:
		for _, f := range []struct {
			val string
			p   any
			key string
		}{
			{t.Cert, &t.Cert, "cert"}, {t.Key, &t.Key, "key"}, {t.MinVersion, &t.MinVersion, "min_version"},
			{t.ClientCA, &t.ClientCA, "client_ca"}, {t.ClientAuth, &t.ClientAuth, "client_auth"}, {t.Revoked, &t.Revoked, "revoked"},
		} {
			if f.val != "" {
				v.add(v.line(f.p, tlsLine), "%s: tls.%s does not apply to mode passthrough: the client's TLS session goes to the target, which serves its own certificate; use mode terminate to serve one here", obj, f.key)
			}
		}
	case ModeTerminate:
		if t.Cert == "" && !v.bad[&t.Cert] {
			v.add(tlsLine, "%s: tls.cert is required with mode terminate: the PEM file with the certificate chain, leaf first", obj)
		}
		if t.Key == "" && !v.bad[&t.Key] {
			v.add(tlsLine, "%s: tls.key is required with mode terminate: the PEM file with the certificate's private key", obj)
		}
		v.file(&t.Cert, obj, "tls.cert", tlsLine)
		v.file(&t.Key, obj, "tls.key", tlsLine)
		v.tlsVersion(&t.MinVersion, obj, "tls.min_version", DefaultListenerMinVersion, tlsLine)
		for _, f := range []struct {
			val string
			p   any
			key string
		}{{t.ClientCA, &t.ClientCA, "client_ca"}, {t.ClientAuth, &t.ClientAuth, "client_auth"}, {t.Revoked, &t.Revoked, "revoked"}} {
			if f.val != "" {
				v.add(v.line(f.p, tlsLine), "%s: tls.%s is not supported on tcp listeners; client certificates are checked by http listeners", obj, f.key)
			}
		}
	case "":
		if !v.bad[t] && !v.bad[&t.Mode] {
			v.add(tlsLine, "%s: tls.mode is required for a tcp listener: passthrough (the target's own certificate is served) or terminate (with tls.cert and tls.key)", obj)
		}
	default:
		v.add(v.line(&t.Mode, tlsLine), "%s: tls.mode must be passthrough or terminate, got %q", obj, t.Mode)
	}

	if len(l.SNI) == 0 {
		if !v.bad[&l.SNI] {
			v.add(v.line(&l.SNI, l.Line), "%s: a tcp listener needs sni routes, e.g. sni: {api.example.com: onprem, \"*\": default-pool}", obj)
		}
		return
	}
	seen := map[string]int{}
	for i := range l.SNI {
		r := &l.SNI[i]
		name := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(r.Name)), ".")
		if msg := sniNameProblem(name); msg != "" {
			v.add(r.Line, "%s: sni %q: %s", obj, r.Name, msg)
		}
		if first, ok := seen[name]; ok {
			v.add(r.Line, "%s: sni %q is already routed at line %d", obj, r.Name, first)
		}
		seen[name] = r.Line
		r.Name = name
	}
}

// httpListenerL4Keys refuses the tcp listener keys on an http listener.
func (v *validator) httpListenerL4Keys(l *Listener, obj string) {
	if len(l.SNI) > 0 || v.set(&l.SNI) {
		v.add(v.line(&l.SNI, l.Line), "%s: sni routes are for type: tcp listeners; an http listener routes by host and path (routes:)", obj)
	}
	if l.TLS.Mode != "" {
		v.add(v.line(&l.TLS.Mode, l.Line), "%s: tls.mode is for type: tcp listeners; an http listener always terminates TLS", obj)
	}
	if v.set(&l.MaxConnections) {
		v.add(v.line(&l.MaxConnections, l.Line), "%s: max_connections is for type: tcp listeners; an http listener's connections are bounded by its timeouts", obj)
	}
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$`)

// sniNameProblem says what is wrong with an SNI route name, or "".
func sniNameProblem(name string) string {
	if name == SNIDefault {
		return ""
	}
	if net.ParseIP(name) != nil {
		return "an IP address is never sent as SNI (RFC 6066); clients that connect by IP send none and take the \"*\" route"
	}
	rest := name
	if r, ok := strings.CutPrefix(name, "*."); ok {
		rest = r
	}
	if rest == "" || len(name) > 253 {
		return "want a host name such as api.example.com, a one-label wildcard such as *.example.com, or \"*\""
	}
	for _, label := range strings.Split(rest, ".") {
		if !dnsLabel.MatchString(label) {
			return "want a host name such as api.example.com, a one-label wildcard such as *.example.com (only as the whole first label), or \"*\""
		}
	}
	return ""
}

// l4 checks what ties tcp listeners, http routes and upstreams together:
// each SNI route's upstream exists and has targets its listener's mode can
// use, and http routes do not use upstreams meant for tcp listeners.
func (v *validator) l4() {
	c := v.cfg
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Type != ListenerTCP {
			continue
		}
		obj := listenerName(l, i)
		for _, r := range l.SNI {
			u := c.Upstreams[r.Upstream]
			if u == nil {
				defined := "none are defined"
				if len(c.Upstreams) > 0 {
					defined = "defined: " + strings.Join(sortedKeys(c.Upstreams), ", ")
				}
				v.add(r.Line, "%s: sni %q: upstream %q is not defined (%s)", obj, r.Name, r.Upstream, defined)
				continue
			}
			switch scheme := u.Scheme(); {
			case scheme == "":
			case l.TLS.Mode == ModePassthrough && scheme != "tcp":
				v.add(r.Line, "%s: sni %q: upstream %q has %s:// targets, but mode passthrough forwards raw TCP and needs tcp://HOST:PORT targets", obj, r.Name, r.Upstream, scheme)
			case l.TLS.Mode == ModeTerminate && scheme != "https" && scheme != "tls":
				v.add(r.Line, "%s: sni %q: upstream %q has %s:// targets, but mode terminate re-encrypts to verified TLS and needs tls:// or https:// targets", obj, r.Name, r.Upstream, scheme)
			case l.TLS.Mode == ModeTerminate && u.hasHTTPTarget():
				v.add(r.Line, "%s: sni %q: upstream %q has http:// targets beside https:// ones, but mode terminate re-encrypts to verified TLS to every target: give the listener an upstream without http:// targets", obj, r.Name, r.Upstream)
			}
		}
	}
	for i, r := range c.Routes {
		if r == nil {
			continue
		}
		u := c.Upstreams[r.Upstream]
		if u == nil {
			continue
		}
		obj := routeName(r, i)
		switch scheme := u.Scheme(); {
		case scheme == "tcp" || scheme == "tls":
			v.add(v.line(&r.Upstream, r.Line), "%s: upstream %q has %s:// targets, which only tcp listeners use; give the route an upstream of https:// targets", obj, r.Upstream, scheme)
		case u.ProxyProtocol != "":
			v.add(v.line(&u.ProxyProtocol, u.Line), "upstream %q: proxy_protocol is for the upstreams of tcp listeners, but route %q uses it for HTTP", r.Upstream, r.Name)
		}
	}
	for _, name := range sortedKeys(c.Upstreams) {
		u := c.Upstreams[name]
		if u == nil {
			continue
		}
		switch u.ProxyProtocol {
		case "", "v1", "v2":
		default:
			v.add(v.line(&u.ProxyProtocol, u.Line), "upstream %q: proxy_protocol must be v1 or v2, got %q", name, u.ProxyProtocol)
		}
	}
}

// l4Warnings warns of each SNI route whose upstream HTTP routes also use
// behind api_key_required, ip rules or a required client certificate: a
// tcp listener copies bytes to the same targets and checks none of them,
// so the config alone opens a way around them. It may be meant (a
// partner network trusted at L4), hence a warning, not an error.
func (c *Config) l4Warnings() []string {
	guarded := map[string][]string{} // upstream → guarded route names
	for i, r := range c.Routes {
		if r == nil || !(r.APIKeyRequired || r.IP != nil || r.ClientCert == "required") {
			continue
		}
		name := r.Name
		if name == "" {
			name = fmt.Sprintf("#%d", i+1)
		}
		guarded[r.Upstream] = append(guarded[r.Upstream], strconv.Quote(name))
	}
	var out []string
	for _, l := range c.Listeners {
		if l.Type != ListenerTCP {
			continue
		}
		for _, r := range l.SNI {
			routes := guarded[r.Upstream]
			if len(routes) == 0 {
				continue
			}
			list := strings.Join(routes[:min(len(routes), 3)], ", ")
			if len(routes) > 3 {
				list += fmt.Sprintf(" and %d more", len(routes)-3)
			}
			out = append(out, Problem{File: c.File, Line: r.Line, Msg: fmt.Sprintf(
				"listener %q: sni %q: upstream %q also serves route(s) %s, which require an API key, IP rules or a client certificate; this tcp listener reaches the same targets without any of those checks. Give the listener its own upstream, or move the checks to the backend",
				l.Name, r.Name, r.Upstream, list)}.String())
		}
	}
	return out
}
