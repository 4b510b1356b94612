package config

import "fmt"

// Warnings returns one line per insecure opt-in the config actually uses (an
// http:// target allowed by allow_insecure, tls.insecure_skip_verify, or a
// concession to an old backend: legacy_common_name, accept_expired,
// min_version below 1.2, legacy_ciphers) or a tcp listener reaching an
// upstream that HTTP routes guard, each with its FILE:LINE. The gateway logs them on every
// start so that an opt-in is never forgotten.
func (c *Config) Warnings() []string {
	var out []string
	warn := func(p any, fallback int, format string, args ...any) {
		line := fallback
		if l, ok := c.lines[p]; ok {
			line = l
		}
		out = append(out, Problem{File: c.File, Line: line, Msg: fmt.Sprintf(format, args...)}.String())
	}
	for _, name := range sortedKeys(c.Upstreams) {
		u := c.Upstreams[name]
		if u == nil {
			continue
		}
		if u.AllowInsecure {
			for i, t := range u.Targets {
				if len(t) >= 7 && t[:7] == "http://" {
					warn(&u.Targets[i], u.Line, "upstream %q: target %q is plaintext http:// (allow_insecure: true); requests and responses to it can be read and changed on the way", name, t)
				}
			}
		}
		if u.TLS.InsecureSkipVerify {
			warn(&u.TLS.InsecureSkipVerify, u.TLS.Line, "upstream %q: tls.insecure_skip_verify is true; the backend's certificate is not verified, so anyone on the path can impersonate it", name)
		}
		t := &u.TLS
		if t.LegacyCommonName {
			warn(&t.LegacyCommonName, t.Line, "upstream %q: tls.legacy_common_name is true; a certificate without subjectAltName is matched by its Common Name, which clients stopped accepting; have the backend's certificate reissued with a SAN, or pin its key", name)
		}
		if t.AcceptExpired {
			warn(&t.AcceptExpired, t.Line, "upstream %q: tls.accept_expired is true; a pinned certificate is accepted after it expires, so a leaked key of it stays trusted until the pin is removed", name)
		}
		if t.MinVersion == "1.0" || t.MinVersion == "1.1" {
			warn(&t.MinVersion, t.Line, "upstream %q: tls.min_version is %q; TLS 1.0 and 1.1 are deprecated (RFC 8996) and weaker against a network attacker; upgrade the backend to TLS 1.2", name, t.MinVersion)
		}
		if t.LegacyCiphers {
			warn(&t.LegacyCiphers, t.Line, "upstream %q: tls.legacy_ciphers is true; RSA key exchange (no forward secrecy), 3DES and CBC suites are offered to the backend", name)
		}
	}
	out = append(out, c.l4Warnings()...)
	if s := c.Store; s.Type == "redis" {
		switch {
		case s.TLS == nil && !allLoopback(s.Addrs):
			warn(&s.AllowInsecure, s.Line, "store: Redis at %v is reached in plaintext (allow_insecure: true); its password, key hashes and counters cross the network in clear", s.Addrs)
		case s.TLS != nil && s.TLS.InsecureSkipVerify:
			warn(&s.TLS.InsecureSkipVerify, s.Line, "store: tls.insecure_skip_verify is true; Redis's certificate is not verified")
		}
	}
	return append(out, c.importWarnings...)
}
