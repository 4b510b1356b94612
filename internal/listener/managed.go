package listener

import (
	"crypto/tls"
)

// ACMETLS1Protocol is the ALPN protocol of ACME's TLS-ALPN-01 challenge
// (RFC 8737, section 6).
const ACMETLS1Protocol = "acme-tls/1"

// ManagedCerts is a source of certificates obtained at run time, such as
// an ACME client (package acme).
type ManagedCerts interface {
	// Manages reports whether serverName's certificate comes from here.
	Manages(serverName string) bool
	// GetCertificate is as [tls.Config.GetCertificate]; it also answers
	// TLS-ALPN-01 validations.
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

// isACMEChallenge reports whether hello is an ACME server validating a
// TLS-ALPN-01 challenge: it offers acme-tls/1 and nothing else (RFC 8737,
// section 3).
func isACMEChallenge(hello *tls.ClientHelloInfo) bool {
	return hello != nil && len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ACMETLS1Protocol
}

// getCertificate picks the certificate of a handshake on a listener with
// managed certificates. A validation and a managed name go to the managed
// source: a name listed exactly is the most specific match there is, more
// than a wildcard of the file certificate. Every other name gets the file
// certificate. A managed name that has no certificate yet also falls back
// to the file one, which may cover it (a wildcard) while the first order
// is under way.
func (s *Server) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if isACMEChallenge(hello) {
		return s.managed.GetCertificate(hello)
	}
	hasFile := s.certs.cur.Load() != nil
	if s.managed.Manages(hello.ServerName) || !hasFile {
		cert, err := s.managed.GetCertificate(hello)
		if err == nil || !hasFile {
			return cert, err
		}
	}
	return s.certs.GetCertificate(hello)
}
