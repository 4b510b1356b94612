package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

const l4Config = `
listeners:
  - name: nlb
    type: tcp
    addr: 127.0.0.1:0
    tls: {mode: passthrough}
    sni:
      backend.internal: pass
  - name: nlb-tls
    type: tcp
    addr: 127.0.0.1:0
    tls: {mode: terminate, cert: {{FRONT_CERT}}, key: {{FRONT_KEY}}}
    sni:
      "*": term
admin: {addr: "off"}
store: {type: memory}
log: {access: {{DIR}}/access.log}
upstreams:
  pass:
    targets: [tcp://{{BACKEND}}]
    tls: {pins: [{{PIN}}]}
    health: {type: tls, interval: 1h}
  term:
    targets: [tls://{{BACKEND}}]
    tls: {pins: [{{PIN}}], server_name: backend.internal}
`

// getThrough sends GET path over a fresh connection to addr, with TLS for
// serverName trusting roots, and returns the body and the certificate the
// client saw.
func getThrough(t *testing.T, addr, serverName string, roots *x509.CertPool, path string) (string, *x509.Certificate, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: serverName, RootCAs: roots}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + addr + path)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), leafOf(t, resp), err
}

// accessLines returns the access log's "connection" lines.
func accessLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	text, _ := readFile(path)
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "connection" {
			out = append(out, m)
		}
	}
	return out
}

// TestL4FromConfig drives the L4 tier from a config file as `drawbridge
// serve` does: passthrough shows the backend's own certificate, terminate
// the listener's, both reach the backend, each connection is logged, and
// a reload changes SNI routes.
func TestL4FromConfig(t *testing.T) {
	t.Parallel()
	bc := backendCert(t)
	srv := backend(t, bc, nil)
	h := newHarness(t, strings.NewReplacer(
		"{{BACKEND}}", strings.TrimPrefix(srv.URL, "https://"),
		"{{PIN}}", transport.SPKIPin(bc.Cert),
	).Replace(l4Config))
	h.start()
	addrs := h.g.ListenerAddrs()
	pass, term := addrs[0].String(), addrs[1].String()
	backendRoots := bc.Pool()

	body, peer, err := getThrough(t, pass, "backend.internal", backendRoots, "/through/passthrough")
	if err != nil || body != "backend:/through/passthrough" {
		t.Fatalf("GET through passthrough: got %q, %v; want backend:/through/passthrough", body, err)
	}
	if !peer.Equal(bc.Cert) {
		t.Errorf("passthrough: client saw %q, want the backend's own certificate", peer.Subject)
	}

	frontRoots := x509.NewCertPool()
	frontRoots.AddCert(h.g.l4[1].Certs().Leaf())
	body, peer, err = getThrough(t, term, "localhost", frontRoots, "/through/terminate")
	if err != nil || body != "backend:/through/terminate" {
		t.Fatalf("GET through terminate: got %q, %v; want backend:/through/terminate", body, err)
	}
	if peer.Equal(bc.Cert) {
		t.Errorf("terminate: client saw the backend's certificate, want the listener's")
	}

	if _, _, err := getThrough(t, pass, "unrouted.example", backendRoots, "/"); err == nil {
		t.Errorf("GET with an unrouted SNI: got success, want the connection closed")
	}
	log := h.dir + "/access.log"
	waitFor(t, "three connection lines", func() bool { return len(accessLines(t, log)) >= 3 })
	results := map[string]string{}
	for _, l := range accessLines(t, log) {
		results[l["listener"].(string)+" "+l["sni"].(string)] = l["result"].(string)
	}
	// Which side closes first is the HTTP client's and server's business:
	// a close_notify that crosses the other side's close is a reset.
	for key, want := range map[string]string{"nlb backend.internal": "ok|reset", "nlb-tls localhost": "ok|reset", "nlb unrouted.example": "no_route"} {
		if !slices.Contains(strings.Split(want, "|"), results[key]) {
			t.Errorf("access log result for %s: got %q, want %s (all: %v)", key, results[key], want, results)
		}
	}

	// The tls health check ran through the gateway's wiring, verified
	// with the upstream's pins.
	waitFor(t, "a passing tls health check of upstream pass", func() bool {
		return metricValue(t, h.g, "drawbridge_health_checks_total", map[string]string{"upstream": "pass", "result": "ok"}) >= 1
	})

	// Reload: the passthrough listener now takes every name.
	h.rewrite(strings.Replace(readConfig(t, h.cfg), "backend.internal: pass", `"*": pass`, 1))
	if err := h.g.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if body, _, err := getThrough(t, pass, "127.0.0.1", backendRoots, "/after/reload"); err == nil {
		t.Errorf("after reload, no SNI: got %q, want a failed handshake (the backend's certificate has no IP)", body)
	}
	waitFor(t, "a routed connection without SNI", func() bool {
		for _, l := range accessLines(t, log) {
			if l["sni"] == "" && l["upstream"] == "pass" {
				return true
			}
		}
		return false
	})
}

func readConfig(t *testing.T, path string) string {
	t.Helper()
	text, err := readFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// metricValue returns the value of counter or gauge name with labels
// from g's registry, or 0.
func metricValue(t *testing.T, g *Gateway, name string, labels map[string]string) float64 {
	t.Helper()
	return testutil.MetricValue(t, g.metrics.Registry(), name, labels)
}

// TestL4ShutdownDrains: stopping the gateway stops the tcp listener
// accepting, and a connection in the middle of a request still gets its
// answer before Run returns.
func TestL4ShutdownDrains(t *testing.T) {
	t.Parallel()
	bc := backendCert(t)
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	srv := backend(t, bc, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "drained")
	}))
	h := newHarness(t, `
listeners:
  - name: nlb
    type: tcp
    addr: 127.0.0.1:0
    tls: {mode: passthrough}
    sni: {"*": pass}
admin: {addr: "off"}
store: {type: memory}
log: {access: "off"}
shutdown_grace: 1m
upstreams:
  pass:
    targets: [tcp://`+strings.TrimPrefix(srv.URL, "https://")+`]
`)
	h.start()
	addr := h.g.ListenerAddrs()[0].String()
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		body, _, err := getThrough(t, addr, "backend.internal", bc.Pool(), "/slow")
		got <- result{body, err}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the backend")
	}
	h.cancel()
	waitFor(t, "the tcp listener to stop accepting", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	select {
	case err := <-h.done:
		t.Fatalf("Run returned (%v) while a connection was still open", err)
	default:
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "drained" {
		t.Errorf("request open across shutdown: got %q, %v; want drained", r.body, r.err)
	}
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the last connection ended")
	}
	h.cancel = nil
}

// TestL4AccessLogAcrossReload is the reviewer's repro: a reload closes
// the old access-log file a second after it swaps (there are no HTTP
// routes to wait for); a tcp connection routed before the reload and
// ended after that must still be logged.
func TestL4AccessLogAcrossReload(t *testing.T) {
	t.Parallel()
	bc := backendCert(t)
	srv := backend(t, bc, nil)
	h := newHarness(t, strings.NewReplacer(
		"{{BACKEND}}", strings.TrimPrefix(srv.URL, "https://"),
		"{{PIN}}", transport.SPKIPin(bc.Cert),
	).Replace(l4Config))
	h.start()
	pass := h.g.ListenerAddrs()[0].String()

	// Routed: the handshake went through the listener to the backend.
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", pass, &tls.Config{ServerName: "backend.internal", RootCAs: bc.Pool()})
	if err != nil {
		t.Fatalf("TLS through passthrough: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))

	if err := h.g.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	// The old file is closed one second after the swap; nothing tells
	// when, so wait past it.
	time.Sleep(1500 * time.Millisecond)

	io.WriteString(c, "GET /across/reload HTTP/1.1\r\nHost: backend.internal\r\nConnection: close\r\n\r\n")
	answer, _ := io.ReadAll(c)
	if !strings.Contains(string(answer), "backend:/across/reload") {
		t.Fatalf("answer across the reload: got %q, want the backend's", answer)
	}
	c.Close()
	log := h.dir + "/access.log"
	waitFor(t, "the connection's line in the access log", func() bool {
		for _, l := range accessLines(t, log) {
			if l["sni"] == "backend.internal" && l["client"] == c.LocalAddr().String() {
				return true
			}
		}
		return false
	})
}

// TestL4CapsFromConfig: the listener's max_connections and the
// upstream's max_conns reach the L4 tier: with one connection held, the
// next is refused with the cap's result.
func TestL4CapsFromConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc, listenerKey, upstreamKey, wantResult string
	}{
		{desc: "listener max_connections", listenerKey: "max_connections: 1", wantResult: "max_connections"},
		{desc: "upstream max_conns", upstreamKey: "max_conns: 1", wantResult: "no_target"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			bc := backendCert(t)
			srv := backend(t, bc, nil)
			h := newHarness(t, `
listeners:
  - name: nlb
    type: tcp
    addr: 127.0.0.1:0
    tls: {mode: passthrough}
    sni: {"*": pass}
    `+tc.listenerKey+`
admin: {addr: "off"}
store: {type: memory}
log: {access: {{DIR}}/access.log}
upstreams:
  pass:
    targets: [tcp://`+strings.TrimPrefix(srv.URL, "https://")+`]
    `+tc.upstreamKey+`
`)
			h.start()
			addr := h.g.ListenerAddrs()[0].String()
			held, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: "backend.internal", RootCAs: bc.Pool()})
			if err != nil {
				t.Fatalf("first connection: %v", err)
			}
			defer held.Close()
			waitFor(t, "the first connection to be active", func() bool {
				return metricValue(t, h.g, "drawbridge_l4_active_connections", map[string]string{"listener": "nlb"}) == 1
			})
			over, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{ServerName: "backend.internal", RootCAs: bc.Pool()})
			if err == nil {
				over.Close()
				t.Fatalf("connection over the cap: got a handshake, want it closed")
			}
			log := h.dir + "/access.log"
			waitFor(t, "a "+tc.wantResult+" line", func() bool {
				for _, l := range accessLines(t, log) {
					if l["result"] == tc.wantResult {
						return true
					}
				}
				return false
			})
		})
	}
}
