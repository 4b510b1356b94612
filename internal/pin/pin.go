package pin

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// DefaultTimeout bounds connect plus handshake when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Options says which backend to inspect.
type Options struct {
	// Target is https://host:port or host:port; the port defaults to 443.
	Target string
	// ServerName is sent as SNI, for backends that pick their certificate
	// by name. If empty, the target host is sent (no SNI for an IP).
	ServerName string
	// Timeout bounds TCP connect plus TLS handshake. It defaults to 10s.
	Timeout time.Duration
}

// Run connects to o.Target (offering TLS 1.0 and up, legacy suites
// included, so that old backends can be inspected), and writes to w the
// negotiated TLS version and ALPN protocol, each certificate the backend
// sent, a line "pin: sha256/<leaf SPKI hash>", what is legacy about the
// backend (no SAN, expired, SHA-1 signature, RSA key under 2048 bits, TLS
// below 1.2, a legacy cipher suite), and a YAML block for the upstream's tls
// config with the flags the gateway needs to connect to it pinned.
func Run(ctx context.Context, w io.Writer, o Options) error {
	addr, host, err := parseTarget(o.Target)
	if err != nil {
		return err
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	sni := o.ServerName
	if sni == "" {
		sni = host
	}
	cs, err := fetch(ctx, addr, sni)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("connecting to %s: no TLS handshake within %s", o.Target, timeout)
		}
		return fmt.Errorf("connecting to %s: %s", o.Target, oneLine(err))
	}
	return report(w, o, addr, host, cs, time.Now())
}

// fetch does a TLS handshake with addr and returns its state.
func fetch(ctx context.Context, addr, serverName string) (tls.ConnectionState, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer raw.Close()
	conn := tls.Client(raw, &tls.Config{
		ServerName: serverName,
		NextProtos: []string{"h2", "http/1.1"},
		// Not verifying is deliberate and safe here: the certificate is
		// only displayed, never used to send anything, and the operator
		// decides whether to trust it (see the package doc).
		InsecureSkipVerify: true,
		// For the same reason, old protocol versions and suites are
		// offered, so that an old backend can be inspected at all; the
		// report says which config flags the gateway then needs.
		MinVersion:   tls.VersionTLS10,
		CipherSuites: transport.LegacyCipherSuites(),
	})
	if err := conn.HandshakeContext(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return tls.ConnectionState{}, err
		}
		return tls.ConnectionState{}, fmt.Errorf("tls handshake with %s: %w (is the port serving TLS?)", addr, err)
	}
	cs := conn.ConnectionState()
	conn.Close()
	if len(cs.PeerCertificates) == 0 {
		return cs, fmt.Errorf("tls handshake with %s: no certificate sent", addr)
	}
	return cs, nil
}

// parseTarget returns the address to dial and its host.
func parseTarget(target string) (addr, host string, err error) {
	hostport := target
	if strings.Contains(target, "://") {
		u, err := url.Parse(target)
		if err != nil {
			return "", "", fmt.Errorf("parsing target %q: %w", target, err)
		}
		if u.Scheme != "https" {
			return "", "", fmt.Errorf("target %q: scheme must be https", target)
		}
		hostport = u.Host
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		// A bare host or IP, without port.
		host, port = strings.Trim(hostport, "[]"), "443"
	}
	if host == "" || strings.ContainsAny(host, "/ ") {
		return "", "", fmt.Errorf("target %q: want https://host:port or host:port", target)
	}
	return net.JoinHostPort(host, port), host, nil
}

func report(w io.Writer, o Options, addr, host string, cs tls.ConnectionState, now time.Time) error {
	var b bytes.Buffer
	leaf := cs.PeerCertificates[0]
	pin := transport.SPKIPin(leaf)

	sniNote := "(sent as SNI)"
	sni := o.ServerName
	if sni == "" {
		sni = host
	}
	if net.ParseIP(sni) != nil {
		sniNote = "(an IP: no SNI sent)"
	}
	alpn := cs.NegotiatedProtocol
	if alpn == "" {
		alpn = "none (HTTP/1.1)"
	}
	fmt.Fprintf(&b, "target:       %s (%s)\n", o.Target, addr)
	fmt.Fprintf(&b, "server name:  %s %s\n", sni, sniNote)
	fmt.Fprintf(&b, "tls version:  %s\n", tls.VersionName(cs.Version))
	fmt.Fprintf(&b, "alpn:         %s\n", alpn)
	fmt.Fprintf(&b, "chain:        %d certificate(s) as sent, NOT verified\n", len(cs.PeerCertificates))
	for i, c := range cs.PeerCertificates {
		describe(&b, i, c, now)
	}

	fmt.Fprintf(&b, "\npin: %s\n", pin)

	f := findLegacy(cs, now)
	if len(f.notes) > 0 {
		fmt.Fprintf(&b, "\nlegacy:\n")
		for _, n := range f.notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}

	name, why := configName(o.ServerName, host, leaf)
	fmt.Fprintf(&b, "\nTo trust this key, put in the upstream's config:\n\n")
	fmt.Fprintf(&b, "tls:\n")
	fmt.Fprintf(&b, "  server_name: %-21s # %s\n", name, why)
	fmt.Fprintf(&b, "  pins:\n")
	fmt.Fprintf(&b, "    - %-30s # leaf key; add the next key here before rotating\n", pin)
	for _, fl := range f.flags {
		fmt.Fprintf(&b, "  %-34s # %s\n", fl.yaml, fl.why)
	}
	fmt.Fprintf(&b, "\nThe pin is checked on every connection; it outlives certificate renewals that keep the key. ")
	fmt.Fprintf(&b, "The alternative is CA-based trust: ca: FILE (the private CA, or this self-signed certificate).\n")
	if len(f.flags) > 0 {
		var keys []string
		for _, fl := range f.flags {
			keys = append(keys, "tls."+fl.key)
		}
		fmt.Fprintf(&b, "warning: every start of drawbridge will log a warning for %s: each is a concession to this backend; remove it once the backend is fixed.\n", strings.Join(keys, ", "))
	}
	// A leaf without SANs is already explained under legacy.
	if transport.HasSAN(leaf) && leaf.VerifyHostname(name) != nil {
		fmt.Fprintf(&b, "note: the leaf has no SAN matching %q: pins still work, but ca-based trust would be refused with a name mismatch.\n", name)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// legacyFindings is what makes a backend old, and the config flags that let
// the gateway connect to it anyway.
type legacyFindings struct {
	notes []string
	flags []flag
}

type flag struct {
	key  string // under tls:
	yaml string // key: value
	why  string
}

// findLegacy lists what about cs an up-to-date client would refuse: a leaf
// without SANs, outside its validity period, SHA-1 (or MD5) signed or with
// a weak key, and a protocol version or cipher suite the gateway does not
// offer by default. Pinned, only the dates, version and suite need a flag.
func findLegacy(cs tls.ConnectionState, now time.Time) legacyFindings {
	var f legacyFindings
	leaf := cs.PeerCertificates[0]
	if !transport.HasSAN(leaf) {
		f.notes = append(f.notes, fmt.Sprintf("no SAN: the leaf has only CN=%q; Go matches names against SANs only, so ca trust would need tls.legacy_common_name: true (pinned, no name is checked)", leaf.Subject.CommonName))
	}
	switch {
	case now.After(leaf.NotAfter):
		date := leaf.NotAfter.UTC().Format(time.DateOnly)
		f.notes = append(f.notes, fmt.Sprintf("expired: on %s; only a pinned key can be trusted after that, with tls.accept_expired: true", date))
		f.flags = append(f.flags, flag{"accept_expired", "accept_expired: true", "the leaf expired on " + date})
	case now.Before(leaf.NotBefore):
		date := leaf.NotBefore.UTC().Format(time.RFC3339)
		f.notes = append(f.notes, fmt.Sprintf("not yet valid: from %s (is the backend's clock wrong?); only a pinned key can be trusted before that, with tls.accept_expired: true", date))
		f.flags = append(f.flags, flag{"accept_expired", "accept_expired: true", "the leaf is valid from " + date})
	}
	switch leaf.SignatureAlgorithm {
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1, x509.MD5WithRSA, x509.MD2WithRSA:
		f.notes = append(f.notes, fmt.Sprintf("weak signature: %s; pins do not depend on the certificate's signature, but ca trust refuses it", leaf.SignatureAlgorithm))
	}
	if k, ok := leaf.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		f.notes = append(f.notes, fmt.Sprintf("weak key: RSA %d bits, below 2048; the pin trusts whoever holds this key, so have it replaced with a longer one", k.N.BitLen()))
	}
	if cs.Version < tls.VersionTLS12 {
		v := strings.TrimPrefix(tls.VersionName(cs.Version), "TLS ")
		f.notes = append(f.notes, fmt.Sprintf("old protocol: the backend speaks at most %s; drawbridge needs tls.min_version: %q to connect", tls.VersionName(cs.Version), v))
		f.flags = append(f.flags, flag{"min_version", fmt.Sprintf("min_version: %q", v), "the backend speaks at most " + tls.VersionName(cs.Version)})
	}
	if transport.IsLegacyCipherSuite(cs.CipherSuite) {
		name := tls.CipherSuiteName(cs.CipherSuite)
		f.notes = append(f.notes, fmt.Sprintf("old cipher suite: the backend chose %s, which drawbridge offers only with tls.legacy_ciphers: true", name))
		f.flags = append(f.flags, flag{"legacy_ciphers", "legacy_ciphers: true", "the backend chose " + name})
	}
	return f
}

// configName picks the server_name to suggest, and says why.
func configName(serverName, host string, leaf *x509.Certificate) (name, why string) {
	switch {
	case serverName != "":
		return serverName, "the SNI used"
	case net.ParseIP(host) == nil:
		return host, "the SNI used"
	case len(leaf.DNSNames) > 0:
		return leaf.DNSNames[0], "the leaf's first DNS SAN"
	default:
		return host, "the dialed IP: the leaf has no DNS SAN"
	}
}

func describe(b *bytes.Buffer, i int, c *x509.Certificate, now time.Time) {
	role := "intermediate"
	if i == 0 {
		role = "leaf"
	}
	fmt.Fprintf(b, "\n[%d] %s\n", i, role)
	fmt.Fprintf(b, "    subject:    %s\n", c.Subject)
	fmt.Fprintf(b, "    SANs:       %s\n", sans(c))
	fmt.Fprintf(b, "    issuer:     %s\n", c.Issuer)
	fmt.Fprintf(b, "    not before: %s\n", c.NotBefore.UTC().Format(time.RFC3339))
	fmt.Fprintf(b, "    not after:  %s (%s)\n", c.NotAfter.UTC().Format(time.RFC3339), validity(c, now))
	if selfSigned(c) {
		fmt.Fprintf(b, "    self-signed\n")
	}
	fmt.Fprintf(b, "    key:        %s\n", keyDescription(c))
	fmt.Fprintf(b, "    signature:  %s\n", c.SignatureAlgorithm)
	fmt.Fprintf(b, "    pin:        %s\n", transport.SPKIPin(c))
}

func sans(c *x509.Certificate) string {
	var s []string
	for _, n := range c.DNSNames {
		s = append(s, "DNS:"+n)
	}
	for _, ip := range c.IPAddresses {
		s = append(s, "IP:"+ip.String())
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func validity(c *x509.Certificate, now time.Time) string {
	const day = 24 * time.Hour
	switch {
	case now.After(c.NotAfter):
		return fmt.Sprintf("EXPIRED %s ago", days(now.Sub(c.NotAfter)/day))
	case now.Before(c.NotBefore):
		return fmt.Sprintf("NOT YET VALID, starts in %s", days(c.NotBefore.Sub(now)/day))
	default:
		return fmt.Sprintf("%s left", days(c.NotAfter.Sub(now)/day))
	}
}

func days(n time.Duration) string {
	if n == 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", n)
}

// selfSigned reports whether c names itself as issuer and its signature
// verifies with its own key. CheckSignatureFrom is not used because it
// requires the signer to be a CA, which self-signed leaves are not.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

func keyDescription(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d bits", k.N.BitLen())
	case *ecdsa.PublicKey:
		return fmt.Sprintf("ECDSA %s (%d bits)", k.Curve.Params().Name, k.Curve.Params().BitSize)
	case ed25519.PublicKey:
		return "Ed25519 (256 bits)"
	default:
		return c.PublicKeyAlgorithm.String()
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
