package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Options describes the certificate to generate. The zero value gives an
// ECDSA P-256 leaf, valid from an hour ago for a day, with no SANs.
type Options struct {
	// CommonName is the subject CN. If empty, the first DNS name is used,
	// or "drawbridge test CA" / "drawbridge test" when there is none.
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	// NotBefore defaults to one hour ago, NotAfter to 24 hours from now.
	// Set them in the past or future to get expired or not-yet-valid certs.
	NotBefore, NotAfter time.Time
	// IsCA makes a certificate that can sign others (basic constraints CA,
	// key usage cert sign).
	IsCA bool
	// Parent signs the certificate. If nil, it is self-signed.
	Parent *Cert
	// KeyType is "ecdsa" (default, P-256), "rsa" (2048 bits) or "ed25519".
	KeyType string
}

// Cert is a generated certificate with its key, in every form tests need.
type Cert struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte // just this certificate, not its parent
	KeyPEM  []byte // PKCS #8
	// TLS serves the certificate, followed by its parent when there is one,
	// as servers usually send intermediates.
	TLS tls.Certificate
}

// SelfSigned generates a certificate as o describes, signed by o.Parent or by
// itself. It stops the test on any error.
func SelfSigned(t testing.TB, o Options) *Cert {
	t.Helper()
	key, err := newKey(o.KeyType)
	if err != nil {
		t.Fatalf("certs.SelfSigned: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatalf("certs.SelfSigned: generating serial: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName(o), Organization: []string{"drawbridge tests"}},
		DNSNames:              o.DNSNames,
		IPAddresses:           o.IPs,
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		BasicConstraintsValid: true,
		IsCA:                  o.IsCA,
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = now.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = now.Add(24 * time.Hour)
	}
	if o.IsCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		if _, ok := key.(*rsa.PrivateKey); ok {
			tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}

	parent, signer := tmpl, crypto.Signer(key)
	if o.Parent != nil {
		parent, signer = o.Parent.Cert, o.Parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatalf("certs.SelfSigned: creating certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("certs.SelfSigned: parsing certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("certs.SelfSigned: marshaling key: %v", err)
	}
	c := &Cert{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		TLS:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert},
	}
	if o.Parent != nil {
		c.TLS.Certificate = append(c.TLS.Certificate, o.Parent.Cert.Raw)
	}
	return c
}

// Pool returns a certificate pool holding only c, for use as RootCAs or
// ClientCAs.
func (c *Cert) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Cert)
	return p
}

// WriteFiles writes c's certificate and key as PEM files into dir and returns
// their paths. Names are unique, so several certs can share one dir.
func (c *Cert) WriteFiles(t testing.TB, dir string) (certPath, keyPath string) {
	t.Helper()
	certPath = writeTemp(t, dir, "cert-*.pem", c.CertPEM)
	keyPath = writeTemp(t, dir, "key-*.pem", c.KeyPEM)
	return certPath, keyPath
}

func writeTemp(t testing.TB, dir, pattern string, data []byte) string {
	t.Helper()
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		t.Fatalf("certs.WriteFiles: %v", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		t.Fatalf("certs.WriteFiles: writing %s: %v", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("certs.WriteFiles: closing %s: %v", f.Name(), err)
	}
	return filepath.Clean(f.Name())
}

func commonName(o Options) string {
	switch {
	case o.CommonName != "":
		return o.CommonName
	case len(o.DNSNames) > 0:
		return o.DNSNames[0]
	case o.IsCA:
		return "drawbridge test CA"
	default:
		return "drawbridge test"
	}
}

func newKey(keyType string) (crypto.Signer, error) {
	switch keyType {
	case "", "ecdsa":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	default:
		return nil, fmt.Errorf("unknown key type %q: want \"ecdsa\", \"rsa\" or \"ed25519\"", keyType)
	}
}
