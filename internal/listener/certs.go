package listener

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
)

// Certs holds a listener's current certificate and, for listeners that
// take client certificates, the client CAs and the revoked list, and swaps
// each atomically on reload. Handshakes read them without locking; reloads
// are serialized.
//
// The zero Certs holds no certificate; use [LoadCerts].
type Certs struct {
	certFile, keyFile string
	// clientCAFile and revokedFile are empty unless the listener was
	// created with them (see [Options]).
	clientCAFile, revokedFile string
	// managedOnly is set for a listener whose certificates all come from
	// [Options.Managed]: it has no certificate files to load.
	managedOnly bool

	cur       atomic.Pointer[tls.Certificate]
	clientCAs atomic.Pointer[clientCAs]
	revoked   atomic.Pointer[revokedSet]

	// mu is held for a whole reload, from reading the files to calling
	// onLoad, so concurrent reloads cannot install their results out of
	// order. It also guards the fields below.
	mu sync.Mutex
	// sums are the fingerprints of the file contents each part was last
	// loaded from; Watch compares against them to skip events that did not
	// change the files.
	sums [numParts][sha256.Size]byte
	// onLoad, if set, is called with the leaf after every successful load,
	// with mu held.
	onLoad func(leaf *x509.Certificate)
}

// part is one independently reloaded piece of a listener's TLS material.
// A broken file keeps only its own part at the previous version, so that,
// say, a typo in the client CA file does not hold back a revocation.
type part int

// Parts in the order a reload installs them: revocations first, so a new
// CA or certificate is never live with an older revoked list than the one
// on disk beside it.
const (
	partRevoked part = iota
	partClientCAs
	partCert
	numParts
)

func (p part) String() string {
	switch p {
	case partRevoked:
		return "revoked file"
	case partClientCAs:
		return "client CA file"
	default:
		return "certificate"
	}
}

// LoadCerts reads a PEM certificate (optionally followed by its
// intermediates, leaf first) and its private key (PKCS#8, PKCS#1 or SEC 1;
// RSA, ECDSA or Ed25519). Errors name the file and say what is wrong.
func LoadCerts(certFile, keyFile string) (*Certs, error) {
	return loadCerts(&Certs{certFile: certFile, keyFile: keyFile})
}

// loadCerts does the first load of c, whose file names are set.
func loadCerts(c *Certs) (*Certs, error) {
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// GetCertificate returns the current certificate. It has the signature of
// [tls.Config.GetCertificate].
func (c *Certs) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert := c.cur.Load()
	if cert == nil {
		return nil, errors.New("listener: no certificate loaded")
	}
	return cert, nil
}

// Leaf returns the current leaf certificate, or nil if none is loaded.
func (c *Certs) Leaf() *x509.Certificate {
	cert := c.cur.Load()
	if cert == nil {
		return nil
	}
	return cert.Leaf
}

// Reload reads the files again and makes each that is valid current for
// new handshakes: the certificate and key (as a pair) and, if the listener
// has them, the client CA file and the revoked file. A file with an error
// leaves its previous version in use; the error names it, and errors from
// several files are joined.
func (c *Certs) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, p := range c.parts() {
		if _, err := c.reloadPartLocked(p, nil); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Revoked reports whether cert's [Fingerprint] is in the revoked list
// currently loaded. The listener refuses revoked certificates at the
// handshake; this lets a handler also refuse requests on connections
// established before the certificate was revoked.
func (c *Certs) Revoked(cert *x509.Certificate) bool {
	return cert != nil && c.revokedFingerprint(Fingerprint(cert))
}

func (c *Certs) revokedFingerprint(fp string) bool {
	set := c.revoked.Load()
	if set == nil {
		return false
	}
	_, ok := (*set)[fp]
	return ok
}

// parts lists the parts c has files for, in load order.
func (c *Certs) parts() []part {
	var ps []part
	if c.revokedFile != "" {
		ps = append(ps, partRevoked)
	}
	if c.clientCAFile != "" {
		ps = append(ps, partClientCAs)
	}
	if c.managedOnly {
		return ps
	}
	return append(ps, partCert)
}

// reloadPartLocked reads p's files and installs them. With lastFailed
// (from Watch) it skips files that hold what was last loaded or what last
// failed to load, so unrelated events in the directory and a broken file
// left in place do not cause repeated reloads or log lines. c.mu must be
// held.
func (c *Certs) reloadPartLocked(p part, lastFailed *[numParts][sha256.Size]byte) (tried bool, err error) {
	data, sum, err := c.readPart(p)
	if err != nil {
		// A file may be missing for a moment while it is replaced; the
		// event that completes the replacement triggers another check.
		return true, err
	}
	if lastFailed != nil && (sum == c.sums[p] || sum == lastFailed[p]) {
		return false, nil
	}
	if err := c.installLocked(p, data); err != nil {
		if lastFailed != nil {
			lastFailed[p] = sum
		}
		return true, err
	}
	c.sums[p] = sum
	return true, nil
}

func (c *Certs) readPart(p part) (data [][]byte, sum [sha256.Size]byte, err error) {
	var file string
	switch p {
	case partCert:
		certPEM, keyPEM, err := c.readFiles()
		if err != nil {
			return nil, sum, err
		}
		return [][]byte{certPEM, keyPEM}, fingerprint(certPEM, keyPEM), nil
	case partClientCAs:
		file = c.clientCAFile
	case partRevoked:
		file = c.revokedFile
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, sum, fmt.Errorf("reading %s: %w", p, err)
	}
	return [][]byte{b}, sha256.Sum256(b), nil
}

// installLocked parses what readPart returned and makes it current.
func (c *Certs) installLocked(p part, data [][]byte) error {
	switch p {
	case partCert:
		_, err := c.loadLocked(data[0], data[1])
		return err
	case partClientCAs:
		cas, err := parseClientCAs(c.clientCAFile, data[0])
		if err != nil {
			return err
		}
		c.clientCAs.Store(cas)
	case partRevoked:
		set, err := parseRevoked(c.revokedFile, data[0])
		if err != nil {
			return err
		}
		c.revoked.Store(&set)
	}
	return nil
}

func (c *Certs) readFiles() (certPEM, keyPEM []byte, err error) {
	if c.certFile == "" || c.keyFile == "" {
		return nil, nil, errors.New("listener: certificate and key file names are required")
	}
	certPEM, err = os.ReadFile(c.certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("reading certificate: %w", err)
	}
	keyPEM, err = os.ReadFile(c.keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("reading key: %w", err)
	}
	return certPEM, keyPEM, nil
}

// loadLocked parses the pair and installs it. c.mu must be held.
func (c *Certs) loadLocked(certPEM, keyPEM []byte) (*x509.Certificate, error) {
	cert, err := parsePair(c.certFile, certPEM, c.keyFile, keyPEM)
	if err != nil {
		return nil, err
	}
	c.cur.Store(cert)
	if c.onLoad != nil {
		c.onLoad(cert.Leaf)
	}
	return cert.Leaf, nil
}

// setOnLoad installs f and calls it for the certificate already loaded, so
// a caller that sets it after LoadCerts still sees every certificate.
func (c *Certs) setOnLoad(f func(*x509.Certificate)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onLoad = f
	if cur := c.cur.Load(); cur != nil && f != nil {
		f(cur.Leaf)
	}
}

func fingerprint(certPEM, keyPEM []byte) [sha256.Size]byte {
	h := sha256.New()
	h.Write(certPEM)
	// The separator keeps "ab"+"c" and "a"+"bc" apart.
	h.Write([]byte{0})
	h.Write(keyPEM)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// parsePair builds a tls.Certificate from PEM data. It does the work of
// tls.X509KeyPair itself so that each error can name the file at fault.
func parsePair(certFile string, certPEM []byte, keyFile string, keyPEM []byte) (*tls.Certificate, error) {
	chain, err := parseChain(certFile, certPEM)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(keyFile, keyPEM)
	if err != nil {
		return nil, err
	}
	leaf := chain[0]
	if !publicKeyMatches(leaf.PublicKey, key.Public()) {
		for i, c := range chain[1:] {
			if publicKeyMatches(c.PublicKey, key.Public()) {
				return nil, fmt.Errorf("certificate file %q: key in %q matches certificate %d (%s), not the first; put the leaf certificate first, then its intermediates",
					certFile, keyFile, i+2, c.Subject)
			}
		}
		return nil, fmt.Errorf("key in %q does not match certificate in %q (%s)", keyFile, certFile, leaf.Subject)
	}
	ders := make([][]byte, len(chain))
	for i, c := range chain {
		ders[i] = c.Raw
	}
	return &tls.Certificate{Certificate: ders, PrivateKey: key, Leaf: leaf}, nil
}

func parseChain(file string, data []byte) ([]*x509.Certificate, error) {
	chain, err := parseCertificates("certificate file", file, data)
	if err != nil {
		return nil, err
	}
	if chain == nil {
		return nil, fmt.Errorf("certificate file %q: no CERTIFICATE PEM block, but found a private key; were the certificate and key files switched?", file)
	}
	return chain, nil
}

// parseCertificates parses every CERTIFICATE block of data, in order. It
// returns nil, nil when data has none but holds a private key, so the
// caller can say which mix-up that is; other empty inputs are errors.
// what names the file's role in messages ("certificate file").
func parseCertificates(what, file string, data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	sawKey := false
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			sawKey = true
			continue
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s %q: parsing certificate %d: %w", what, file, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	switch {
	case len(certs) > 0:
		return certs, nil
	case sawKey:
		return nil, nil
	case len(bytes.TrimSpace(data)) == 0:
		return nil, fmt.Errorf("%s %q: file is empty", what, file)
	}
	return nil, fmt.Errorf("%s %q: no PEM data with type CERTIFICATE", what, file)
}

func parseKey(file string, data []byte) (crypto.Signer, error) {
	sawCert := false
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			sawCert = true
			continue
		}
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			// Skips e.g. the "EC PARAMETERS" block openssl writes first.
			continue
		}
		if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, fmt.Errorf("key file %q: key is encrypted; decrypt it first (e.g. openssl pkey -in KEY -out KEY.plain)", file)
		}
		key, err := parseKeyBlock(block)
		if err != nil {
			return nil, fmt.Errorf("key file %q: parsing %s: %w", file, block.Type, err)
		}
		return key, nil
	}
	if sawCert {
		return nil, fmt.Errorf("key file %q: no PRIVATE KEY PEM block, but found a certificate; were the certificate and key files switched?", file)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("key file %q: file is empty", file)
	}
	return nil, fmt.Errorf("key file %q: no PEM data with type PRIVATE KEY", file)
}

func parseKeyBlock(block *pem.Block) (crypto.Signer, error) {
	var (
		key any
		err error
	)
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported key type %T; use RSA, ECDSA or Ed25519", key)
	}
}

func publicKeyMatches(certKey any, key crypto.PublicKey) bool {
	pk, ok := certKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pk.Equal(key)
}
