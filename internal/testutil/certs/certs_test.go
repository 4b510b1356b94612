package certs

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
	"time"
)

func TestSelfSigned(t *testing.T) {
	t.Parallel()
	ca := SelfSigned(t, Options{IsCA: true})
	tests := []struct {
		desc string
		o    Options
	}{
		{desc: "ecdsa default", o: Options{DNSNames: []string{"backend.internal"}}},
		{desc: "rsa", o: Options{DNSNames: []string{"backend.internal"}, KeyType: "rsa"}},
		{desc: "ed25519", o: Options{DNSNames: []string{"backend.internal"}, KeyType: "ed25519"}},
		{desc: "ip only", o: Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}},
		{desc: "signed by ca", o: Options{DNSNames: []string{"backend.internal"}, Parent: ca}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			c := SelfSigned(t, tt.o)
			roots := c.Pool()
			if tt.o.Parent != nil {
				roots = tt.o.Parent.Pool()
			}
			name := "backend.internal"
			if len(tt.o.DNSNames) == 0 {
				name = "127.0.0.1"
			}
			if _, err := c.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
				t.Errorf("Cert.Verify(%q): got %v, want nil", name, err)
			}
			dir := t.TempDir()
			certPath, keyPath := c.WriteFiles(t, dir)
			if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
				t.Errorf("tls.LoadX509KeyPair(%q, %q): got %v, want nil", certPath, keyPath, err)
			}
			certPath2, _ := c.WriteFiles(t, dir)
			if certPath2 == certPath {
				t.Errorf("WriteFiles twice: got same path %q, want distinct", certPath)
			}
			if _, err := os.Stat(certPath); err != nil {
				t.Errorf("os.Stat(%q): %v", certPath, err)
			}
		})
	}
}

func TestValidityWindow(t *testing.T) {
	t.Parallel()
	past := time.Now().Add(-48 * time.Hour)
	c := SelfSigned(t, Options{DNSNames: []string{"x"}, NotBefore: past, NotAfter: past.Add(time.Hour)})
	if !c.Cert.NotAfter.Before(time.Now()) {
		t.Errorf("NotAfter: got %v, want in the past", c.Cert.NotAfter)
	}
}
