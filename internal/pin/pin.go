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

// Run connects to o.Target, and writes to w the negotiated TLS version and
// ALPN protocol, each certificate the backend sent, a line
// "pin: sha256/<leaf SPKI hash>", and a YAML block for the upstream's tls
// config.
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

	name, why := configName(o.ServerName, host, leaf)
	fmt.Fprintf(&b, "\nTo trust this key, put in the upstream's config:\n\n")
	fmt.Fprintf(&b, "tls:\n")
	fmt.Fprintf(&b, "  server_name: %-21s # %s\n", name, why)
	fmt.Fprintf(&b, "  pins:\n")
	fmt.Fprintf(&b, "    - %-30s # leaf key; add the next key here before rotating\n", pin)
	fmt.Fprintf(&b, "\nThe pin is checked on every connection; it outlives certificate renewals that keep the key. ")
	fmt.Fprintf(&b, "The alternative is CA-based trust: ca: FILE (the private CA, or this self-signed certificate).\n")
	if err := leaf.VerifyHostname(name); err != nil {
		fmt.Fprintf(&b, "note: the leaf has no SAN matching %q: pins still work, but ca-based trust would be refused with a name mismatch.\n", name)
	}
	switch {
	case now.After(leaf.NotAfter):
		fmt.Fprintf(&b, "warning: the leaf expired on %s; drawbridge refuses expired certificates even when pinned, so this backend will get 502 until it serves a valid one.\n", leaf.NotAfter.UTC().Format(time.DateOnly))
	case now.Before(leaf.NotBefore):
		fmt.Fprintf(&b, "warning: the leaf is not valid before %s; drawbridge refuses it until then.\n", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	_, err := w.Write(b.Bytes())
	return err
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
