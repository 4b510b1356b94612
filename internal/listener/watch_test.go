package listener

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// watch runs c.Watch until the test ends and reports each reload attempt.
func watch(t *testing.T, c *Certs, logger *slog.Logger) <-chan error {
	t.Helper()
	results := make(chan error, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Watch(ctx, logger, func(_ *x509.Certificate, err error) {
			select {
			case results <- err:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return results
}

func TestWatchRenameKeepsOpenConnections(t *testing.T) {
	ca := newCA(t)
	leafA, keyA := ca.leaf(t, "ecdsa")
	leafB, keyB := ca.leaf(t, "ecdsa")
	certFile, keyFile := certFiles(t, t.TempDir(), keyA, leafA)
	s := startServer(t, Options{CertFile: certFile, KeyFile: keyFile},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	url := "https://" + s.Addr().String() + "/"
	watch(t, s.Certs(), discardLogger())

	// A keep-alive connection opened before the swap.
	old := newClient(t, ca.pool(), false)
	resp, _ := get(t, old, url)
	if got, want := resp.TLS.PeerCertificates[0].SerialNumber, leafA.SerialNumber; got.Cmp(want) != 0 {
		t.Fatalf("first request: got serial %v, want %v", got, want)
	}

	// Twice: Watch checks the files once after its watches are set up, so
	// the first replacement may be found by that check rather than by an
	// event; the second can only be found by an event.
	for i := range 2 {
		leaf, key := leafB, keyB
		if i == 1 {
			leaf, key = ca.leaf(t, "rsa")
		}
		writeFile(t, keyFile, keyPEM(t, key))
		writeFile(t, certFile, certPEM(leaf))
		waitFor(t, fmt.Sprintf("new handshakes to see replacement %d", i+1), func() bool {
			return servedSerial(t, s.Addr().String(), ca.pool()) == leaf.SerialNumber.String()
		})
	}

	var reused bool
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused },
	}))
	resp, err = old.Do(req)
	if err != nil {
		t.Fatalf("request on the old connection after reload: %v", err)
	}
	resp.Body.Close()
	if !reused {
		t.Error("request after reload: got a new connection, want the kept-alive one reused")
	}
	if got, want := resp.TLS.PeerCertificates[0].SerialNumber, leafA.SerialNumber; got.Cmp(want) != 0 {
		t.Errorf("request on old connection: got serial %v, want %v (the connection's original)", got, want)
	}
}

// TestWatchSymlinkSwap replaces the files the way Kubernetes updates a
// mounted secret: the names are symlinks through "..data", which is
// itself a symlink renamed atomically to a new timestamped directory.
func TestWatchSymlinkSwap(t *testing.T) {
	ca := newCA(t)
	leafA, keyA := ca.leaf(t, "ecdsa")
	leafB, keyB := ca.leaf(t, "ed25519")
	dir := t.TempDir()
	version := func(name string, leaf *x509.Certificate, key crypto.Signer) {
		t.Helper()
		vdir := filepath.Join(dir, name)
		if err := os.Mkdir(vdir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(vdir, "tls.crt"), certPEM(leaf), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(vdir, "tls.key"), keyPEM(t, key), 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", leafA, keyA)
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}

	c, err := LoadCerts(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatalf("LoadCerts: %v", err)
	}
	results := watch(t, c, discardLogger())
	// Twice, so that the second swap can only be seen through an event
	// (see TestWatchRenameKeepsOpenConnections).
	leafC, keyC := ca.leaf(t, "rsa")
	for i, v := range []struct {
		leaf *x509.Certificate
		key  crypto.Signer
	}{{leafB, keyB}, {leafC, keyC}} {
		version(fmt.Sprintf("..v%d", i+2), v.leaf, v.key)
		select {
		case err := <-results:
			if err != nil {
				t.Fatalf("reload after symlink swap %d: %v", i+1, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for a reload after symlink swap %d", i+1)
		}
		if got, want := c.Leaf().SerialNumber, v.leaf.SerialNumber; got.Cmp(want) != 0 {
			t.Errorf("Leaf().SerialNumber after swap %d: got %v, want %v", i+1, got, want)
		}
	}
}

func TestWatchBrokenReplacementKeepsOldCert(t *testing.T) {
	ca := newCA(t)
	leaf, key := ca.leaf(t, "ecdsa")
	certFile, keyFile := certFiles(t, t.TempDir(), key, leaf)
	var logs logBuffer
	s := startServer(t, Options{CertFile: certFile, KeyFile: keyFile}, nil)
	results := watch(t, s.Certs(), logs.logger(slog.LevelInfo))

	writeFile(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n"))
	select {
	case err := <-results:
		if err == nil || !strings.Contains(err.Error(), certFile) {
			t.Fatalf("reload of garbage certificate: got %v, want error naming %q", err, certFile)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the failed reload")
	}
	if got := logs.String(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "keeping the previous one") {
		t.Errorf("log after failed reload: got %q, want an ERROR saying the previous certificate is kept", got)
	}
	if got, want := servedSerial(t, s.Addr().String(), ca.pool()), leaf.SerialNumber.String(); got != want {
		t.Errorf("serial after broken replacement: got %s, want %s", got, want)
	}
}
