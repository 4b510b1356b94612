package gateway

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/dnstest"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// startBackendOn serves cert on addr (host:port, port may be 0) and
// answers "name:path".
func startBackendOn(t *testing.T, addr string, cert *certs.Cert, name string) *httptest.Server {
	t.Helper()
	return startBackendProto(t, addr, cert, name, true)
}

// startHTTP1BackendOn is startBackendOn without HTTP/2. A test that kills
// a backend and then expects no failed request needs it: over HTTP/2 a
// request can be written to the killed backend's connection before the
// gateway has read its end, and such a request may have reached the
// backend, so it is answered 502 and not retried (see the proxy
// package's TestExchangeFailureNotRetried). HTTP/1.1 has no such window:
// net/http resends a request that finds its kept-alive connection
// closed, and the new dial then fails as a connect failure.
func startHTTP1BackendOn(t *testing.T, addr string, cert *certs.Cert, name string) *httptest.Server {
	t.Helper()
	return startBackendProto(t, addr, cert, name, false)
}

func startBackendProto(t *testing.T, addr string, cert *certs.Cert, name string, h2 bool) *httptest.Server {
	t.Helper()
	return startServer(t, addr, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name+":"+r.URL.Path)
	}), h2)
}

// startHandlerOn serves handler over HTTPS with HTTP/2 on addr.
func startHandlerOn(t *testing.T, addr string, cert *certs.Cert, handler http.Handler) *httptest.Server {
	t.Helper()
	return startServer(t, addr, cert, handler, true)
}

func startServer(t *testing.T, addr string, cert *certs.Cert, handler http.Handler, h2 bool) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	srv.EnableHTTP2 = h2
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func (h *harness) adminGet(path string) string {
	h.t.Helper()
	resp, err := http.Get("http://" + h.g.AdminAddr().String() + path)
	if err != nil {
		h.t.Fatalf("GET admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// targetState reports the active health verdict and the passive ejection
// of one target, as the admin API shows them.
func (h *harness) targetState(upstream, target string) (healthy, ejected bool) {
	var ups []upstreamStatus
	if err := json.Unmarshal([]byte(h.adminGet("/v1/upstreams")), &ups); err != nil {
		h.t.Fatalf("GET /v1/upstreams: %v", err)
	}
	for _, u := range ups {
		for _, tg := range u.Targets {
			if u.Name == upstream && tg.Target == target {
				return tg.Healthy, tg.Ejected
			}
		}
	}
	h.t.Fatalf("target %s of %s not in /v1/upstreams", target, upstream)
	return false, false
}

// TestDeadTargetEjectedAndBack kills one of two targets: partners see no
// failure (the connect failure is retried on the other target), health
// checks mark it down, and it comes back when it is restarted.
func TestDeadTargetEjectedAndBack(t *testing.T) {
	t.Parallel()
	cert := backendCert(t)
	a := startHTTP1BackendOn(t, "127.0.0.1:0", cert, "a")
	b := startHTTP1BackendOn(t, "127.0.0.1:0", cert, "b")
	h := startGateway(t, listenerYAML+fmt.Sprintf(`
upstreams:
  onprem:
    targets: [%s, %s]
    tls: {server_name: backend.internal, pins: [%q]}
    health: {path: /health, interval: 50ms, timeout: 1s, healthy_threshold: 2, unhealthy_threshold: 2}
    passive: {max_fails: 1, eject_for: 300ms}
routes:
  - path: /{proxy+}
    upstream: onprem
`, a.URL, b.URL, transport.SPKIPin(cert.Cert)))
	bTarget := strings.TrimPrefix(b.URL, "https://")

	seen := map[string]bool{}
	for range 10 {
		got := h.get("/x")
		seen[strings.SplitN(got.body, ":", 2)[0]] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("round robin reached %v, want both a and b", seen)
	}

	b.Close()
	for i := range 20 {
		if got := h.get("/x"); got.status != 200 || got.body != "a:/x" {
			t.Fatalf("request %d with b dead: got %d %q, want 200 from a", i, got.status, got.body)
		}
	}
	waitFor(t, "b marked down by health checks", func() bool { healthy, _ := h.targetState("onprem", bTarget); return !healthy })
	if !strings.Contains(h.adminGet("/metrics"), `drawbridge_upstream_target_up{target="`+bTarget+`",upstream="onprem"} 0`) {
		t.Errorf("metrics do not show %s down", bTarget)
	}

	startHTTP1BackendOn(t, bTarget, cert, "b")
	waitFor(t, "b back up", func() bool { healthy, ejected := h.targetState("onprem", bTarget); return healthy && !ejected })
	waitFor(t, "traffic to b again", func() bool { return h.get("/x").body == "b:/x" })
}

// TestAllTargetsDownFast503: with every target down the partner gets 503
// at once, not a hang until the route timeout.
func TestAllTargetsDownFast503(t *testing.T) {
	t.Parallel()
	cert := backendCert(t)
	a := startBackendOn(t, "127.0.0.1:0", cert, "a")
	h := startGateway(t, listenerYAML+fmt.Sprintf(`
upstreams:
  onprem:
    targets: [%s]
    tls: {server_name: backend.internal, pins: [%q]}
    passive: {max_fails: 1, eject_for: 1m}
routes:
  - path: /{proxy+}
    upstream: onprem
`, a.URL, transport.SPKIPin(cert.Cert)))
	a.Close()
	if got := h.get("/x"); got.status != 502 {
		t.Errorf("first request to a dead target: got %d, want 502", got.status)
	}
	start := time.Now()
	got := h.get("/x")
	if got.status != 503 || got.body != `{"message": "Internal server error"}` {
		t.Errorf("request with the only target ejected: got %d %s, want 503 with the AWS body", got.status, got.body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("503 took %v; it must not wait", d)
	}
}

// startMovingBackend starts two backends made by handler on one port, one
// named first on 127.0.0.1 and one named second on 127.0.0.2, and a
// gateway that reaches them as backend.test, which its DNS server points
// at the first; a test moves it with dns.Set. It checks that the first
// answers /x before it returns.
func startMovingBackend(t *testing.T, handler func(name string) http.Handler) (*harness, *dnstest.Server) {
	t.Helper()
	cert := certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.test"}})
	first := startHandlerOn(t, "127.0.0.1:0", cert, handler("first"))
	port := first.Listener.Addr().(*net.TCPAddr).Port
	startHandlerOn(t, fmt.Sprintf("127.0.0.2:%d", port), cert, handler("second"))
	dns := dnstest.Start(t, "backend.test.")
	dns.Set(false, "127.0.0.1")
	h := startGateway(t, listenerYAML+fmt.Sprintf(`
upstreams:
  onprem:
    targets: [https://backend.test:%d]
    resolver: %s
    dns_refresh: 50ms
    tls: {pins: [%q]}
routes:
  - path: /{proxy+}
    upstream: onprem
`, port, dns.Addr(), transport.SPKIPin(cert.Cert)))
	if got := h.get("/x"); got.body != "first:/x" {
		t.Fatalf("before the DNS change: got %q, want first:/x", got.body)
	}
	return h, dns
}

// TestHostNameTargetFollowsDNS changes the address of a host-name target
// in DNS while the gateway runs: traffic follows without a restart, even
// though kept-alive connections to the old address exist.
func TestHostNameTargetFollowsDNS(t *testing.T) {
	t.Parallel()
	h, dns := startMovingBackend(t, func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name+":"+r.URL.Path)
		})
	})
	dns.Set(false, "127.0.0.2")
	waitFor(t, "traffic on the new address", func() bool { return h.get("/x").body == "second:/x" })
}

// TestHostNameTargetFollowsDNSUnderLoad: with HTTP/2 to the backend and
// requests always in flight, the one upstream connection is never idle,
// so closing idle connections would leave all traffic on the old address;
// the gateway must move new requests to the new one anyway.
func TestHostNameTargetFollowsDNSUnderLoad(t *testing.T) {
	t.Parallel()
	slow := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/load" {
				time.Sleep(20 * time.Millisecond)
			}
			io.WriteString(w, name+":"+r.URL.Path)
		})
	}
	h, dns := startMovingBackend(t, slow)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	deadline := time.Now().Add(30 * time.Second)
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := h.client.Get(h.base + "/load")
				if err != nil {
					t.Errorf("load request: %v", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(100 * time.Millisecond) // the load is on the one connection

	dns.Set(false, "127.0.0.2")
	waitFor(t, "traffic on the new address under load", func() bool { return h.get("/x").body == "second:/x" })
}

// TestReloadKeepsServingOnBrokenConfig: an invalid config is refused and
// the old one serves on; a valid one is applied without a restart.
func TestReloadKeepsServingOnBrokenConfig(t *testing.T) {
	t.Parallel()
	cert := backendCert(t)
	srv := backend(t, cert, nil)
	pin := transport.SPKIPin(cert.Cert)
	h := startGateway(t, oneUpstream(srv.URL, fmt.Sprintf(`{server_name: backend.internal, pins: [%q]}`, pin)))
	original, err := readFile(h.cfg)
	if err != nil {
		t.Fatal(err)
	}

	h.rewrite(original + "\nbogus_key: 1\n")
	if err := h.g.Reload(); err == nil || !strings.Contains(err.Error(), "bogus_key") {
		t.Errorf("Reload with an unknown key: got %v, want an error naming it", err)
	}
	if got := h.get("/still"); got.status != 200 {
		t.Fatalf("after a failed reload: got %d, want the old config serving", got.status)
	}

	h.rewrite(strings.Replace(original, "path: /{proxy+}", "path: /only/{proxy+}", 1))
	if err := h.g.Reload(); err != nil {
		t.Fatalf("Reload with a valid config: %v", err)
	}
	if got := h.get("/still"); got.status != 403 {
		t.Errorf("after reload, old path: got %d, want 403", got.status)
	}
	if got := h.get("/only/x"); got.status != 200 {
		t.Errorf("after reload, new path: got %d, want 200", got.status)
	}
	m := h.adminGet("/metrics")
	for _, want := range []string{`drawbridge_config_reloads_total{result="error"} 1`, `drawbridge_config_reloads_total{result="ok"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestProxyHeadersAndStreaming checks what the backend receives and that a
// streamed response reaches the partner before the backend finishes.
func TestProxyHeadersAndStreaming(t *testing.T) {
	t.Parallel()
	cert := backendCert(t)
	release := make(chan struct{})
	srv := backend(t, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			io.WriteString(w, "first\n")
			w.(http.Flusher).Flush()
			<-release
			io.WriteString(w, "second\n")
			return
		}
		w.Header().Set("x-amzn-RequestId", "backend-id")
		json.NewEncoder(w).Encode(map[string]string{
			"xff": r.Header.Get("X-Forwarded-For"), "proto": r.Header.Get("X-Forwarded-Proto"),
			"xfhost": r.Header.Get("X-Forwarded-Host"), "reqid": r.Header.Get("X-Request-Id"),
			"hop": r.Header.Get("X-Hop"), "host": r.Host, "upstream_proto": r.Proto,
		})
	}))
	h := startGateway(t, oneUpstream(srv.URL, fmt.Sprintf(`{server_name: backend.internal, pins: [%q]}`, transport.SPKIPin(cert.Cert))))

	// HTTP/1.1, since HTTP/2 has no Connection header to name hop-by-hop ones.
	h.client.Transport.(*http.Transport).ForceAttemptHTTP2 = false
	got := h.do("GET", "/h", nil, "X-Forwarded-For", "203.0.113.7", "Connection", "X-Hop", "X-Hop", "secret")
	var seen map[string]string
	if err := json.Unmarshal([]byte(got.body), &seen); err != nil {
		t.Fatalf("backend answer %q: %v", got.body, err)
	}
	want := map[string]string{"xff": "203.0.113.7, 127.0.0.1", "proto": "https", "hop": "", "host": "backend.internal", "upstream_proto": "HTTP/2.0"}
	for k, v := range want {
		if seen[k] != v {
			t.Errorf("backend saw %s = %q, want %q", k, seen[k], v)
		}
	}
	if seen["reqid"] == "" || seen["reqid"] != got.header.Get("X-Request-Id") {
		t.Errorf("X-Request-Id: backend saw %q, partner got %q; want the same generated id", seen["reqid"], got.header.Get("X-Request-Id"))
	}
	if got.header.Get("x-amzn-RequestId") == "backend-id" || got.header.Get("x-amzn-Remapped-x-amzn-RequestId") != "backend-id" {
		t.Errorf("backend x-amzn-RequestId not remapped: headers %v", got.header)
	}

	resp, err := h.client.Get(h.base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first streamed line: got %q, %v", line, err)
	}
	close(release)
}

// TestShutdownDrainsInFlight: a request in flight when the gateway is
// told to stop completes.
func TestShutdownDrainsInFlight(t *testing.T) {
	t.Parallel()
	cert := backendCert(t)
	started := make(chan struct{})
	srv := backend(t, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		io.WriteString(w, "done")
	}))
	h := startGateway(t, oneUpstream(srv.URL, fmt.Sprintf(`{server_name: backend.internal, pins: [%q]}`, transport.SPKIPin(cert.Cert))))
	result := make(chan response, 1)
	go func() { result <- h.get("/slow") }()
	<-started
	h.cancel()
	select {
	case got := <-result:
		if got.status != 200 || got.body != "done" {
			t.Errorf("in-flight request during shutdown: got %d %q, want 200 done", got.status, got.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight request did not finish")
	}
	<-h.done
	h.cancel = nil
	if _, err := h.client.Get(h.base + "/after"); err == nil {
		t.Errorf("a new request after shutdown succeeded; the listener should be closed")
	}
}

// TestLargeBodiesStreamBothWays sends a body just under the limit and
// receives one far over it: both are streamed, not refused or truncated.
func TestLargeBodiesStreamBothWays(t *testing.T) {
	t.Parallel()
	cert := backendCert(t)
	const down = 32 << 20
	srv := backend(t, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			t.Errorf("backend reading the body: %v", err)
		}
		w.Header().Set("X-Received", fmt.Sprint(n))
		chunk := make([]byte, 1<<20)
		for range down / len(chunk) {
			w.Write(chunk)
		}
	}))
	h := startGateway(t, oneUpstream(srv.URL, fmt.Sprintf(`{server_name: backend.internal, pins: [%q]}`, transport.SPKIPin(cert.Cert))))
	up := 10<<20 - 1
	req, _ := http.NewRequest("POST", h.base+"/big", io.LimitReader(zeros{}, int64(up)))
	req.ContentLength = int64(up)
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != down {
		t.Errorf("response body: got %d bytes, %v; want %d", n, err, down)
	}
	if got := resp.Header.Get("X-Received"); got != fmt.Sprint(up) {
		t.Errorf("backend received %s bytes, want %d", got, up)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestTwoListenersAndCertMetrics serves the same routes on two listeners
// and reports both certificates' expiry, and the backend's, in metrics.
func TestTwoListenersAndCertMetrics(t *testing.T) {
	t.Parallel()
	cert := backendCert(t)
	srv := backend(t, cert, nil)
	cfg := oneUpstream(srv.URL, fmt.Sprintf(`{server_name: backend.internal, pins: [%q]}`, transport.SPKIPin(cert.Cert)))
	cfg = strings.Replace(cfg, "admin:", `  - name: second
    addr: 127.0.0.1:0
    tls: {cert: "{{FRONT_CERT}}", key: "{{FRONT_KEY}}"}
admin:`, 1)
	h := startGateway(t, cfg)
	addrs := h.g.ListenerAddrs()
	if len(addrs) != 2 {
		t.Fatalf("ListenerAddrs: got %d, want 2", len(addrs))
	}
	for _, a := range addrs {
		resp, err := h.client.Get("https://" + a.String() + "/x")
		if err != nil {
			t.Fatalf("GET via %s: %v", a, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET via %s: got %d", a, resp.StatusCode)
		}
	}
	m := h.adminGet("/metrics")
	for _, want := range []string{
		`drawbridge_cert_expiry_seconds{kind="listener",name="public"}`,
		`drawbridge_cert_expiry_seconds{kind="listener",name="second"}`,
		`drawbridge_cert_expiry_seconds{kind="upstream",name="onprem"}`,
		`drawbridge_requests_total{code="2xx",method="GET",route="ANY /{proxy+}"} 2`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestReloadKeepsTargetState: a reload builds new pools, but a target
// known to be down stays out of rotation.
func TestReloadKeepsTargetState(t *testing.T) {
	t.Parallel()
	cert := backendCert(t)
	a := startBackendOn(t, "127.0.0.1:0", cert, "a")
	b := startBackendOn(t, "127.0.0.1:0", cert, "b")
	h := startGateway(t, listenerYAML+fmt.Sprintf(`
upstreams:
  onprem:
    targets: [%s, %s]
    tls: {server_name: backend.internal, pins: [%q]}
    passive: {max_fails: 1, eject_for: 1m}
routes:
  - path: /{proxy+}
    upstream: onprem
`, a.URL, b.URL, transport.SPKIPin(cert.Cert)))
	bTarget := strings.TrimPrefix(b.URL, "https://")
	b.Close()
	waitFor(t, "b ejected", func() bool {
		h.get("/x")
		_, ejected := h.targetState("onprem", bTarget)
		return ejected
	})
	text, err := readFile(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.rewrite(text + "\nshutdown_grace: 5s\n")
	if err := h.g.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, ejected := h.targetState("onprem", bTarget); !ejected {
		t.Errorf("after reload, the dead target is back in rotation")
	}
	for i := range 6 {
		if got := h.get("/x"); got.status != 200 || got.body != "a:/x" {
			t.Fatalf("request %d after reload: got %d %q, want 200 from a", i, got.status, got.body)
		}
	}
}

// TestReloadWithoutHealthChecksBringsTargetBack: a target marked down by
// active checks comes back when a reload removes the checks, since
// nothing would mark it up again.
func TestReloadWithoutHealthChecksBringsTargetBack(t *testing.T) {
	t.Parallel()
	cert := backendCert(t)
	a := startBackendOn(t, "127.0.0.1:0", cert, "a")
	withHealth := listenerYAML + fmt.Sprintf(`
upstreams:
  onprem:
    targets: [%s]
    tls: {server_name: backend.internal, pins: [%q]}
    health: {path: /health, interval: 50ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}
routes:
  - path: /{proxy+}
    upstream: onprem
`, a.URL, transport.SPKIPin(cert.Cert))
	h := startGateway(t, withHealth)
	target := strings.TrimPrefix(a.URL, "https://")
	a.Close() // the checks mark it down

	waitFor(t, "target down", func() bool { healthy, _ := h.targetState("onprem", target); return !healthy })
	startBackendOn(t, target, cert, "a")
	live, err := readFile(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.rewrite(strings.Replace(live, "    health: {path: /health, interval: 50ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}\n", "", 1))
	if err := h.g.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if healthy, _ := h.targetState("onprem", target); !healthy {
		t.Errorf("after removing health checks, the target stays down forever")
	}
}
