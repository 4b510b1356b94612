package listener

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCertsKeyFormats(t *testing.T) {
	ca := newCA(t)
	rsaLeaf, rsaKey := ca.leaf(t, "rsa")
	ecLeaf, ecKey := ca.leaf(t, "ecdsa")
	edLeaf, edKey := ca.leaf(t, "ed25519")
	ecDER, err := x509.MarshalECPrivateKey(ecKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc string
		leaf *x509.Certificate
		key  []byte
	}{
		{desc: "RSA PKCS#8", leaf: rsaLeaf, key: keyPEM(t, rsaKey)},
		{desc: "RSA PKCS#1", leaf: rsaLeaf, key: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey.(*rsa.PrivateKey))})},
		{desc: "ECDSA PKCS#8", leaf: ecLeaf, key: keyPEM(t, ecKey)},
		{desc: "ECDSA SEC 1 after EC PARAMETERS", leaf: ecLeaf, key: append(
			pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})...)},
		{desc: "Ed25519 PKCS#8", leaf: edLeaf, key: keyPEM(t, edKey)},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			certFile := filepath.Join(dir, "c.pem")
			keyFile := filepath.Join(dir, "k.pem")
			writeFile(t, certFile, certPEM(tc.leaf))
			writeFile(t, keyFile, tc.key)
			c, err := LoadCerts(certFile, keyFile)
			if err != nil {
				t.Fatalf("LoadCerts: %v", err)
			}
			if got, want := c.Leaf().SerialNumber, tc.leaf.SerialNumber; got.Cmp(want) != 0 {
				t.Errorf("Leaf().SerialNumber: got %v, want %v", got, want)
			}
			got, err := c.GetCertificate(nil)
			if err != nil {
				t.Fatalf("GetCertificate: %v", err)
			}
			if got.PrivateKey == nil || len(got.Certificate) != 1 {
				t.Errorf("GetCertificate: got %d certs and key %T, want 1 cert and a key", len(got.Certificate), got.PrivateKey)
			}
		})
	}
}

func TestLoadCertsErrors(t *testing.T) {
	ca := newCA(t)
	inter := ca.intermediate(t)
	leaf, key := inter.leaf(t, "ecdsa")
	_, otherKey := ca.leaf(t, "ecdsa")
	goodCert, goodKey := certPEM(leaf, inter.cert), keyPEM(t, key)
	interKey := keyPEM(t, inter.key)

	tests := []struct {
		desc       string
		cert, key  []byte
		noCertFile bool
		want       []string // substrings of the error; "CERT" and "KEY" stand for the paths
	}{
		{desc: "key does not match", cert: goodCert, key: keyPEM(t, otherKey),
			want: []string{`key in "KEY" does not match certificate in "CERT"`}},
		{desc: "leaf not first", cert: certPEM(inter.cert, leaf), key: goodKey,
			want: []string{`"CERT"`, "matches certificate 2", "leaf certificate first"}},
		{desc: "key of intermediate", cert: goodCert, key: interKey,
			want: []string{`"CERT"`, "matches certificate 2"}},
		{desc: "garbage certificate", cert: []byte("not a certificate\n"), key: goodKey,
			want: []string{`certificate file "CERT"`, "no PEM data"}},
		{desc: "empty certificate", cert: nil, key: goodKey,
			want: []string{`certificate file "CERT"`, "empty"}},
		{desc: "garbage key", cert: goodCert, key: []byte("-----BEGIN NONSENSE-----\n"),
			want: []string{`key file "KEY"`, "no PEM data"}},
		{desc: "files switched", cert: goodKey, key: goodCert,
			want: []string{`certificate file "CERT"`, "switched"}},
		{desc: "certificate DER corrupt", cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), key: goodKey,
			want: []string{`certificate file "CERT"`, "parsing certificate 1"}},
		{desc: "encrypted key", cert: goodCert, key: pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}),
			want: []string{`key file "KEY"`, "encrypted"}},
		{desc: "missing file", noCertFile: true, key: goodKey,
			want: []string{"reading certificate", "CERT"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			certFile := filepath.Join(dir, "c.pem")
			keyFile := filepath.Join(dir, "k.pem")
			if !tc.noCertFile {
				writeFile(t, certFile, tc.cert)
			}
			writeFile(t, keyFile, tc.key)
			c, err := LoadCerts(certFile, keyFile)
			if err == nil {
				t.Fatalf("LoadCerts: got %v, nil error; want error", c)
			}
			for _, w := range tc.want {
				w = strings.ReplaceAll(w, "CERT", certFile)
				w = strings.ReplaceAll(w, "KEY", keyFile)
				if !strings.Contains(err.Error(), w) {
					t.Errorf("LoadCerts(%q, %q): got error %q, want it to contain %q", certFile, keyFile, err, w)
				}
			}
		})
	}
}

func TestReloadExplicit(t *testing.T) {
	ca := newCA(t)
	leafA, keyA := ca.leaf(t, "ecdsa")
	leafB, keyB := ca.leaf(t, "rsa")
	certFile, keyFile := certFiles(t, t.TempDir(), keyA, leafA)

	var loaded []string
	s := startServer(t, Options{
		CertFile: certFile, KeyFile: keyFile,
		OnCertLoaded: func(name string, leaf *x509.Certificate) {
			loaded = append(loaded, name+"/"+leaf.SerialNumber.String())
		},
	}, nil)
	addr := s.Addr().String()
	if got, want := servedSerial(t, addr, ca.pool()), leafA.SerialNumber.String(); got != want {
		t.Fatalf("serial before reload: got %s, want %s", got, want)
	}

	// Nothing is watching: the new files take effect only on Reload.
	writeFile(t, certFile, certPEM(leafB))
	writeFile(t, keyFile, keyPEM(t, keyB))
	if err := s.Certs().Reload(); err != nil {
		t.Fatalf("Reload(): %v", err)
	}
	if got, want := servedSerial(t, addr, ca.pool()), leafB.SerialNumber.String(); got != want {
		t.Errorf("serial after Reload(): got %s, want %s", got, want)
	}

	// A broken file is reported and the current certificate stays.
	writeFile(t, certFile, []byte("garbage"))
	if err := s.Certs().Reload(); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Errorf("Reload() with garbage certificate: got %v, want error naming %q", err, certFile)
	}
	if got, want := s.Certs().Leaf().SerialNumber.String(), leafB.SerialNumber.String(); got != want {
		t.Errorf("Leaf() after failed Reload(): got serial %s, want %s", got, want)
	}
	if got, want := servedSerial(t, addr, ca.pool()), leafB.SerialNumber.String(); got != want {
		t.Errorf("serial after failed Reload(): got %s, want %s", got, want)
	}

	want := []string{"test/" + leafA.SerialNumber.String(), "test/" + leafB.SerialNumber.String()}
	if strings.Join(loaded, " ") != strings.Join(want, " ") {
		t.Errorf("OnCertLoaded calls: got %q, want %q", loaded, want)
	}
}

func TestZeroCerts(t *testing.T) {
	var c Certs
	if _, err := c.GetCertificate(nil); err == nil {
		t.Error("(&Certs{}).GetCertificate(nil): got nil error, want error")
	}
	if got := c.Leaf(); got != nil {
		t.Errorf("(&Certs{}).Leaf(): got %v, want nil", got)
	}
	if err := c.Reload(); err == nil {
		t.Error("(&Certs{}).Reload(): got nil error, want error")
	}
}

func TestNewErrors(t *testing.T) {
	ca := newCA(t)
	leaf, key := ca.leaf(t, "ecdsa")
	_, other := ca.leaf(t, "ecdsa")
	dir := t.TempDir()
	certFile, keyFile := certFiles(t, dir, key, leaf)
	badKey := filepath.Join(dir, "other.key")
	if err := os.WriteFile(badKey, keyPEM(t, other), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		desc string
		o    Options
		want string
	}{
		{desc: "key does not match", o: Options{Name: "public", Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: badKey},
			want: `listener "public": key in "` + badKey + `" does not match certificate in "` + certFile + `"`},
		{desc: "TLS 1.1", o: Options{Name: "public", Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, MinVersion: 0x0302},
			want: "TLS 1.1 is not allowed"},
		{desc: "no address", o: Options{Name: "public", CertFile: certFile, KeyFile: keyFile},
			want: "address is required"},
		{desc: "negative timeout", o: Options{Name: "public", Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile, IdleTimeout: -1},
			want: "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			s, err := New(tc.o, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%+v): got (%v, %v), want error containing %q", tc.o, s, err, tc.want)
			}
		})
	}
}
