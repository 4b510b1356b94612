package listener

import (
	"crypto/tls"
	"strings"
	"sync"
	"time"
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

// IsACMEChallenge reports whether hello is an ACME server validating a
// TLS-ALPN-01 challenge: it offers acme-tls/1 and nothing else (RFC 8737,
// section 3).
func IsACMEChallenge(hello *tls.ClientHelloInfo) bool {
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
	if IsACMEChallenge(hello) {
		return s.managed.GetCertificate(hello)
	}
	hasFile := s.certs.cur.Load() != nil
	if s.managed.Manages(hello.ServerName) || !hasFile {
		cert, err := s.managed.GetCertificate(hello)
		if err == nil || !hasFile {
			if err != nil {
				s.noManagedCert(hello, err)
			}
			return cert, err
		}
	}
	return s.certs.GetCertificate(hello)
}

// noCertWarnInterval is how often a managed name whose handshakes fail
// for want of a certificate is logged at warn; other failures of it are
// logged at debug, so that clients cannot flood the log.
const noCertWarnInterval = time.Minute

// noManagedCert logs a handshake refused because a name has no managed
// certificate and the listener no file certificate. An operator must see
// that partners are being refused for one of the listener's own names:
// at warn, once per name per noCertWarnInterval. Other names are noise
// (scanners) and go to debug.
func (s *Server) noManagedCert(hello *tls.ClientHelloInfo, err error) {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	var remote string
	if hello.Conn != nil {
		remote = hello.Conn.RemoteAddr().String()
	}
	if s.managed.Manages(name) && s.noCertWarn.allow(name, time.Now()) {
		s.logger.Warn("handshake refused: no certificate yet for this name (ACME order pending or failing; see GET /v1/certificates)",
			"server_name", name, "remote", remote, "error", err.Error())
		return
	}
	s.logger.Debug("handshake refused: no certificate for this name", "server_name", name, "remote", remote, "error", err.Error())
}

// rateLimit lets each key through at most once per interval. Its keys
// must be bounded by the caller (here: the managed names).
type rateLimit struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
}

func (l *rateLimit) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.interval {
		return false
	}
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	l.last[key] = now
	return true
}
