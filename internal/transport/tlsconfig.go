package transport

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

// NewTLSConfig loads o's files and pins and returns a client config that
// verifies backends as the package doc describes.
//
// The name verified is o.ServerName, else the SNI the config is used with.
// For IP targets crypto/tls sends no SNI, so a caller dialing an IP without
// o.ServerName gets every chain-verified connection refused (pins still
// work); [New] avoids this by passing the dialed host per connection.
//
// The returned config's VerifyConnection does all the verification: it must
// not be replaced or cleared.
func NewTLSConfig(o Options) (*tls.Config, error) {
	cfg, _, err := newTLSConfig(o)
	return cfg, err
}

func newTLSConfig(o Options) (*tls.Config, *verifier, error) {
	v, err := newVerifier(o)
	if err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{
		ServerName: o.ServerName,
		MinVersion: o.minVersion(),
		// Verification is not skipped here, it is replaced: crypto/tls's
		// built-in check only knows chains and names, and cannot express
		// "this key, whatever its chain" (pins) or report why it refused.
		// VerifyConnection below runs on every handshake, including resumed
		// ones, and refuses anything that passes neither a pin nor a chain
		// check. Only v.insecure (the operator's explicit opt-in) accepts
		// unverified certificates.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			name := o.ServerName
			if name == "" {
				name = cs.ServerName
			}
			return v.verify(cs, name)
		},
	}
	if o.LegacyCiphers {
		cfg.CipherSuites = LegacyCipherSuites()
	}
	if o.ClientCertFile != "" || o.ClientKeyFile != "" {
		if o.ClientCertFile == "" || o.ClientKeyFile == "" {
			return nil, nil, fmt.Errorf("upstream %q: client certificate needs both a cert file and a key file", o.Upstream)
		}
		pair, err := tls.LoadX509KeyPair(o.ClientCertFile, o.ClientKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("upstream %q: loading client certificate %q (key %q): %w", o.Upstream, o.ClientCertFile, o.ClientKeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, v, nil
}

// verifier decides whether a backend's certificate is trusted.
type verifier struct {
	upstream   string
	insecure   bool
	pins       [][32]byte
	roots      *x509.CertPool // nil when no roots are configured
	onVerified func(*x509.Certificate)
	legacyCN   bool
	anyDate    bool // a pinned leaf may be outside its validity period
}

func newVerifier(o Options) (*verifier, error) {
	v := &verifier{
		upstream:   o.Upstream,
		insecure:   o.InsecureSkipVerify,
		onVerified: o.OnVerified,
		legacyCN:   o.LegacyCommonName,
		anyDate:    o.AcceptExpired,
	}
	for _, s := range o.Pins {
		p, err := ParsePin(s)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: %w", o.Upstream, err)
		}
		v.pins = append(v.pins, p)
	}
	if o.SystemRoots {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("upstream %q: loading system roots: %w", o.Upstream, err)
		}
		v.roots = pool
	}
	if o.CAFile != "" {
		if v.roots == nil {
			v.roots = x509.NewCertPool()
		}
		if err := appendPEMFile(v.roots, o.CAFile); err != nil {
			return nil, fmt.Errorf("upstream %q: %w", o.Upstream, err)
		}
	}
	// An upstream of plaintext targets only has nothing to verify; if it
	// also lists https targets, their handshakes fail with no trust.
	if !v.insecure && !o.AllowPlaintext && v.roots == nil && len(v.pins) == 0 {
		return nil, fmt.Errorf("upstream %q: no way to verify the backend: set a CA file, pins or system roots", o.Upstream)
	}
	return v, nil
}

// appendPEMFile adds every certificate in the PEM file at path to pool and
// fails if there is none, so that a key or a DER file given by mistake is
// caught at load time instead of refusing every connection later.
func appendPEMFile(pool *x509.CertPool, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("loading CA file: %w", err)
	}
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("loading CA file %q: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return fmt.Errorf("loading CA file %q: no PEM certificate found", path)
	}
	return nil
}

// verify accepts cs's peer when its leaf matches a pin and is within its
// validity period (or v.anyDate), or when its chain verifies against v.roots
// for serverName (matched against a SAN-less leaf's CN when v.legacyCN).
// Anything else is refused with a *VerifyError.
func (v *verifier) verify(cs tls.ConnectionState, serverName string) error {
	if len(cs.PeerCertificates) == 0 {
		if v.insecure {
			return nil
		}
		return v.refuse(serverName, ReasonOther, "backend sent no certificate", nil)
	}
	leaf := cs.PeerCertificates[0]
	if v.insecure {
		v.verified(leaf)
		return nil
	}
	now := time.Now()

	// A pin is compared with the leaf only: the handshake proves the peer
	// holds the leaf's key, not the key of any other certificate it sends.
	if v.matchesPin(leaf) {
		switch {
		case v.anyDate:
		case now.Before(leaf.NotBefore):
			return v.refuse(serverName, ReasonNotYetValid, fmt.Sprintf("pinned leaf is valid from %s", leaf.NotBefore.UTC().Format(time.RFC3339)), nil)
		case now.After(leaf.NotAfter):
			return v.refuse(serverName, ReasonExpired, fmt.Sprintf("pinned leaf expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339)), nil)
		}
		v.verified(leaf)
		return nil
	}

	if v.roots == nil {
		return v.refuse(serverName, ReasonPinMismatch, fmt.Sprintf("leaf %s matches none of %d pins", SPKIPin(leaf), len(v.pins)), nil)
	}
	noPin := ""
	if len(v.pins) > 0 {
		noPin = fmt.Sprintf("; no pin matched the leaf either (%s, %d pins)", SPKIPin(leaf), len(v.pins))
	}
	// An empty DNSName makes x509 skip the name check, so a chain is never
	// verified without a name.
	if serverName == "" {
		return v.refuse(serverName, ReasonOther, "no server name to verify the chain against: set server_name"+noPin, nil)
	}
	// x509 never matches a name against the Common Name, so a leaf
	// without SANs that the operator accepts by CN has its chain verified
	// without a name, and its CN compared here.
	byCN := v.legacyCN && !HasSAN(leaf)
	opts := x509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: x509.NewCertPool(),
		DNSName:       serverName,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if byCN {
		opts.DNSName = ""
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(opts); err != nil {
		detail := err.Error()
		var hostErr x509.HostnameError
		if errors.As(err, &hostErr) && !HasSAN(leaf) {
			detail = fmt.Sprintf("the certificate has no subjectAltName, only CN=%q, and Go matches names against SANs only: "+
				"set tls.legacy_common_name: true, or pin its key (%s)", leaf.Subject.CommonName, SPKIPin(leaf))
		}
		return v.refuse(serverName, chainReason(err, now), detail+noPin, err)
	}
	if byCN && !commonNameMatches(leaf, serverName) {
		return v.refuse(serverName, ReasonNameMismatch,
			fmt.Sprintf("the certificate has no subjectAltName and its CN=%q is not %q (legacy_common_name)", leaf.Subject.CommonName, serverName)+noPin, nil)
	}
	v.verified(leaf)
	return nil
}

func (v *verifier) matchesPin(leaf *x509.Certificate) bool {
	if len(v.pins) == 0 {
		return false
	}
	sum := spkiHash(leaf)
	for _, p := range v.pins {
		if p == sum {
			return true
		}
	}
	return false
}

func (v *verifier) verified(leaf *x509.Certificate) {
	if v.onVerified != nil {
		v.onVerified(leaf)
	}
}

func (v *verifier) refuse(serverName string, r Reason, detail string, err error) error {
	return &VerifyError{Upstream: v.upstream, ServerName: serverName, Reason: r, Detail: detail, Err: err}
}

// chainReason maps an x509 verification error to a Reason.
func chainReason(err error, now time.Time) Reason {
	var (
		hostErr      x509.HostnameError
		authorityErr x509.UnknownAuthorityError
		invalidErr   x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &hostErr):
		return ReasonNameMismatch
	case errors.As(err, &authorityErr):
		return ReasonUnknownAuthority
	case errors.As(err, &invalidErr) && invalidErr.Reason == x509.Expired:
		// x509 reports both ends of the validity period as Expired.
		if invalidErr.Cert != nil && now.Before(invalidErr.Cert.NotBefore) {
			return ReasonNotYetValid
		}
		return ReasonExpired
	default:
		return ReasonOther
	}
}
