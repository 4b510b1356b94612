package acme_test

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/acme"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/pebbletest"
)

// TestHTTPChallengeHostApartFromTLSHost: with the HTTPS listener on one
// address and the plain-HTTP one on another, certmagic must not open a
// plaintext challenge socket of its own on the HTTPS host's HTTP port
// (it did when it was given the HTTPS host for both). While the CA's
// HTTP-01 request is being answered, that address must refuse
// connections.
func TestHTTPChallengeHostApartFromTLSHost(t *testing.T) {
	httpLn, err := net.Listen("tcp", "127.0.0.1:0") // the CA resolves every name to 127.0.0.1
	if err != nil {
		t.Fatal(err)
	}
	tlsLn, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("listening on 127.0.0.2: %v: CI machines route all of 127.0.0.0/8 to loopback", err)
		}
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	pebble := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(httpLn), TLSPort: port(tlsLn)})
	logs := &testutil.SyncBuffer{}
	m, err := acme.New(acme.Options{
		Name:           "public",
		Domains:        []string{domain},
		CA:             pebble.DirectoryURL(),
		CARootFile:     pebble.CAFile(),
		Storage:        t.TempDir(),
		ListenHost:     "127.0.0.2",
		HTTPListenHost: "127.0.0.1",
		TLSPort:        port(tlsLn),
		HTTPPort:       port(httpLn),
		DisableTLSALPN: true,
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	var probes, strayAccepted atomic.Int64
	stray := net.JoinHostPort("127.0.0.2", strconv.Itoa(port(httpLn)))
	httpSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			probes.Add(1)
			if c, err := net.DialTimeout("tcp", stray, time.Second); err == nil {
				c.Close()
				strayAccepted.Add(1)
			}
		}
		m.HTTPHandler(http.NotFoundHandler()).ServeHTTP(w, r)
	})}
	tlsSrv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		TLSConfig: &tls.Config{GetCertificate: m.GetCertificate},
		ErrorLog:  slog.NewLogLogger(slog.DiscardHandler, slog.LevelDebug),
	}
	go httpSrv.Serve(httpLn)
	go tlsSrv.ServeTLS(tlsLn, "", "")
	t.Cleanup(func() {
		httpSrv.Close()
		tlsSrv.Close()
	})
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)

	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsLn.Addr().String(),
			&tls.Config{ServerName: domain, RootCAs: pebble.IssuerRoots()})
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate after 60s: %v\nlogs:\n%s", err, logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if probes.Load() == 0 {
		t.Fatalf("the CA validated without an HTTP-01 request to the plain-HTTP listener")
	}
	if n := strayAccepted.Load(); n != 0 {
		t.Errorf("%s accepted connections during %d of %d challenges: certmagic opened its own challenge socket", stray, n, probes.Load())
	}
}
