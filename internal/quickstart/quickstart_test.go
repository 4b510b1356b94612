package quickstart

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQuickstart runs the demo as a newcomer would and follows its
// printed instructions: the curl line's request works through a gateway
// that verifies the self-signed backend, and an unknown path gets 403.
func TestQuickstart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type ready struct {
		addr     net.Addr
		dir, key string
	}
	readyCh := make(chan ready, 1)
	var stdout strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, &stdout, io.Discard, Options{Addr: "127.0.0.1:0", Ready: func(a net.Addr, dir, key string) { readyCh <- ready{a, dir, key} }})
	}()
	var r ready
	select {
	case r = <-readyCh:
	case err := <-done:
		t.Fatalf("quickstart exited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("quickstart did not start")
	}
	for _, want := range []string{"backend pin    sha256/", "curl --cacert"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("quickstart output lacks %q:\n%s", want, stdout.String())
		}
	}
	caPEM, err := os.ReadFile(filepath.Join(r.dir, "gateway.crt"))
	if err != nil {
		t.Fatalf("the printed --cacert file: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 10 * time.Second}
	base := "https://localhost:" + strings.TrimPrefix(r.addr.String(), "127.0.0.1:")

	if !strings.Contains(stdout.String(), "x-api-key: "+r.key) {
		t.Errorf("quickstart output does not show the curl with the demo key:\n%s", stdout.String())
	}
	resp, err := client.Get(base + "/orders/42")
	if err != nil {
		t.Fatalf("GET /orders/42 without a key: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("GET /orders/42 without a key: got %d, want 403", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", base+"/orders/42", nil)
	req.Header.Set("x-api-key", r.key)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("GET /orders/42: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"path":"/api/v1/orders/42"`) {
		t.Errorf("GET /orders/42: got %d %s, want 200 from the backend at /api/v1/orders/42", resp.StatusCode, body)
	}
	resp, err = client.Get(base + "/nowhere")
	if err != nil {
		t.Fatalf("GET /nowhere: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || string(body) != `{"message":"Missing Authentication Token"}` {
		t.Errorf("GET /nowhere: got %d %s, want API Gateway's 403", resp.StatusCode, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("quickstart after Ctrl-C: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("quickstart did not stop")
	}
	if _, err := os.Stat(r.dir); !os.IsNotExist(err) {
		t.Errorf("quickstart left %s behind", r.dir)
	}
}
