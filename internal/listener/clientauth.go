package listener

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"

	"github.com/drawbridge-gw/drawbridge/internal/certid"
)

// Values of [Options.ClientAuth].
const (
	// ClientAuthOptional requests a client certificate and verifies it if
	// one is sent; a client without one still connects, and routes decide
	// whether they need one.
	ClientAuthOptional = "optional"
	// ClientAuthRequire fails the handshake unless the client sends a
	// certificate that verifies against the client CAs.
	ClientAuthRequire = "require"
)

// Fingerprint returns "sha256:" followed by the lowercase hex SHA-256 of
// the certificate's DER encoding, the form used in revoked files and to map
// client certificates to partners. It returns "" for a nil certificate.
//
// The same value comes from
// openssl x509 -in CERT -outform DER | sha256sum.
func Fingerprint(cert *x509.Certificate) string {
	return certid.Fingerprint(cert)
}

// ParseFingerprint normalises a fingerprint an operator wrote to the form
// Fingerprint returns: the "sha256:" prefix is required, the hex digits may
// be in either case and may come as openssl's colon-separated pairs. It is
// certid.Parse, the one rule the revoked file and the partners' client
// certificate mapping share.
func ParseFingerprint(s string) (string, error) {
	return certid.Parse(s)
}

// clientAuthType maps Options.ClientAuth to the tls setting, checking that
// the options that only make sense with a client CA file come with one.
func clientAuthType(o Options) (tls.ClientAuthType, error) {
	if o.ClientCAFile == "" {
		switch {
		case o.ClientAuth != "":
			return tls.NoClientCert, fmt.Errorf("client auth %q needs a client CA file to verify certificates against", o.ClientAuth)
		case o.RevokedFile != "":
			return tls.NoClientCert, fmt.Errorf("revoked file %q needs a client CA file; without one no client certificates are requested", o.RevokedFile)
		}
		return tls.NoClientCert, nil
	}
	switch o.ClientAuth {
	case "", ClientAuthOptional:
		return tls.VerifyClientCertIfGiven, nil
	case ClientAuthRequire:
		return tls.RequireAndVerifyClientCert, nil
	default:
		return tls.NoClientCert, fmt.Errorf("client auth %q: want %q or %q", o.ClientAuth, ClientAuthOptional, ClientAuthRequire)
	}
}

// clientCAs is a parsed client CA file.
type clientCAs struct {
	pool *x509.CertPool
	n    int
}

// parseClientCAs reads a PEM truststore. Every certificate in it must be a
// CA: a partner's own certificate in this file is almost always a mistake
// (it would trust exactly that certificate, and nothing it issued).
func parseClientCAs(file string, data []byte) (*clientCAs, error) {
	certs, err := parseCertificates("client CA file", file, data)
	if err != nil {
		return nil, err
	}
	if certs == nil {
		return nil, fmt.Errorf("client CA file %q: no CERTIFICATE PEM block, but found a private key; the file must hold CA certificates only", file)
	}
	cas := &clientCAs{pool: x509.NewCertPool()}
	for i, cert := range certs {
		if !cert.BasicConstraintsValid || !cert.IsCA {
			return nil, fmt.Errorf("client CA file %q: certificate %d (%s) is not a CA certificate; the file must hold the CAs that issue partner certificates, not the partners' certificates",
				file, i+1, cert.Subject)
		}
		cas.pool.AddCert(cert)
		cas.n++
	}
	return cas, nil
}

// revokedSet is a parsed revoked file: fingerprints as [Fingerprint]
// writes them.
type revokedSet map[string]struct{}

// parseRevoked reads one fingerprint per line, in any form ParseFingerprint
// accepts. Blank lines and everything after a # are ignored. An empty file is
// an empty list, so an operator can keep the file in place with nothing
// revoked.
func parseRevoked(file string, data []byte) (revokedSet, error) {
	set := revokedSet{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text, _, _ := strings.Cut(sc.Text(), "#")
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		fp, err := certid.Parse(text)
		if err != nil {
			return nil, fmt.Errorf("revoked file %q: line %d: %w; openssl x509 -in CERT -outform DER | sha256sum prints one", file, line, err)
		}
		set[fp] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("revoked file %q: %w", file, err)
	}
	return set, nil
}
