package acme_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/acme"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/pebbletest"
)

const domain = "api.example.com"

// rig is a gateway's two sockets, HTTPS and plain HTTP, serving through
// whichever Manager is current, with pebble validating against them.
type rig struct {
	t       *testing.T
	pebble  *pebbletest.Server
	tlsLn   net.Listener
	httpLn  net.Listener
	storage string
	logs    *testutil.SyncBuffer
	current atomic.Pointer[acme.Manager]
	// alpnChallenges and httpChallenges count the validations pebble made.
	alpnChallenges atomic.Int64
	httpChallenges atomic.Int64
}

func newRig(t *testing.T, blocklist ...string) *rig {
	t.Helper()
	return newRigOptions(t, pebbletest.Options{Blocklist: blocklist})
}

// newRigOptions is newRig with pebble's options; the ports are filled in.
func newRigOptions(t *testing.T, po pebbletest.Options) *rig {
	t.Helper()
	r := &rig{t: t, storage: t.TempDir(), logs: &testutil.SyncBuffer{}}
	var err error
	if r.tlsLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if r.httpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	po.HTTPPort, po.TLSPort = port(r.httpLn), port(r.tlsLn)
	r.pebble = pebbletest.Start(t, po)

	tlsSrv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		TLSConfig: &tls.Config{
			NextProtos: []string{"h2", "http/1.1", acme.ALPNProtocol},
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				if slices.Contains(hello.SupportedProtos, acme.ALPNProtocol) {
					r.alpnChallenges.Add(1)
				}
				m := r.current.Load()
				if m == nil {
					return nil, errors.New("no manager")
				}
				return m.GetCertificate(hello)
			},
		},
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelDebug),
	}
	httpSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.URL.Path, "/.well-known/acme-challenge/") {
			r.httpChallenges.Add(1)
		}
		m := r.current.Load()
		if m == nil {
			http.NotFound(w, req)
			return
		}
		m.HTTPHandler(http.NotFoundHandler()).ServeHTTP(w, req)
	})}
	go tlsSrv.ServeTLS(r.tlsLn, "", "")
	go httpSrv.Serve(r.httpLn)
	t.Cleanup(func() {
		tlsSrv.Close()
		httpSrv.Close()
	})
	return r
}

func port(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// start makes a manager for domains with the given challenges, serves
// through it and starts it.
func (r *rig) start(domains []string, http01, tlsalpn01 bool) *acme.Manager {
	r.t.Helper()
	return r.startOptions(domains, http01, tlsalpn01, nil)
}

// startOptions is start with a chance to change the options.
func (r *rig) startOptions(domains []string, http01, tlsalpn01 bool, edit func(*acme.Options)) *acme.Manager {
	r.t.Helper()
	o := acme.Options{
		Name:           "public",
		Domains:        domains,
		Email:          "ops@example.com",
		CA:             r.pebble.DirectoryURL(),
		CARootFile:     r.pebble.CAFile(),
		Storage:        r.storage,
		ListenHost:     "127.0.0.1",
		TLSPort:        port(r.tlsLn),
		DisableTLSALPN: !tlsalpn01,
		Logger:         slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	if http01 {
		o.HTTPPort = port(r.httpLn)
	}
	if edit != nil {
		edit(&o)
	}
	m, err := acme.New(o)
	if err != nil {
		r.t.Fatalf("acme.New: %v", err)
	}
	r.current.Store(m)
	if err := m.Start(); err != nil {
		r.t.Fatalf("Start: %v", err)
	}
	r.t.Cleanup(m.Stop)
	return m
}

// handshake connects to the HTTPS socket as a client trusting roots and
// returns the leaf it verified.
func (r *rig) handshake(name string, roots *x509.CertPool) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", r.tlsLn.Addr().String(),
		&tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// waitServed waits until a client trusting pebble's root verifies a
// certificate for name, and returns it.
func (r *rig) waitServed(name string, roots *x509.CertPool) *x509.Certificate {
	r.t.Helper()
	var leaf *x509.Certificate
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		if leaf, err = r.handshake(name, roots); err == nil {
			return leaf
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no verified certificate for %s after 60s: last handshake: %v\nlogs:\n%s\npebble:\n%s", name, err, r.logs, r.pebble.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestObtainAndServe(t *testing.T) {
	for _, tc := range []struct {
		desc              string
		http01, tlsalpn01 bool
	}{
		{desc: "HTTP-01 on the plain-HTTP listener", http01: true},
		{desc: "TLS-ALPN-01 on the HTTPS listener", tlsalpn01: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := newRig(t)
			m := r.start([]string{domain}, tc.http01, tc.tlsalpn01)
			leaf := r.waitServed(domain, r.pebble.IssuerRoots())
			if err := leaf.VerifyHostname(domain); err != nil {
				t.Errorf("served leaf: %v", err)
			}
			if tc.http01 && r.httpChallenges.Load() == 0 {
				t.Errorf("HTTP-01: pebble never fetched a challenge from the HTTP listener")
			}
			if tc.tlsalpn01 && r.alpnChallenges.Load() == 0 {
				t.Errorf("TLS-ALPN-01: no %s handshake reached the HTTPS listener", acme.ALPNProtocol)
			}
			certs := m.Certificates()
			if len(certs) != 1 || certs[0].Source != "acme" || certs[0].Serial != leaf.SerialNumber.Text(16) || certs[0].NotAfter.IsZero() || certs[0].Error != "" {
				t.Errorf("Certificates(): got %+v, want the served serial %s", certs, leaf.SerialNumber.Text(16))
			}
			// A name the manager does not manage gets a handshake alert.
			if _, err := r.handshake("other.example.com", r.pebble.IssuerRoots()); err == nil {
				t.Errorf("handshake for an unmanaged name: got a certificate, want an alert")
			}
		})
	}
}

func TestRenewWithoutDroppingConnections(t *testing.T) {
	r := newRig(t)
	m := r.start([]string{domain}, false, true)
	roots := r.pebble.IssuerRoots()
	first := r.waitServed(domain, roots)

	var dials atomic.Int64
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: domain, RootCAs: roots},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, r.tlsLn.Addr().String())
		},
	}}
	get := func() *x509.Certificate {
		t.Helper()
		resp, err := client.Get("https://" + domain + "/")
		if err != nil {
			t.Fatalf("GET on the kept-alive connection: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0]
	}
	if got := get(); !got.Equal(first) {
		t.Fatalf("before renewal: served serial %x, want %x", got.SerialNumber, first.SerialNumber)
	}

	if err := m.Renew(context.Background()); err != nil {
		t.Fatalf("Renew: %v\nlogs:\n%s", err, r.logs)
	}
	renewed, err := r.handshake(domain, roots)
	if err != nil {
		t.Fatalf("new handshake after renewal: %v", err)
	}
	if renewed.Equal(first) {
		t.Errorf("new handshake after renewal: still serial %x, want a new certificate", first.SerialNumber)
	}
	if got := get(); !got.Equal(first) || dials.Load() != 1 {
		t.Errorf("kept-alive connection after renewal: serial %x over %d dials, want the old serial %x over 1 dial", got.SerialNumber, dials.Load(), first.SerialNumber)
	}
	if got := m.Certificates()[0].Serial; got != renewed.SerialNumber.Text(16) {
		t.Errorf("Certificates() after renewal: serial %s, want %x", got, renewed.SerialNumber)
	}
}

func TestRestartReusesStoredCertificate(t *testing.T) {
	r := newRig(t)
	m1 := r.start([]string{domain}, false, true)
	roots := r.pebble.IssuerRoots()
	first := r.waitServed(domain, roots)
	if m1.Orders() != 1 {
		t.Errorf("first start: %d orders, want 1", m1.Orders())
	}
	m1.Stop()

	// Stored certificates are cached by Start itself: the very first
	// handshake after it gets one, with no order.
	m2 := r.start([]string{domain}, false, true)
	got, err := r.handshake(domain, roots)
	if err != nil {
		t.Fatalf("first handshake after restart: %v", err)
	}
	if !got.Equal(first) {
		t.Errorf("after restart: serial %x, want the stored %x", got.SerialNumber, first.SerialNumber)
	}
	if m2.Orders() != 0 {
		t.Errorf("after restart: %d orders, want 0 (the stored certificate is reused)", m2.Orders())
	}
}

func TestCADownAtStartServesStoredCertificate(t *testing.T) {
	r := newRig(t)
	m1 := r.start([]string{domain}, false, true)
	roots := r.pebble.IssuerRoots()
	first := r.waitServed(domain, roots)
	m1.Stop()
	r.pebble.Stop()

	m2 := r.start([]string{domain}, false, true)
	got, err := r.handshake(domain, roots)
	if err != nil || !got.Equal(first) {
		t.Fatalf("CA down at start: handshake got %v, %v; want the stored certificate", got, err)
	}
	// A renewal now fails, is logged with the reason, and changes nothing
	// partners see.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m2.Renew(ctx); err == nil {
		t.Fatalf("Renew with the CA down: got nil error")
	}
	if !strings.Contains(r.logs.String(), "connection refused") {
		t.Errorf("logs do not say why renewal failed (want \"connection refused\"):\n%s", r.logs)
	}
	if got, err := r.handshake(domain, roots); err != nil || !got.Equal(first) {
		t.Errorf("after the failed renewal: handshake got %v, %v; want the stored certificate", got, err)
	}
}

func TestCARefusesOrder(t *testing.T) {
	const blocked = "blocked.example.com"
	r := newRig(t, blocked)
	m := r.start([]string{blocked}, false, true)
	testutil.WaitFor(t, "the refusal in the logs", func() bool {
		return strings.Contains(r.logs.String(), "rejectedIdentifier")
	})
	if !strings.Contains(r.logs.String(), "obtaining ACME certificate failed") {
		t.Errorf("logs lack the failure line:\n%s", r.logs)
	}
	t.Logf("logged: %s", grepLine(r.logs.String(), "obtaining ACME certificate failed"))
	if c := m.Certificates()[0]; !strings.Contains(c.Error, "rejectedIdentifier") || c.Serial != "" {
		t.Errorf("Certificates(): got %+v, want no certificate and the CA's error", c)
	}
	if _, err := r.handshake(blocked, r.pebble.IssuerRoots()); err == nil {
		t.Errorf("handshake for a refused name: got a certificate, want an alert")
	}
}

func grepLine(s, substr string) string {
	for line := range strings.Lines(s) {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}

func TestStored(t *testing.T) {
	r := newRig(t)
	m := r.start([]string{domain}, false, true)
	leaf := r.waitServed(domain, r.pebble.IssuerRoots())
	m.Stop()
	got := acme.Stored(context.Background(), r.pebble.DirectoryURL(), r.storage, []string{domain, "missing.example.com"})
	if len(got) != 2 || got[0].Serial != leaf.SerialNumber.Text(16) || got[0].Error != "" || got[1].Serial != "" || got[1].Error == "" {
		t.Errorf("Stored: got %+v, want serial %x for %s and an error for the missing name", got, leaf.SerialNumber, domain)
	}
	// Another CA's folder holds nothing for the name.
	if other := acme.Stored(context.Background(), "https://ca.example.net/dir", r.storage, []string{domain}); other[0].Serial != "" {
		t.Errorf("Stored for another CA: got %+v, want nothing", other[0])
	}
}

// TestRenewalAheadOfExpiry: with short-lived certificates, maintenance
// renews one before it expires, on its own, and new handshakes get it.
func TestRenewalAheadOfExpiry(t *testing.T) {
	r := newRigOptions(t, pebbletest.Options{CertValidity: 30 * time.Second})
	var renewed atomic.Int64
	r.startOptions([]string{domain}, false, true, func(o *acme.Options) {
		o.RenewCheckInterval = 250 * time.Millisecond
		o.OnResult = func(renewal bool, err error) {
			if renewal && err == nil {
				renewed.Add(1)
			}
		}
	})
	roots := r.pebble.IssuerRoots()
	first := r.waitServed(domain, roots)
	deadline := time.Now().Add(45 * time.Second)
	for {
		got, err := r.handshake(domain, roots)
		if err == nil && !got.Equal(first) {
			if !got.NotAfter.After(first.NotAfter) || time.Now().After(first.NotAfter) {
				t.Errorf("renewed certificate: not after %v, served at %v; want it later than %v and served before that expires", got.NotAfter, time.Now(), first.NotAfter)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewed certificate served within 45s (last: %v, %v)\nlogs:\n%s", got, err, r.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if renewed.Load() == 0 {
		t.Errorf("OnResult saw no successful renewal")
	}
}

// TestReplicasShareStorage: two managers on one storage folder, as two
// replicas on a shared volume, start together; the storage lock lets only
// one order, and both end up with the same certificate.
func TestReplicasShareStorage(t *testing.T) {
	r := newRig(t)
	// Only the first serves the sockets; the second, like a replica whose
	// traffic the CA does not reach, must still get the certificate.
	first := r.start([]string{domain}, true, true)
	second, err := acme.New(acme.Options{
		Name: "replica", Domains: []string{domain}, CA: r.pebble.DirectoryURL(), CARootFile: r.pebble.CAFile(),
		Storage: r.storage, ListenHost: "127.0.0.1", TLSPort: port(r.tlsLn), HTTPPort: port(r.httpLn),
		Logger: slog.New(slog.NewTextHandler(r.logs, nil)),
	})
	if err != nil {
		t.Fatalf("acme.New: %v", err)
	}
	if err := second.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(second.Stop)
	leaf := r.waitServed(domain, r.pebble.IssuerRoots())
	testutil.WaitFor(t, "the replica to load the certificate", func() bool {
		return second.Certificates()[0].Serial == leaf.SerialNumber.Text(16)
	})
	if orders := first.Orders() + second.Orders(); orders != 1 {
		t.Errorf("orders by both replicas: got %d, want 1", orders)
	}
}

// relay forwards TCP connections to target while it is up; while down it
// refuses to relay, as a CA that is unreachable does. Unlike stopping
// pebble, this keeps the CA's state (accounts) as a real outage does.
type relay struct {
	ln     net.Listener
	target string
	up     atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]bool // relayed now, both sides
}

// setUp brings the relay up or down; down also cuts the connections it
// relays, as the ACME client keeps one alive.
func (r *relay) setUp(up bool) {
	r.up.Store(up)
	if up {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.Close()
	}
}

func (r *relay) track(c net.Conn, add bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if add {
		r.conns[c] = true
	} else {
		delete(r.conns, c)
	}
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]bool{}}
	r.up.Store(true)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !r.up.Load() {
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				u, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				defer u.Close()
				r.track(c, true)
				r.track(u, true)
				defer r.track(c, false)
				defer r.track(u, false)
				go func() {
					io.Copy(u, c)
					u.Close()
				}()
				io.Copy(c, u)
			}()
		}
	}()
	return r
}

// TestRenewalRetriedAfterCAOutage: the CA is unreachable when a renewal
// falls due; the failure is logged with its cause, the current
// certificate keeps serving, and certmagic's backoff retries until the CA
// is back and a renewed certificate is served. It waits for certmagic's
// first retry interval (a minute), so it runs in parallel with the others.
func TestRenewalRetriedAfterCAOutage(t *testing.T) {
	t.Parallel()
	r := newRigOptions(t, pebbletest.Options{CertValidity: 60 * time.Second})
	dir := r.pebble.DirectoryURL()
	pebbleAddr := strings.TrimSuffix(strings.TrimPrefix(dir, "https://"), "/dir")
	ca := startRelay(t, pebbleAddr)
	var failed, renewed atomic.Int64
	r.startOptions([]string{domain}, false, true, func(o *acme.Options) {
		// Pebble builds its URLs from the Host it is asked by, so every
		// ACME request goes through the relay.
		o.CA = "https://" + ca.ln.Addr().String() + "/dir"
		o.RenewCheckInterval = 250 * time.Millisecond
		o.OnResult = func(renewal bool, err error) {
			switch {
			case renewal && err != nil:
				failed.Add(1)
			case renewal:
				renewed.Add(1)
			}
		}
	})
	roots := r.pebble.IssuerRoots()
	first := r.waitServed(domain, roots)
	ca.setUp(false)

	// Renewal is due a third of the lifetime before expiry: ~40 s in.
	deadline := time.Now().Add(90 * time.Second)
	for failed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no failed renewal with the CA unreachable within 90s\nlogs:\n%s", r.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if log := r.logs.String(); !strings.Contains(log, "renewing ACME certificate failed") {
		t.Errorf("logs do not report the failed renewal with its cause:\n%s", log)
	}
	if got, err := r.handshake(domain, roots); err != nil || !got.Equal(first) {
		t.Errorf("after the failed renewal: handshake got %v, %v; want the current certificate", got, err)
	}

	ca.setUp(true)
	deadline = time.Now().Add(150 * time.Second)
	for {
		got, err := r.handshake(domain, roots)
		if err == nil && !got.Equal(first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewed certificate within 150s of the CA coming back (failed attempts %d)\nlogs:\n%s", failed.Load(), r.logs)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if renewed.Load() == 0 {
		t.Errorf("OnResult saw no successful renewal")
	}
}
