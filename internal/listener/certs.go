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

// Certs holds a listener's current certificate and swaps it atomically on
// reload. Handshakes read it without locking; reloads are serialized.
//
// The zero Certs holds no certificate; use [LoadCerts].
type Certs struct {
	certFile, keyFile string

	cur atomic.Pointer[tls.Certificate]

	// mu is held for a whole reload, from reading the files to calling
	// onLoad, so concurrent reloads cannot install their results out of
	// order. It also guards the fields below.
	mu sync.Mutex
	// sum is the fingerprint of the PEM bytes cur was parsed from; Watch
	// compares against it to skip events that did not change the files.
	sum [sha256.Size]byte
	// onLoad, if set, is called with the leaf after every successful load,
	// with mu held.
	onLoad func(leaf *x509.Certificate)
}

// LoadCerts reads a PEM certificate (optionally followed by its
// intermediates, leaf first) and its private key (PKCS#8, PKCS#1 or SEC 1;
// RSA, ECDSA or Ed25519). Errors name the file and say what is wrong.
func LoadCerts(certFile, keyFile string) (*Certs, error) {
	c := &Certs{certFile: certFile, keyFile: keyFile}
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

// Reload reads both files again and, if they hold a valid pair, makes it
// the certificate for new handshakes. On error the previous certificate
// stays in use and the error is returned.
func (c *Certs) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	certPEM, keyPEM, err := c.readFiles()
	if err != nil {
		return err
	}
	_, err = c.loadLocked(certPEM, keyPEM)
	return err
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
	c.sum = fingerprint(certPEM, keyPEM)
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
	var chain []*x509.Certificate
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
			return nil, fmt.Errorf("certificate file %q: parsing certificate %d: %w", file, len(chain)+1, err)
		}
		chain = append(chain, c)
	}
	if len(chain) > 0 {
		return chain, nil
	}
	if sawKey {
		return nil, fmt.Errorf("certificate file %q: no CERTIFICATE PEM block, but found a private key; were the certificate and key files switched?", file)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("certificate file %q: file is empty", file)
	}
	return nil, fmt.Errorf("certificate file %q: no PEM data with type CERTIFICATE", file)
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
