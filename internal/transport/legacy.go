package transport

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"slices"
	"strings"
)

// ParseVersion maps a config's TLS version ("1.0" to "1.3") to its
// crypto/tls constant. "" is the default, TLS 1.2.
func ParseVersion(s string) (uint16, error) {
	switch s {
	case "":
		return DefaultMinVersion, nil
	case "1.0":
		return tls.VersionTLS10, nil
	case "1.1":
		return tls.VersionTLS11, nil
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("tls version %q: want \"1.0\", \"1.1\", \"1.2\" or \"1.3\"", s)
}

// LegacyCipherSuites returns the TLS 1.0-1.2 cipher suites crypto/tls
// offers by default plus those it implements but no longer offers: RSA key
// exchange, 3DES and CBC with SHA-256, which old load balancers may be
// limited to. RC4 is left out: it is broken outright (RFC 7465), and a box
// that speaks nothing else cannot be made safe by any pin.
func LegacyCipherSuites() []uint16 {
	var ids []uint16
	for _, list := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, s := range list {
			if !slices.Contains(s.SupportedVersions, tls.VersionTLS12) &&
				!slices.Contains(s.SupportedVersions, tls.VersionTLS10) {
				continue // TLS 1.3 suites are not configurable
			}
			if strings.Contains(s.Name, "_RC4_") {
				continue
			}
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// IsLegacyCipherSuite reports whether id is a suite only LegacyCipherSuites
// offers, not crypto/tls's default set.
func IsLegacyCipherSuite(id uint16) bool {
	for _, s := range tls.InsecureCipherSuites() {
		if s.ID == id {
			return true
		}
	}
	return false
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// HasSAN reports whether c carries a subjectAltName extension. Without one,
// crypto/x509 refuses to match any name, since Go 1.15 ignores the Common
// Name.
func HasSAN(c *x509.Certificate) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oidSubjectAltName) {
			return true
		}
	}
	return false
}

// commonNameMatches reports whether c's Common Name is name, ignoring case
// and a trailing dot. Wildcards are not expanded: legacy certificates are
// matched exactly.
func commonNameMatches(c *x509.Certificate, name string) bool {
	cn := strings.TrimSuffix(c.Subject.CommonName, ".")
	return cn != "" && strings.EqualFold(cn, strings.TrimSuffix(name, "."))
}
