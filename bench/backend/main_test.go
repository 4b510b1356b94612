package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a self-signed certificate for backend.internal and
// 127.0.0.1, like the one bench/run.sh makes with openssl.
func selfSigned(t *testing.T) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "backend.internal"},
		DNSNames:     []string{"backend.internal"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

func TestServer(t *testing.T) {
	cert, leaf := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(cert)
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })

	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "backend.internal"},
		},
	}
	t.Cleanup(client.CloseIdleConnections)

	tests := []struct {
		desc   string
		method string
		path   string
		body   string
	}{
		{desc: "root", method: http.MethodGet, path: "/"},
		{desc: "proxy path", method: http.MethodGet, path: "/api/orders/42"},
		{desc: "post with body", method: http.MethodPost, path: "/api/orders", body: `{"n":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "https://"+ln.Addr().String()+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.path, err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading body: %v", err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s %s: got status %d, want %d", tt.method, tt.path, resp.StatusCode, http.StatusOK)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s %s: got Content-Type %q, want %q", tt.method, tt.path, ct, "application/json")
			}
			if len(got) < 90 || len(got) > 120 {
				t.Errorf("%s %s: got %d-byte body, want about 100 bytes", tt.method, tt.path, len(got))
			}
			if !json.Valid(got) {
				t.Errorf("%s %s: got body %q, want valid JSON", tt.method, tt.path, got)
			}
		})
	}
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		desc string
		args []string
		want string
	}{
		{desc: "no cert", args: []string{"-addr", "127.0.0.1:0"}, want: "-cert and -key are required"},
		{desc: "missing files", args: []string{"-addr", "127.0.0.1:0", "-cert", "/nonexistent/c.pem", "-key", "/nonexistent/k.pem"}, want: "loading key pair"},
		{desc: "bad flag", args: []string{"-nope"}, want: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			err := run(tt.args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q): got error %v, want one containing %q", tt.args, err, tt.want)
			}
		})
	}
}
