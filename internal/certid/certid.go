package certid

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
)

// Prefix starts every fingerprint.
const Prefix = "sha256:"

// Fingerprint returns "sha256:" followed by the lowercase hex SHA-256 of
// the certificate's DER encoding. It returns "" for a nil certificate.
//
// The same value comes from
// openssl x509 -in CERT -outform DER | sha256sum.
func Fingerprint(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	sum := sha256.Sum256(cert.Raw)
	return Prefix + hex.EncodeToString(sum[:])
}

// Parse normalises a fingerprint an operator wrote to the form Fingerprint
// returns. It accepts the "sha256:" prefix in any case, hex digits in
// either case, and the digits either run together (as sha256sum prints
// them) or as 32 colon-separated pairs (as openssl x509 -fingerprint
// prints them). The prefix is required: without it a fingerprint could be
// of any hash.
func Parse(s string) (string, error) {
	if len(s) < len(Prefix) || !strings.EqualFold(s[:len(Prefix)], Prefix) {
		return "", fmt.Errorf("fingerprint %q: want sha256:<64 hex digits of the DER certificate's SHA-256>", s)
	}
	h := s[len(Prefix):]
	if strings.Contains(h, ":") {
		// openssl's form: exactly 32 pairs, so that a dropped or doubled
		// digit is not silently absorbed.
		pairs := strings.Split(h, ":")
		if len(pairs) != sha256.Size {
			return "", fmt.Errorf("fingerprint %q: want 32 colon-separated hex pairs after \"sha256:\", got %d groups", s, len(pairs))
		}
		for _, p := range pairs {
			if len(p) != 2 {
				return "", fmt.Errorf("fingerprint %q: group %q: want 2 hex digits between colons", s, p)
			}
		}
		h = strings.Join(pairs, "")
	}
	if len(h) != hex.EncodedLen(sha256.Size) {
		return "", fmt.Errorf("fingerprint %q: want 64 hex digits after \"sha256:\", got %d", s, len(h))
	}
	var d [sha256.Size]byte
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return "", fmt.Errorf("fingerprint %q: %w", s, err)
	}
	return Prefix + hex.EncodeToString(d[:]), nil
}
