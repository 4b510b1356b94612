package config

import (
	"net"
	"net/url"
	"path/filepath"
	"strings"
)

// ACME is a listener's certificates from an ACME CA (RFC 8555), such as
// Let's Encrypt. The CA validates each name by HTTP-01 on the listener's
// http_addr (port 80 for a public CA) or TLS-ALPN-01 on the listener
// itself (port 443), so the names must resolve to this gateway.
//
// A listener with cert and key files as well serves the ACME certificate
// to the names in Domains and the file certificate to every other name:
// an exact name is the most specific match, so it wins over a wildcard in
// the file certificate.
type ACME struct {
	Line int `yaml:"-"`
	// Domains are the exact DNS names to get certificates for. Required.
	// Wildcards are refused: they need the DNS-01 challenge.
	Domains []string `yaml:"domains"`
	// Email is given to the CA for expiry and policy notices. Optional.
	Email string `yaml:"email"`
	// CA is the ACME directory URL (https). It defaults to DefaultACMECA,
	// Let's Encrypt production.
	CA string `yaml:"ca"`
	// CARoot is a PEM file of the roots the CA's own HTTPS certificate
	// chains to, for a private ACME CA (step-ca, Pebble). It is trusted for
	// talking to the CA only.
	CARoot string `yaml:"ca_root"`
	// Storage is the folder of certificates, keys and the ACME account. It
	// defaults to DefaultACMEStorage beside the bolt store file, or beside
	// the config file for other stores. Replicas may share it (lock files
	// keep them from ordering the same certificate twice).
	Storage string `yaml:"storage"`
}

// acmeListeners checks every listener's tls.acme and http_addr, and fills
// in their defaults. It runs after store, whose path the storage folder
// defaults beside.
func (v *validator) acmeListeners() {
	owner := map[string]string{} // domain -> listener, across listeners
	httpAddrs := map[string]int{}
	for i := range v.cfg.Listeners {
		l := &v.cfg.Listeners[i]
		if l.Type == ListenerTCP {
			continue // tcpListener refuses acme and http_addr there
		}
		obj := listenerName(l, i)
		v.httpAddr(l, obj, httpAddrs)
		a := l.TLS.ACME
		if a == nil || v.bad[a] {
			continue
		}
		line := v.line(&l.TLS.ACME, l.Line)
		if len(a.Domains) == 0 && !v.bad[&a.Domains] {
			v.add(line, "%s: tls.acme.domains is required: the DNS names to get certificates for, e.g. domains: [api.example.com]", obj)
		}
		seen := map[string]bool{}
		for j, d := range a.Domains {
			dl := v.line(&a.Domains[j], v.line(&a.Domains, line))
			d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
			a.Domains[j] = d
			switch msg := acmeDomainProblem(d); {
			case msg != "":
				v.add(dl, "%s: tls.acme.domains[%d]: %s", obj, j, msg)
			case seen[d]:
				v.add(dl, "%s: tls.acme.domains[%d]: %q is listed twice", obj, j, d)
			case owner[d] != "" && owner[d] != obj:
				v.add(dl, "%s: tls.acme.domains[%d]: %q is already managed by %s; one listener per name, or both would order it", obj, j, d, owner[d])
			}
			seen[d] = true
			if owner[d] == "" {
				owner[d] = obj
			}
		}
		if a.Email != "" && !strings.Contains(a.Email, "@") {
			v.add(v.line(&a.Email, line), "%s: tls.acme.email %q is not an email address", obj, a.Email)
		}
		if a.CA == "" {
			a.CA = DefaultACMECA
		} else if u, err := url.Parse(a.CA); err != nil || u.Scheme != "https" || u.Host == "" {
			v.add(v.line(&a.CA, line), "%s: tls.acme.ca %q must be the https:// URL of an ACME directory, e.g. %s", obj, a.CA, DefaultACMECA)
		}
		v.file(&a.CARoot, obj, "tls.acme.ca_root", line)
		if a.Storage == "" {
			dir := v.dir
			if s := v.cfg.Store; s.Type == "bolt" && s.Path != "" {
				dir = filepath.Dir(s.Path)
			}
			a.Storage = filepath.Join(dir, DefaultACMEStorage)
		} else if !filepath.IsAbs(a.Storage) {
			a.Storage = filepath.Join(v.dir, a.Storage)
		}
	}
}

// httpAddr checks a listener's plain-HTTP address.
func (v *validator) httpAddr(l *Listener, obj string, seen map[string]int) {
	if l.HTTPAddr == "" {
		return
	}
	line := v.line(&l.HTTPAddr, l.Line)
	if msg := hostPort(l.HTTPAddr, false, true); msg != "" {
		v.add(line, "%s: http_addr %s", obj, msg)
		return
	}
	if l.HTTPAddr == l.Addr {
		v.add(line, "%s: http_addr %q is the HTTPS addr; plain HTTP needs a port of its own (usually 80)", obj, l.HTTPAddr)
		return
	}
	for _, other := range v.cfg.Listeners {
		if other.Addr == l.HTTPAddr && !strings.HasSuffix(l.HTTPAddr, ":0") {
			v.add(line, "%s: http_addr %q is already used by the listener at line %d", obj, l.HTTPAddr, other.Line)
			return
		}
	}
	if first, ok := seen[l.HTTPAddr]; ok && !strings.HasSuffix(l.HTTPAddr, ":0") {
		v.add(line, "%s: http_addr %q is already used at line %d", obj, l.HTTPAddr, first)
		return
	}
	seen[l.HTTPAddr] = line
}

// acmeDomainProblem says why d cannot be an ACME domain, or returns "".
func acmeDomainProblem(d string) string {
	switch {
	case d == "":
		return "empty name"
	case strings.Contains(d, "*"):
		return "wildcard " + quote(d) + " needs the DNS-01 challenge, which drawbridge does not do; list each name, or serve the wildcard from tls.cert and tls.key"
	case net.ParseIP(d) != nil:
		return quote(d) + " is an IP address; ACME certificates here are for DNS names"
	case !strings.Contains(d, "."):
		return quote(d) + " is not a public DNS name (it has no dot); a CA cannot validate it"
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return quote(d) + " is not a valid DNS name"
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return quote(d) + " is not a valid DNS name (letters, digits, - and . only)"
			}
		}
	}
	return ""
}

func quote(s string) string { return `"` + s + `"` }
