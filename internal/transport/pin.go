package transport

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
)

// pinPrefix names the hash, as in HPKP (RFC 7469) and curl's --pinnedpubkey.
const pinPrefix = "sha256/"

// SPKIPin returns cert's public key pin: "sha256/" followed by the standard
// base64 of the SHA-256 of its DER SubjectPublicKeyInfo. The pin survives
// certificate renewal as long as the key is kept.
func SPKIPin(cert *x509.Certificate) string {
	sum := spkiHash(cert)
	return pinPrefix + base64.StdEncoding.EncodeToString(sum[:])
}

// ParsePin parses a pin in the form SPKIPin returns. Padding may be omitted.
func ParsePin(s string) ([32]byte, error) {
	var sum [32]byte
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), pinPrefix)
	if !ok {
		return sum, fmt.Errorf("parsing pin %q: want %q followed by the base64 SHA-256 of the key (print it with drawbridge pin)", s, pinPrefix)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		return sum, fmt.Errorf("parsing pin %q: invalid base64: %w", s, err)
	}
	if len(raw) != len(sum) {
		return sum, fmt.Errorf("parsing pin %q: hash is %d bytes, want %d (SHA-256)", s, len(raw), len(sum))
	}
	copy(sum[:], raw)
	return sum, nil
}

func spkiHash(cert *x509.Certificate) [32]byte {
	return sha256.Sum256(cert.RawSubjectPublicKeyInfo)
}
