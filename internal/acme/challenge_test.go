package acme_test

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/acme"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
)

// TestChallengeHelloCannotFloodLogs: anyone may send a ClientHello whose
// only protocol is acme-tls/1. For a name the manager does not manage it
// fails at once, without reaching certmagic (which would read storage and
// log an error); for a managed name with no validation under way,
// certmagic's error is logged at warn once, then at debug. No CA is
// contacted: the manager is never started.
func TestChallengeHelloCannotFloodLogs(t *testing.T) {
	t.Parallel()
	logs := &testutil.SyncBuffer{}
	m, err := acme.New(acme.Options{
		Name:     "public",
		Domains:  []string{domain},
		CA:       "https://127.0.0.1:1/directory", // never contacted
		Storage:  t.TempDir(),
		TLSPort:  443,
		HTTPPort: 80,
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		NextProtos:     []string{"h2", "http/1.1", acme.ALPNProtocol},
		GetCertificate: m.GetCertificate,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	hello := func(name string) error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(),
			&tls.Config{ServerName: name, InsecureSkipVerify: true, NextProtos: []string{acme.ALPNProtocol}})
		if err == nil {
			conn.Close()
		}
		return err
	}

	for i := range 5 {
		name := fmt.Sprintf("%s.random.example", rand.Text()[:10])
		if err := hello(name); err == nil {
			t.Errorf("acme-tls/1 hello %d for unmanaged %s: handshake succeeded, want an alert", i, name)
		}
	}
	if got := logs.String(); strings.Contains(got, "tls-alpn challenge") || strings.Contains(got, "level=ERROR") {
		t.Errorf("acme-tls/1 hellos for unmanaged names reached certmagic or logged an error:\n%s", got)
	}

	for i := range 3 {
		if err := hello(domain); err == nil {
			t.Errorf("acme-tls/1 hello %d for %s with no validation under way: handshake succeeded, want an alert", i, domain)
		}
	}
	testutil.WaitFor(t, "certmagic's tls-alpn lines", func() bool {
		return strings.Count(logs.String(), `msg="tls-alpn challenge"`) == 3
	})
	got := logs.String()
	if n := strings.Count(got, `level=WARN msg="tls-alpn challenge"`); n != 1 {
		t.Errorf("tls-alpn challenge at warn: %d lines, want 1 (then debug):\n%s", n, got)
	}
	if strings.Contains(got, "level=ERROR") {
		t.Errorf("an error line was logged:\n%s", got)
	}
}
