package transport

import (
	"context"
	"crypto/x509"
	"net"
	"time"
)

// Options is how one upstream's connections are made and verified.
//
// At least one of Pins, CAFile or SystemRoots must be set, unless
// InsecureSkipVerify is.
type Options struct {
	// Upstream is the upstream's name, used in errors and logs.
	Upstream string
	// ServerName is sent as SNI and is the name the certificate chain is
	// verified against. If empty, the dialed host (IP or name) is used.
	ServerName string
	// CAFile holds PEM roots: a private CA, or the self-signed certificate
	// itself.
	CAFile string
	// Pins are "sha256/<base64 SPKI hash>" values; the leaf matching any one
	// is trusted whatever its chain and names. List the next key next to the
	// current one before rotating it.
	Pins []string
	// SystemRoots adds the system certificate pool to the roots.
	SystemRoots bool
	// ClientCertFile and ClientKeyFile are an optional PEM client certificate
	// and key presented to backends that require mTLS. Set both or neither.
	ClientCertFile, ClientKeyFile string
	// InsecureSkipVerify turns off all verification of the backend: anyone on
	// the path can impersonate it. It is only ever set when the operator
	// opted in for this upstream.
	InsecureSkipVerify bool
	// DisableHTTP2 offers only HTTP/1.1 to the backend. By default HTTP/2
	// is offered and used when the backend selects it.
	DisableHTTP2 bool
	// AllowPlaintext permits http:// requests: no TLS at all, so the
	// backend is neither authenticated nor the traffic encrypted. It is only
	// ever set when the operator opted in for this upstream.
	AllowPlaintext bool
	// MinVersion is the lowest TLS version accepted. It defaults to TLS 1.2;
	// TLS 1.0 and 1.1 are spoken only when set explicitly (see
	// [ParseVersion]).
	MinVersion uint16
	// LegacyCiphers also offers [LegacyCipherSuites]: RSA key exchange, 3DES
	// and CBC-SHA256 suites, for backends that speak nothing better.
	LegacyCiphers bool
	// LegacyCommonName accepts, after its chain verifies, a leaf without any
	// subjectAltName whose Common Name is the name verified. A leaf with
	// SANs must still match one of them. Pinned leaves need no name.
	LegacyCommonName bool
	// AcceptExpired accepts a pinned leaf outside its validity period: the
	// pinned key is the identity. Chain-verified leaves must still be
	// valid. OnVerified is called for such leaves too.
	AcceptExpired bool
	// DialTimeout bounds TCP connect plus TLS handshake. It defaults to 5s.
	DialTimeout time.Duration
	// MaxIdleConnsPerHost defaults to 64.
	MaxIdleConnsPerHost int
	// MaxConnsPerHost limits connections per backend; 0 means unlimited.
	MaxConnsPerHost int
	// DialContext, if set, replaces the TCP dialer; the upstream pool uses it
	// to dial the currently resolved IP of a host-name target. addr is the
	// target's host:port as configured, and the name verified is still
	// derived from it (or ServerName), never from the IP actually dialed.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnVerified, if set, is called with the leaf certificate after each
	// successful verification (metrics record its expiry), and also after
	// each handshake when InsecureSkipVerify is set. It must be cheap and
	// safe for concurrent use.
	OnVerified func(leaf *x509.Certificate)
}

func (o *Options) minVersion() uint16 {
	if o.MinVersion == 0 {
		return DefaultMinVersion
	}
	return o.MinVersion
}

func (o *Options) dialTimeout() time.Duration {
	if o.DialTimeout <= 0 {
		return DefaultDialTimeout
	}
	return o.DialTimeout
}

func (o *Options) maxIdleConnsPerHost() int {
	if o.MaxIdleConnsPerHost <= 0 {
		return DefaultMaxIdleConnsPerHost
	}
	return o.MaxIdleConnsPerHost
}
