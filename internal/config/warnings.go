package config

import "fmt"

// Warnings returns one line per insecure opt-in the config actually uses (an
// http:// target allowed by allow_insecure, or tls.insecure_skip_verify),
// each naming the upstream and FILE:LINE. The gateway logs them on every
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
	}
	if s := c.Store; s.Type == "redis" {
		switch {
		case s.TLS == nil && !allLoopback(s.Addrs):
			warn(&s.AllowInsecure, s.Line, "store: Redis at %v is reached in plaintext (allow_insecure: true); its password, key hashes and counters cross the network in clear", s.Addrs)
		case s.TLS != nil && s.TLS.InsecureSkipVerify:
			warn(&s.TLS.InsecureSkipVerify, s.Line, "store: tls.insecure_skip_verify is true; Redis's certificate is not verified")
		}
	}
	return out
}
