package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/certid"
)

// validator applies defaults, resolves paths and checks a decoded Config,
// reporting every problem with the line that caused it.
type validator struct {
	*report
	lines map[any]int
	bad   map[any]bool
	top   map[string]int
	dir   string
	cfg   *Config

	// gatewayResponseOrigin says where each gateway response was set.
	gatewayResponseOrigin map[string]string
}

// dirOf is the absolute folder of the config file, against which relative
// paths in it are resolved: the gateway may later run from another folder.
func dirOf(path string) string {
	dir := filepath.Dir(path)
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// line is the line that set the field p points to, or fallback.
func (v *validator) line(p any, fallback int) int {
	if l, ok := v.lines[p]; ok {
		return l
	}
	return fallback
}

// set reports whether the file gave the field p points to a value.
func (v *validator) set(p any) bool {
	_, ok := v.lines[p]
	return ok
}

func (v *validator) topLine(key string) int {
	if l, ok := v.top[key]; ok {
		return l
	}
	return 1
}

func (v *validator) run() {
	c := v.cfg
	v.listeners()
	v.admin()
	for _, name := range sortedKeys(c.Upstreams) {
		if u := c.Upstreams[name]; u != nil {
			v.upstream(u)
		}
	}
	v.partners()
	v.apis() // adds the definitions' routes, validated below with the others
	v.gatewayResponses()
	v.routes()
	v.l4()
	v.store()
	v.acmeListeners() // after store: ACME storage defaults beside the bolt file
	v.throttle(c.Throttle, "gateway", "throttle", v.topLine("throttle"))
	for _, name := range sortedKeys(c.Plans) {
		if p := c.Plans[name]; p != nil {
			v.plan(p)
		}
	}
	v.log()
	switch {
	case !v.set(&c.ShutdownGrace):
		c.ShutdownGrace = Duration(DefaultShutdownGrace)
	case c.ShutdownGrace < 0:
		v.add(v.line(&c.ShutdownGrace, 1), "shutdown_grace must not be negative, got %s; 0 closes connections at once", c.ShutdownGrace)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// duration applies def to an unset duration and checks a set one is > 0.
func (v *validator) duration(p *Duration, obj, key string, def time.Duration, fallback int) {
	switch {
	case !v.set(p):
		*p = Duration(def)
	case v.bad[p]:
	case *p <= 0:
		v.add(v.line(p, fallback), "%s: %s must be greater than 0, got %s (it defaults to %s)", obj, key, *p, def)
	}
}

// count applies def to an unset count and checks a set one is >= least.
func (v *validator) count(p *int, obj, key string, def, least int, fallback int) {
	switch {
	case !v.set(p):
		*p = def
	case v.bad[p]:
	case *p < least:
		v.add(v.line(p, fallback), "%s: %s must be at least %d, got %d", obj, key, least, *p)
	}
}

// file resolves *p against the config's folder and checks it is a readable
// file. Its contents are left to the package that uses it.
func (v *validator) file(p *string, obj, key string, fallback int) {
	if *p == "" {
		return
	}
	written := *p
	if !filepath.IsAbs(written) {
		*p = filepath.Join(v.dir, written)
	}
	where := strconv.Quote(written)
	if *p != written {
		where += " (" + *p + ")"
	}
	line := v.line(p, fallback)
	f, err := os.Open(*p)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		v.add(line, "%s: %s: cannot read %s: %v", obj, key, where, err)
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		v.add(line, "%s: %s: %s is a folder; name the file in it", obj, key, where)
	}
}

func (v *validator) tlsVersion(p *string, obj, key string, def string, fallback int) {
	switch *p {
	case "":
		*p = def
	case "1.2", "1.3":
	default:
		v.add(v.line(p, fallback), "%s: %s must be \"1.2\" or \"1.3\", got %q", obj, key, *p)
	}
}

// upstreamTLSVersion is tlsVersion for the client side toward backends,
// which may also go down to TLS 1.0 for old load balancers.
func (v *validator) upstreamTLSVersion(p *string, obj string, fallback int) {
	switch *p {
	case "":
		*p = DefaultUpstreamMinVersion
	case "1.0", "1.1", "1.2", "1.3":
	default:
		v.add(v.line(p, fallback), "%s: tls.min_version must be \"1.2\" or \"1.3\" (or \"1.0\" or \"1.1\" for old backends), got %q", obj, *p)
	}
}

// hostPort explains what is wrong with a host:port, or returns "".
func hostPort(s string, needHost, allowZeroPort bool) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not host:port (such as \"0.0.0.0:8443\" or \"[::1]:8443\")", s)
	}
	if needHost && host == "" {
		return fmt.Sprintf("%q has no host; write host:port", s)
	}
	n, err := strconv.Atoi(port)
	least := 1
	if allowZeroPort {
		least = 0
	}
	if err != nil || n < least || n > 65535 {
		return fmt.Sprintf("%q: port must be a number from %d to 65535", s, least)
	}
	return ""
}

// routeName names the i-th route (0-based) in messages.
func routeName(r *Route, i int) string {
	if r.Name != "" {
		return fmt.Sprintf("route %q", r.Name)
	}
	return fmt.Sprintf("route #%d", i+1)
}

func listenerName(l *Listener, i int) string {
	if l.Name != "" {
		return fmt.Sprintf("listener %q", l.Name)
	}
	return fmt.Sprintf("listener #%d", i+1)
}

func (v *validator) listeners() {
	c := v.cfg
	if len(c.Listeners) == 0 {
		if !v.bad[&c.Listeners] {
			v.add(v.topLine("listeners"), "no listeners defined; add one under \"listeners:\", e.g. - {addr: 0.0.0.0:8443, tls: {cert: server.crt, key: server.key}}")
		}
		return
	}
	names := map[string]int{}
	addrs := map[string]int{}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		// Several listeners on port 0 (any free port, as in tests) are
		// distinct even though their default names are equal.
		anyPort := l.Name == "" && strings.HasSuffix(l.Addr, ":0")
		if l.Name == "" {
			l.Name = l.Addr
		}
		obj := listenerName(l, i)
		switch {
		case l.Addr == "":
			if !v.bad[&l.Addr] {
				v.add(l.Line, "%s: addr is required, e.g. addr: 0.0.0.0:8443", obj)
			}
		default:
			if msg := hostPort(l.Addr, false, true); msg != "" {
				v.add(v.line(&l.Addr, l.Line), "%s: addr %s", obj, msg)
			} else if !strings.HasSuffix(l.Addr, ":0") {
				if first, ok := addrs[l.Addr]; ok {
					v.add(v.line(&l.Addr, l.Line), "%s: addr %q is already used by the listener at line %d", obj, l.Addr, first)
				} else {
					addrs[l.Addr] = l.Line
				}
			}
		}
		if l.Name != "" && !anyPort {
			if first, ok := names[l.Name]; ok {
				v.add(v.line(&l.Name, l.Line), "%s: name %q is already used by the listener at line %d; names must be unique", obj, l.Name, first)
			} else {
				names[l.Name] = l.Line
			}
		}

		switch l.Type {
		case "", ListenerHTTP:
			l.Type = ListenerHTTP
		case ListenerTCP:
			v.tcpListener(l, obj)
			continue
		default:
			v.add(v.line(&l.Type, l.Line), "%s: type must be http or tcp, got %q", obj, l.Type)
		}
		v.httpListenerL4Keys(l, obj)

		t := &l.TLS
		tlsLine := v.line(t, l.Line)
		switch {
		case v.bad[t]:
		case !v.set(t):
			v.add(l.Line, "%s: tls is required: drawbridge only serves HTTPS; add tls: {cert: FILE, key: FILE} with the PEM certificate chain and private key", obj)
		default:
			if t.Cert == "" && !v.bad[&t.Cert] && (t.ACME == nil || t.Key != "") {
				v.add(tlsLine, "%s: tls.cert is required: the PEM file with the certificate chain, leaf first", obj)
			}
			if t.Key == "" && !v.bad[&t.Key] && (t.ACME == nil || t.Cert != "") {
				v.add(tlsLine, "%s: tls.key is required: the PEM file with the certificate's private key", obj)
			}
		}
		v.file(&t.Cert, obj, "tls.cert", tlsLine)
		v.file(&t.Key, obj, "tls.key", tlsLine)
		v.tlsVersion(&t.MinVersion, obj, "tls.min_version", DefaultListenerMinVersion, tlsLine)
		v.clientAuth(t, obj, tlsLine)

		v.duration(&l.ReadHeaderTimeout, obj, "read_header_timeout", DefaultReadHeaderTimeout, l.Line)
		v.duration(&l.IdleTimeout, obj, "idle_timeout", DefaultIdleTimeout, l.Line)
		v.count(&l.MaxHeaderBytes, obj, "max_header_bytes", DefaultMaxHeaderBytes, 1, l.Line)
		switch {
		case !v.set(&l.MaxBodyBytes):
			l.MaxBodyBytes = DefaultMaxBodyBytes
		case v.bad[&l.MaxBodyBytes]:
		case l.MaxBodyBytes < 1:
			v.add(v.line(&l.MaxBodyBytes, l.Line), "%s: max_body_bytes must be at least 1, got %d", obj, l.MaxBodyBytes)
		}
	}
}

// upstreamTLS checks the client side of a verified TLS connection: pins,
// client certificate, files, server name, version. Upstreams and the
// Redis store share it; only upstreams (legacy) may use the settings for
// old backends.
func (v *validator) upstreamTLS(t *UpstreamTLS, obj string, tlsLine int, legacy bool) {
	for i, pin := range t.Pins {
		if !validPin(pin) {
			v.add(v.line(&t.Pins[i], v.line(&t.Pins, tlsLine)), "%s: tls.pins[%d]: %q is not a pin; want \"sha256/\" and the standard base64 of the SHA-256 of the certificate's public key (44 characters), as printed by \"drawbridge pin\"", obj, i, pin)
		}
	}
	if (t.ClientCert == "") != (t.ClientKey == "") {
		missing, have := "tls.client_key", "tls.client_cert"
		if t.ClientCert == "" {
			missing, have = have, missing
		}
		v.add(tlsLine, "%s: %s is set but %s is not; client certificates need both", obj, have, missing)
	}
	v.file(&t.CA, obj, "tls.ca", tlsLine)
	v.file(&t.ClientCert, obj, "tls.client_cert", tlsLine)
	v.file(&t.ClientKey, obj, "tls.client_key", tlsLine)
	if t.ServerName != "" && strings.ContainsAny(t.ServerName, ":/ ") && net.ParseIP(t.ServerName) == nil {
		v.add(v.line(&t.ServerName, tlsLine), "%s: tls.server_name %q must be a bare host name, without scheme, port or path", obj, t.ServerName)
	}
	if !legacy {
		v.tlsVersion(&t.MinVersion, obj, "tls.min_version", DefaultUpstreamMinVersion, tlsLine)
		for _, f := range []struct {
			set bool
			p   any
			key string
		}{
			{t.LegacyCiphers, &t.LegacyCiphers, "legacy_ciphers"},
			{t.LegacyCommonName, &t.LegacyCommonName, "legacy_common_name"},
			{t.AcceptExpired, &t.AcceptExpired, "accept_expired"},
		} {
			if f.set {
				v.add(v.line(f.p, tlsLine), "%s: tls.%s is only for upstreams", obj, f.key)
			}
		}
		return
	}
	v.upstreamTLSVersion(&t.MinVersion, obj, tlsLine)
	if t.AcceptExpired && len(t.Pins) == 0 && !v.bad[&t.Pins] {
		v.add(v.line(&t.AcceptExpired, tlsLine), "%s: tls.accept_expired: true needs tls.pins: only a pinned key can identify a backend whose certificate is expired "+
			"(run \"drawbridge pin https://HOST:PORT\" to get its pin); it never applies to ca or system_roots trust", obj)
	}
	if t.LegacyCommonName && t.CA == "" && !t.SystemRoots && !v.bad[&t.CA] && !v.bad[&t.SystemRoots] {
		v.add(v.line(&t.LegacyCommonName, tlsLine), "%s: tls.legacy_common_name: true only applies to chain verification, so it needs tls.ca (or system_roots); "+
			"a pinned certificate is accepted without a name check, so with pins only, remove it", obj)
	}
}

func (v *validator) admin() {
	a := &v.cfg.Admin
	switch a.Addr {
	case "":
		a.Addr = DefaultAdminAddr
	case "off":
	default:
		if msg := hostPort(a.Addr, false, true); msg != "" {
			v.add(v.line(&a.Addr, a.Line), "admin: addr %s, or \"off\" to disable the admin listener", msg)
		}
	}
	if a.TokenFile != "" {
		if a.Token != "" {
			v.add(v.line(&a.TokenFile, a.Line), "admin: set token or token_file, not both")
		}
		v.file(&a.TokenFile, "admin", "token_file", a.Line)
		if b, err := os.ReadFile(a.TokenFile); err == nil {
			a.Token = strings.TrimSpace(string(b))
			if a.Token == "" {
				v.add(v.line(&a.TokenFile, a.Line), "admin: token_file %q is empty", a.TokenFile)
			}
		}
	}
	if a.Token != "" && len(a.Token) < minAdminToken {
		v.add(v.line(&a.Token, a.Line), "admin: token is %d characters; use at least %d random ones (e.g. openssl rand -hex 32)", len(a.Token), minAdminToken)
	}
	if a.Addr != "off" && !loopback(a.Addr) {
		if a.Token == "" {
			v.add(v.line(&a.Addr, a.Line), "admin: addr %q is not a loopback address, so the admin API needs a token: set token: ${DRAWBRIDGE_ADMIN_TOKEN} or token_file: FILE", a.Addr)
		}
		if a.TLS == nil {
			v.add(v.line(&a.Addr, a.Line), "admin: addr %q is not a loopback address, so the admin API needs tls: {cert: FILE, key: FILE}: the token and new key values must not cross the network in clear", a.Addr)
		}
	}
	if t := a.TLS; t != nil {
		line := v.line(t, a.Line)
		if t.Cert == "" || t.Key == "" {
			v.add(line, "admin: tls needs cert and key (PEM files)")
		}
		v.file(&t.Cert, "admin", "tls.cert", line)
		v.file(&t.Key, "admin", "tls.key", line)
		v.tlsVersion(&t.MinVersion, "admin", "tls.min_version", DefaultListenerMinVersion, line)
		if t.ClientCA != "" || t.ClientAuth != "" || t.Revoked != "" {
			v.add(line, "admin: tls.client_ca, client_auth and revoked are for partner listeners; the admin API uses a token")
		}
		if t.ACME != nil {
			v.add(v.line(&t.ACME, line), "admin: tls.acme is for partner listeners; give the admin API a cert and key file")
		}
	}
}

// allLoopback reports whether every addr is on this machine.
func allLoopback(addrs []string) bool {
	for _, a := range addrs {
		if !loopback(a) {
			return false
		}
	}
	return true
}

// minAdminToken is the shortest admin token accepted: anything shorter
// can be guessed by anyone who reaches the admin port.
const minAdminToken = 16

// loopback reports whether addr's host is a loopback address or
// "localhost"; an empty host means every interface, which is not.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// clientAuth checks a listener's mutual-TLS settings.
func (v *validator) clientAuth(t *ListenerTLS, obj string, fallback int) {
	switch t.ClientAuth {
	case "", "optional", "require":
	default:
		v.add(v.line(&t.ClientAuth, fallback), "%s: tls.client_auth must be optional or require, got %q", obj, t.ClientAuth)
	}
	if t.ClientCA == "" {
		if t.ClientAuth != "" || t.Revoked != "" {
			v.add(v.line(&t.ClientAuth, fallback), "%s: tls.client_auth and tls.revoked need tls.client_ca: the PEM file of the CAs that sign partners' client certificates", obj)
		}
		return
	}
	if t.ClientAuth == "" {
		t.ClientAuth = "optional"
	}
	v.file(&t.ClientCA, obj, "tls.client_ca", fallback)
	if t.Revoked != "" {
		v.file(&t.Revoked, obj, "tls.revoked", fallback)
	}
}

// throttle checks a token bucket: rate requests/s > 0, burst >= 0.
func (v *validator) throttle(t *Throttle, obj, key string, fallback int) {
	if t == nil {
		return
	}
	line := v.line(t, fallback)
	if (t.Rate <= 0 || math.IsInf(t.Rate, 0) || math.IsNaN(t.Rate)) && !v.bad[&t.Rate] {
		v.add(v.line(&t.Rate, line), "%s: %s.rate must be a number of requests per second greater than 0, got %v", obj, key, t.Rate)
	}
	if t.Burst < 0 {
		v.add(v.line(&t.Burst, line), "%s: %s.burst must not be negative, got %d", obj, key, t.Burst)
	}
}

// ipRules checks CIDRs and single addresses.
func (v *validator) ipRules(r *IPRules, obj string, fallback int) {
	if r == nil {
		return
	}
	line := v.line(r, fallback)
	for _, list := range []struct {
		key string
		v   []string
	}{{"allow", r.Allow}, {"deny", r.Deny}} {
		for i, entry := range list.v {
			if _, err := netip.ParsePrefix(entry); err == nil {
				continue
			}
			if _, err := netip.ParseAddr(entry); err == nil {
				continue
			}
			v.add(v.line(&list.v[i], line), "%s: ip.%s: %q is not an IP address or CIDR (e.g. 203.0.113.0/24 or 2001:db8::/32)", obj, list.key, entry)
		}
	}
}

// cors checks a route's CORS policy.
func (v *validator) cors(c *CORS, obj string, fallback int) {
	if c == nil {
		return
	}
	line := v.line(c, fallback)
	if len(c.AllowOrigins) == 0 {
		v.add(line, "%s: cors.allow_origins is required: the exact origins (https://app.example.com) or \"*\"", obj)
	}
	if c.AllowCredentials && slices.Contains(c.AllowOrigins, "*") {
		v.add(v.line(&c.AllowCredentials, line), "%s: cors: allow_credentials cannot be combined with allow_origins \"*\" (browsers refuse it); list the origins", obj)
	}
	for i, m := range c.AllowMethods {
		c.AllowMethods[i] = strings.ToUpper(m)
	}
	if v.set(&c.MaxAge) && c.MaxAge < 0 {
		v.add(v.line(&c.MaxAge, line), "%s: cors.max_age must not be negative", obj)
	}
}

func (v *validator) partners() {
	for _, name := range sortedKeys(v.cfg.Partners) {
		p := v.cfg.Partners[name]
		if p == nil {
			continue
		}
		p.Name = name
		obj := fmt.Sprintf("partner %q", name)
		v.ipRules(p.IP, obj, p.Line)
		if c := p.ClientCert; c != nil {
			for i, fp := range c.Fingerprints {
				norm, err := certid.Parse(fp)
				if err != nil {
					v.add(v.line(&c.Fingerprints[i], p.Line), "%s: client_cert.fingerprints: %q must be sha256: and the 64 hex digits of the SHA-256 of the DER certificate (openssl x509 -noout -fingerprint -sha256 prints it with colons, which are fine)", obj, fp)
					continue
				}
				c.Fingerprints[i] = norm
			}
		}
	}
}

// pinRE is "sha256/" and the standard base64 of 32 bytes (44 characters).
var pinRE = regexp.MustCompile(`^sha256/[A-Za-z0-9+/]{43}=$`)

func validPin(pin string) bool {
	if !pinRE.MatchString(pin) {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(pin, "sha256/"))
	return err == nil && len(b) == 32
}

// normalizeTarget checks a target URL and returns it as scheme://host:port,
// or a reason it is refused.
func normalizeTarget(raw string, allowInsecure bool) (norm, scheme, msg string) {
	q := strconv.Quote(raw)
	if !strings.Contains(raw, "://") {
		return "", "", fmt.Sprintf("target %s is not a URL; write it as \"https://%s\"", q, raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", "", fmt.Sprintf("target %s is not a valid URL: %v", q, err)
	}
	switch u.Scheme {
	case "https", "tcp", "tls":
	case "http":
		if !allowInsecure {
			return "", "", fmt.Sprintf("target %s: plaintext http:// is refused; use https:// or set allow_insecure: true (insecure)", q)
		}
	default:
		return "", "", fmt.Sprintf("target %s: scheme must be https:// (or, for tcp listeners, tcp:// or tls://), got %q", q, u.Scheme+"://")
	}
	switch {
	case u.User != nil:
		return "", "", fmt.Sprintf("target %s: user:password@ is not allowed; credentials in URLs end up in logs", q)
	case u.Opaque != "" || (u.Path != "" && u.Path != "/"):
		return "", "", fmt.Sprintf("target %s: a path is not allowed; targets are scheme://host:port, and a route's upstream_path rewrites paths", q)
	case u.RawQuery != "" || u.ForceQuery:
		return "", "", fmt.Sprintf("target %s: a query string is not allowed; targets are scheme://host:port", q)
	case u.Fragment != "":
		return "", "", fmt.Sprintf("target %s: a #fragment is not allowed; targets are scheme://host:port", q)
	case u.Hostname() == "":
		return "", "", fmt.Sprintf("target %s has no host", q)
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Sprintf("target %s: port must be a number from 1 to 65535", q)
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port), u.Scheme, ""
}

func (v *validator) upstream(u *Upstream) {
	obj := fmt.Sprintf("upstream %q", u.Name)
	t := &u.TLS
	tlsLine := v.line(t, u.Line)

	var firstHTTPS string
	switch {
	case v.bad[&u.Targets]:
	case len(u.Targets) == 0:
		v.add(v.line(&u.Targets, u.Line), "%s: no targets; add targets: [https://HOST:PORT]", obj)
	}
	seen := map[string]int{}
	for i := range u.Targets {
		line := v.line(&u.Targets[i], v.line(&u.Targets, u.Line))
		if u.Targets[i] == "" {
			v.add(line, "%s: targets[%d] is empty; write https://HOST:PORT", obj, i)
			continue
		}
		norm, scheme, msg := normalizeTarget(u.Targets[i], u.AllowInsecure)
		if msg != "" {
			v.add(line, "%s: %s", obj, msg)
			continue
		}
		if first, ok := seen[norm]; ok {
			v.add(line, "%s: target %q is listed twice (also at line %d)", obj, norm, first)
		}
		seen[norm] = line
		u.Targets[i] = norm
		if (scheme == "https" || scheme == "tls") && firstHTTPS == "" {
			firstHTTPS = norm
		}
	}
	v.checkTargetKinds(u, obj)
	if u.Scheme() == "tcp" {
		v.tcpUpstream(u, obj)
	}

	if t.InsecureSkipVerify && !u.AllowInsecure {
		v.add(v.line(&t.InsecureSkipVerify, tlsLine), "%s: tls.insecure_skip_verify: true needs allow_insecure: true on the upstream as well (insecure: the backend is then not authenticated); prefer tls.ca or tls.pins", obj)
	}
	if firstHTTPS != "" && !t.InsecureSkipVerify && t.CA == "" && len(t.Pins) == 0 && !t.SystemRoots &&
		!v.bad[&t.CA] && !v.bad[&t.Pins] && !v.bad[&t.SystemRoots] {
		v.add(tlsLine, "%s: no way to verify the backend's certificate: set tls.ca to the PEM file of its CA (or of the self-signed certificate itself), "+
			"or tls.pins to its public-key pin (run \"drawbridge pin %s\" to get one), or tls.system_roots: true if its certificate is publicly trusted", obj, firstHTTPS)
	}
	v.upstreamTLS(t, obj, tlsLine, true)

	if u.HTTP2 == nil {
		on := DefaultHTTP2
		u.HTTP2 = &on
	}
	switch u.Balance {
	case "":
		u.Balance = DefaultBalance
	case "round_robin", "least_requests":
	default:
		v.add(v.line(&u.Balance, u.Line), "%s: balance must be round_robin or least_requests, got %q", obj, u.Balance)
	}
	if u.Resolver != "" {
		if msg := hostPort(u.Resolver, true, false); msg != "" {
			v.add(v.line(&u.Resolver, u.Line), "%s: resolver %s (the DNS server, e.g. \"10.0.0.2:53\")", obj, msg)
		}
	}
	v.duration(&u.DNSRefresh, obj, "dns_refresh", DefaultDNSRefresh, u.Line)
	v.duration(&u.DialTimeout, obj, "dial_timeout", DefaultDialTimeout, u.Line)
	v.count(&u.MaxIdleConns, obj, "max_idle_conns", DefaultMaxIdleConnsPerTarget, 1, u.Line)
	if u.MaxConns < 0 {
		v.add(v.line(&u.MaxConns, u.Line), "%s: max_conns must not be negative, got %d; 0 means no limit", obj, u.MaxConns)
	}

	if h := u.Health; h != nil {
		v.healthCheck(u, h, obj)
		v.duration(&h.Interval, obj, "health.interval", DefaultHealthInterval, h.Line)
		v.duration(&h.Timeout, obj, "health.timeout", DefaultHealthTimeout, h.Line)
		v.count(&h.HealthyThreshold, obj, "health.healthy_threshold", DefaultHealthyThreshold, 1, h.Line)
		v.count(&h.UnhealthyThreshold, obj, "health.unhealthy_threshold", DefaultUnhealthyThreshold, 1, h.Line)
	}

	p := &u.Passive
	switch {
	case !v.set(&p.MaxFails):
		p.MaxFails = DefaultPassiveMaxFails
	case v.bad[&p.MaxFails]:
	case p.MaxFails != -1 && p.MaxFails < 1:
		v.add(v.line(&p.MaxFails, p.Line), "%s: passive.max_fails must be at least 1, or -1 to disable passive ejection; got %d", obj, p.MaxFails)
	}
	v.duration(&p.FailWindow, obj, "passive.fail_window", DefaultPassiveFailWindow, p.Line)
	v.duration(&p.EjectFor, obj, "passive.eject_for", DefaultPassiveEjectFor, p.Line)
}

// template is a parsed route path.
type template struct {
	// shape is the path with parameter names dropped: two routes of the
	// same shape match the same requests.
	shape string
	// params are the parameter names in order; greedy is the name of the
	// final {name+}, if any.
	params []string
	greedy string
}

var paramName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// parseTemplate parses an API Gateway style path template, returning the
// reasons it is invalid.
func parseTemplate(path string) (template, []string) {
	var t template
	var errs []string
	if !strings.HasPrefix(path, "/") {
		return t, []string{fmt.Sprintf("path %q must start with \"/\"", path)}
	}
	if strings.ContainsAny(path, "?#") {
		return t, []string{fmt.Sprintf("path %q must not contain \"?\" or \"#\"; the query string is always passed through", path)}
	}
	if path == "/" {
		t.shape = "/"
		return t, nil
	}
	segs := strings.Split(path[1:], "/")
	shape := make([]string, len(segs))
	seen := map[string]bool{}
	for i, seg := range segs {
		switch {
		case seg == "" && i == len(segs)-1:
			errs = append(errs, fmt.Sprintf("path %q ends with \"/\"; remove the trailing slash", path))
		case seg == "":
			errs = append(errs, fmt.Sprintf("path %q has an empty segment (\"//\")", path))
		case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}"):
			name := seg[1 : len(seg)-1]
			greedy := strings.HasSuffix(name, "+")
			name = strings.TrimSuffix(name, "+")
			shape[i] = "{}"
			if greedy {
				shape[i] = "{+}"
			}
			switch {
			case !paramName.MatchString(name):
				errs = append(errs, fmt.Sprintf("path %q: parameter %q must be a name of letters, digits, _, . or -", path, seg))
				continue
			case greedy && i != len(segs)-1:
				errs = append(errs, fmt.Sprintf("path %q: greedy parameter %q must be the last segment", path, seg))
			case seen[name]:
				errs = append(errs, fmt.Sprintf("path %q: parameter {%s} appears twice; names must be unique", path, name))
			}
			seen[name] = true
			t.params = append(t.params, name)
			if greedy {
				t.greedy = name
			}
		case strings.ContainsAny(seg, "{}"):
			errs = append(errs, fmt.Sprintf("path %q: segment %q mixes text and a parameter; a {param} must be a whole segment", path, seg))
		default:
			shape[i] = seg
		}
	}
	t.shape = "/" + strings.Join(shape, "/")
	return t, errs
}

// checkUpstreamPath returns the reasons upstream path up is invalid for a
// route whose template is t.
func checkUpstreamPath(up string, t template) []string {
	if !strings.HasPrefix(up, "/") {
		return []string{fmt.Sprintf("upstream_path %q must start with \"/\"", up)}
	}
	var errs []string
	rest := up
	for {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			break
		}
		if rest[open] == '}' {
			return append(errs, fmt.Sprintf("upstream_path %q has \"}\" without \"{\"", up))
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return append(errs, fmt.Sprintf("upstream_path %q has \"{\" without \"}\"", up))
		}
		ref := rest[open+1 : open+end]
		name := strings.TrimSuffix(ref, "+")
		switch {
		case !slices.Contains(t.params, name):
			have := "it defines none"
			if len(t.params) > 0 {
				have = "it defines {" + strings.Join(t.params, "}, {") + "}"
			}
			errs = append(errs, fmt.Sprintf("upstream_path refers to {%s}, which the path does not define (%s)", ref, have))
		case ref != name && name != t.greedy:
			errs = append(errs, fmt.Sprintf("upstream_path refers to {%s}, but {%s} is not greedy; write {%s}", ref, name, name))
		}
		rest = rest[open+end+1:]
	}
	return errs
}

var validMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"}

func overlap(a, b []string) bool {
	// ANY may sit beside specific methods on one path, as in API Gateway:
	// the specific method wins. Only the same method twice clashes.
	for _, m := range a {
		if slices.Contains(b, m) {
			return true
		}
	}
	return false
}

func (v *validator) routes() {
	type seenRoute struct {
		line    int
		name    string
		host    string
		shape   string
		methods []string
	}
	var prev []seenRoute
	names := map[string]int{}
	for i, r := range v.cfg.Routes {
		if r == nil {
			continue
		}
		// Methods first: the default name is made of them.
		methodsOK := true
		if len(r.Methods) == 0 {
			r.Methods = []string{DefaultMethod}
		}
		for j, m := range r.Methods {
			up := strings.ToUpper(strings.TrimSpace(m))
			r.Methods[j] = up
			if !slices.Contains(validMethods, up) {
				methodsOK = false
			}
		}
		explicitName := r.Name != ""
		switch {
		case r.Name != "":
		case r.Path != "":
			r.Name = defaultRouteName(r.Methods, strings.ToLower(strings.TrimSpace(r.Host)), r.Path)
		}
		obj := routeName(r, i)
		if explicitName {
			if first, ok := names[r.Name]; ok {
				v.add(v.line(&r.Name, r.Line), "%s: name is already used by the route at line %d; names must be unique", obj, first)
			}
			names[r.Name] = r.Line
		}

		mline := v.line(&r.Methods, r.Line)
		if !methodsOK {
			for j, m := range r.Methods {
				if !slices.Contains(validMethods, m) {
					v.add(v.line(&r.Methods[j], mline), "%s: method %q is not supported; use %s", obj, m, strings.Join(validMethods, ", "))
				}
			}
		}
		for j, m := range r.Methods {
			if slices.Contains(r.Methods[:j], m) {
				v.add(v.line(&r.Methods[j], mline), "%s: method %s is listed twice", obj, m)
			}
		}
		if len(r.Methods) > 1 && slices.Contains(r.Methods, "ANY") {
			v.add(mline, "%s: methods: ANY already matches every method; list ANY alone", obj)
		}

		var tmpl template
		pathOK := false
		switch {
		case r.Path == "":
			if !v.bad[&r.Path] {
				v.add(r.Line, "%s: path is required, e.g. path: /orders/{id}", obj)
			}
		default:
			var errs []string
			tmpl, errs = parseTemplate(r.Path)
			for _, e := range errs {
				v.add(v.line(&r.Path, r.Line), "%s: %s", obj, e)
			}
			pathOK = len(errs) == 0
		}

		if r.Host != "" {
			host := strings.ToLower(strings.TrimSpace(r.Host))
			if strings.ContainsAny(host, ":/ ") || strings.Trim(host, ".") == "" {
				v.add(v.line(&r.Host, r.Line), "%s: host %q must be a bare host name, without scheme, port or path", obj, r.Host)
			}
			r.Host = host
		}

		switch {
		case r.Mock != nil:
			// A mock answers itself; apiRoute checks it has no upstream.
		case r.Upstream == "":
			if !v.bad[&r.Upstream] {
				v.add(r.Line, "%s: upstream is required: the name of an entry under upstreams:", obj)
			}
		case v.cfg.Upstreams[r.Upstream] == nil:
			defined := "none are defined"
			if len(v.cfg.Upstreams) > 0 {
				defined = "defined: " + strings.Join(sortedKeys(v.cfg.Upstreams), ", ")
			}
			v.add(v.line(&r.Upstream, r.Line), "%s: upstream %q is not defined (%s)", obj, r.Upstream, defined)
		}

		if r.UpstreamPath != "" && pathOK {
			for _, e := range checkUpstreamPath(r.UpstreamPath, tmpl) {
				v.add(v.line(&r.UpstreamPath, r.Line), "%s: %s", obj, e)
			}
		}
		v.duration(&r.Timeout, obj, "timeout", DefaultRouteTimeout, r.Line)
		v.throttle(r.Throttle, obj, "throttle", r.Line)
		v.ipRules(r.IP, obj, r.Line)
		v.cors(r.CORS, obj, r.Line)
		v.apiRoute(r, obj, tmpl, pathOK)
		switch r.ClientCert {
		case "":
		case "required":
			if !v.anyClientCA() {
				v.add(v.line(&r.ClientCert, r.Line), "%s: client_cert: required needs a listener with tls.client_ca, or no client certificate can ever be presented", obj)
			}
		default:
			v.add(v.line(&r.ClientCert, r.Line), "%s: client_cert must be \"required\" or left out, got %q", obj, r.ClientCert)
		}

		if !pathOK || !methodsOK {
			continue
		}
		cur := seenRoute{line: r.Line, name: r.Name, host: r.Host, shape: tmpl.shape, methods: r.Methods}
		for _, p := range prev {
			if p.host == cur.host && p.shape == cur.shape && overlap(p.methods, cur.methods) {
				v.add(r.Line, "%s: duplicates route %q at line %d (same host, path shape and method); only one of them could ever match", obj, p.name, p.line)
				break
			}
		}
		prev = append(prev, cur)
	}
}

func (v *validator) store() {
	s := &v.cfg.Store
	s.Type = strings.ToLower(s.Type)
	switch s.Type {
	case "":
		s.Type = DefaultStoreType
	case "memory", "bolt", "redis":
	default:
		v.add(v.line(&s.Type, s.Line), "store: type must be memory, bolt or redis, got %q", s.Type)
		return
	}
	switch s.Type {
	case "bolt":
		if s.Path == "" {
			s.Path = DefaultStorePath
		}
		if !filepath.IsAbs(s.Path) {
			s.Path = filepath.Join(v.dir, s.Path)
		}
	case "redis":
		switch {
		case s.Addr == "" && len(s.Addrs) == 0:
			v.add(v.line(&s.Type, s.Line), "store: type redis needs addr: the Redis host:port, e.g. addr: 10.0.0.7:6379 (or addrs: [...] for a Cluster or Sentinels)")
		case s.Addr != "" && len(s.Addrs) > 0:
			v.add(v.line(&s.Addrs, s.Line), "store: set addr or addrs, not both")
		default:
			if s.Addr != "" {
				s.Addrs = []string{s.Addr}
			}
			for i, a := range s.Addrs {
				if msg := hostPort(a, true, false); msg != "" {
					v.add(v.line(&s.Addrs[i], v.line(&s.Addr, s.Line)), "store: addr %s", msg)
				}
			}
		}
		if s.Prefix == "" {
			s.Prefix = DefaultStorePrefix
		}
		switch {
		case s.TLS != nil:
			line := v.line(s.TLS, s.Line)
			t := s.TLS
			if !t.InsecureSkipVerify && t.CA == "" && len(t.Pins) == 0 && !t.SystemRoots {
				v.add(line, "store: tls needs a way to verify Redis's certificate: ca, pins or system_roots (run \"drawbridge pin https://HOST:PORT\" against its TLS port to get a pin)")
			}
			if t.InsecureSkipVerify && !s.AllowInsecure {
				v.add(v.line(&t.InsecureSkipVerify, line), "store: tls.insecure_skip_verify needs allow_insecure: true on the store as well (insecure: Redis is then not authenticated)")
			}
			v.upstreamTLS(t, "store", line, false)
		case !s.AllowInsecure && !allLoopback(s.Addrs):
			v.add(v.line(&s.Type, s.Line), "store: Redis at %s is not on this machine, so the connection needs tls: {ca: FILE} (or pins); set allow_insecure: true to use plaintext anyway (insecure: the password, key hashes and counters cross the network in clear)", strings.Join(s.Addrs, ", "))
		}
		if s.DB < 0 {
			v.add(v.line(&s.DB, s.Line), "store: db must not be negative, got %d", s.DB)
		}
	}
	v.duration(&s.FlushInterval, "store", "flush_interval", DefaultFlushInterval, s.Line)
	v.duration(&s.Timeout, "store", "timeout", DefaultStoreTimeout, s.Line)
	switch s.OnError {
	case "":
		s.OnError = DefaultStoreOnError
	case "fail_closed", "fail_open":
	default:
		v.add(v.line(&s.OnError, s.Line), "store: on_error must be fail_closed or fail_open, got %q", s.OnError)
	}
}

func (v *validator) plan(p *Plan) {
	obj := fmt.Sprintf("plan %q", p.Name)
	v.throttle(p.Throttle, obj, "throttle", v.line(&p.Throttle, p.Line))
	for _, key := range sortedKeys(p.Methods) {
		method, path, ok := strings.Cut(key, " ")
		mline := v.line(&p.Methods, p.Line)
		if !ok || !slices.Contains(validMethods, strings.ToUpper(method)) || !strings.HasPrefix(path, "/") {
			v.add(mline, "%s: methods: %q must be \"METHOD /path\" as a route declares it, e.g. \"GET /orders/{id}\"", obj, key)
			continue
		}
		// The key is rewritten to the route's own spelling of the path, the
		// one the gateway looks the override up by.
		routePath, ok := v.routeDeclares(strings.ToUpper(method), path)
		if !ok {
			v.add(mline, "%s: methods: %q matches no route: it must name a method and path as a route declares them (a route with methods [ANY] takes \"ANY %s\")", obj, key, path)
			continue
		}
		if norm := strings.ToUpper(method) + " " + routePath; norm != key {
			p.Methods[norm] = p.Methods[key]
			delete(p.Methods, key)
		}
		v.throttle(p.Methods[strings.ToUpper(method)+" "+path], obj, "methods."+key, mline)
	}
	if q := p.Quota; q != nil {
		qline := v.line(&p.Quota, p.Line)
		if q.Limit <= 0 && !v.bad[&q.Limit] {
			v.add(v.line(&q.Limit, qline), "%s: quota.limit must be a number of requests greater than 0, got %d", obj, q.Limit)
		}
		q.Period = strings.ToUpper(q.Period)
		maxOffset := int64(-1)
		switch q.Period {
		case "DAY":
			maxOffset = 0
		case "WEEK":
			maxOffset = 6
		case "MONTH":
			// Day 1 to 28 of the month (offset 0 to 27): every month has them.
			maxOffset = 27
		default:
			if !v.bad[&q.Period] {
				v.add(v.line(&q.Period, qline), "%s: quota.period must be DAY, WEEK or MONTH, got %q", obj, q.Period)
			}
		}
		if q.Offset < 0 || (maxOffset >= 0 && q.Offset > maxOffset) {
			v.add(v.line(&q.Offset, qline), "%s: quota.offset %d is out of range for period %s", obj, q.Offset, q.Period)
		}
	}
}

// routeDeclares finds a route that declares method on path (the same
// template up to parameter names) and returns that route's path: a plan's
// per-method throttle is keyed by it.
func (v *validator) routeDeclares(method, path string) (string, bool) {
	want, errs := parseTemplate(path)
	if len(errs) > 0 {
		return "", false
	}
	for _, r := range v.cfg.Routes {
		if r == nil || !slices.Contains(r.Methods, method) {
			continue
		}
		if t, errs := parseTemplate(r.Path); len(errs) == 0 && t.shape == want.shape {
			return r.Path, true
		}
	}
	return "", false
}

func (v *validator) anyClientCA() bool {
	for _, l := range v.cfg.Listeners {
		if l.TLS.ClientCA != "" {
			return true
		}
	}
	return false
}

func (v *validator) log() {
	l := &v.cfg.Log
	l.Level = strings.ToLower(l.Level)
	switch l.Level {
	case "":
		l.Level = DefaultLogLevel
	case "debug", "info", "warn", "error":
	default:
		v.add(v.line(&l.Level, l.Line), "log: level must be debug, info, warn or error, got %q", l.Level)
	}
	switch l.Access {
	case "":
		l.Access = DefaultAccessLog
	case "stderr", "stdout", "off":
	default:
		if !filepath.IsAbs(l.Access) {
			l.Access = filepath.Join(v.dir, l.Access)
		}
	}
}
