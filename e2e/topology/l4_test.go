package topology

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// This file holds the L4 tier's scenarios (issue 6, deliverable 2):
// drawbridge's tcp listeners in the edge, "nlb" (TLS passed through,
// routed by SNI) and "nlb-tls" (TLS terminated, re-encrypted to the LB
// with a PROXY protocol v2 header first). See gatewayConf and nginxConf.

// Names of the tcp listeners and their upstreams in gatewayConf.
const (
	l4PassListener = "nlb"
	l4TermListener = "nlb-tls"
	l4PassUpstream = "onprem-tcp"
	l4TermUpstream = "onprem-pp"
	// unroutedSNI is a server name no SNI route of "nlb" takes.
	unroutedSNI = "unrouted.drawbridge.test"
)

// l4Dials counts the TCP connections the partner opened to each tcp
// listener, for the metrics to be checked against.
type l4Dials struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *l4Dials) add(listener string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = map[string]int{}
	}
	d.n[listener]++
}

func (d *l4Dials) get(listener string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[listener]
}

// l4Dial opens a TCP connection from the partner's namespace to a tcp
// listener of the edge, and counts it.
func (r *run) l4Dial(ctx context.Context, listener, addr string) (net.Conn, error) {
	conn, err := dialerIn(r.tp.nsName(rolePartner))(ctx, "tcp", addr)
	if err == nil {
		r.l4Dials.add(listener)
	}
	return conn, err
}

// l4Handshake makes a TLS handshake as the partner with addr, asking for
// serverName and trusting only roots, and returns the certificate the
// partner was shown. The connection is closed after the handshake.
func (r *run) l4Handshake(listener, addr, serverName string, roots *x509.CertPool) (*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := r.l4Dial(ctx, listener, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	tc := tls.Client(conn, &tls.Config{ServerName: serverName, RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	leaf := tc.ConnectionState().PeerCertificates[0]
	return leaf, tc.Close()
}

// l4Request sends one HTTPS request as the partner over a new connection
// to addr, a tcp listener, for https://serverName/path, trusting only
// roots. It returns the answer and the certificate the partner was shown.
func (r *run) l4Request(listener, addr, serverName string, roots *x509.CertPool, method, path string, header map[string]string, body string) (answer, *x509.Certificate, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return r.l4Dial(ctx, listener, addr)
		},
		TLSClientConfig:   &tls.Config{ServerName: serverName, RootCAs: roots, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true, // one connection per request, so the counts are exact
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	req, err := http.NewRequest(method, "https://"+serverName+path, strings.NewReader(body))
	if err != nil {
		return answer{}, nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, nil, fmt.Errorf("reading the answer: %w", err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, resp.TLS.PeerCertificates[0], nil
}

// l4Passthrough: with the LB's name as SNI, the partner's TLS session
// goes through the edge untouched: the partner is shown nginx's own
// certificate (the key drawbridge pins), its HTTPS request reaches an app
// with nothing added by drawbridge's HTTP path, and the connection is in
// the access log. A ClientHello for any other name is closed unanswered,
// and logged as no_route.
func (r *run) l4Passthrough(t *testing.T) {
	addr := net.JoinHostPort(edgeAddr, l4PassPort)
	leaf, err := r.l4Handshake(l4PassListener, addr, lbName, r.lbCert.Pool())
	if err != nil {
		t.Fatalf("TLS handshake for %s through the passthrough listener: %v", lbName, err)
	}
	if got, want := transport.SPKIPin(leaf), transport.SPKIPin(r.lbCert.Cert); got != want {
		t.Fatalf("through the passthrough listener the partner saw key %s (%s), want the LB's own %s", got, leaf.Subject, want)
	}

	a, leaf, err := r.l4Request(l4PassListener, addr, lbName, r.lbCert.Pool(), http.MethodPost,
		"/l4/passthrough/"+r.marker+"?note="+r.marker, map[string]string{"X-Marker": r.marker}, `{"note":"`+r.marker+`"}`)
	if err != nil {
		t.Fatalf("HTTPS request through the passthrough listener: %v", err)
	}
	if got, want := transport.SPKIPin(leaf), transport.SPKIPin(r.lbCert.Cert); got != want {
		t.Errorf("the request's TLS session was with key %s, want the LB's %s", got, want)
	}
	e, err := a.echo()
	if err != nil {
		t.Fatalf("HTTPS request through the passthrough listener: %v", err)
	}
	if err := markerIn(e, r.marker); err != nil {
		t.Fatal(err)
	}
	if got := e.Headers["X-Lb-Addr"]; got != lbAddr {
		t.Errorf("the request came through the LB at %q, want %q", got, lbAddr)
	}
	// drawbridge's HTTP path adds both; passthrough cannot read the request.
	for _, h := range []string{"X-Forwarded-For", "X-Request-Id"} {
		if v, ok := e.Headers[h]; ok {
			t.Errorf("the app saw %s: %q; passed-through TLS must reach nginx untouched", h, v)
		}
	}

	_, err = r.l4Handshake(l4PassListener, addr, unroutedSNI, r.lbCert.Pool())
	var certErr *tls.CertificateVerificationError
	var alert tls.AlertError
	switch {
	case err == nil:
		t.Fatalf("a handshake for %s, which no SNI route takes, succeeded", unroutedSNI)
	case errors.As(err, &certErr), errors.As(err, &alert):
		t.Fatalf("a handshake for %s was answered (%v); it must be closed without a byte", unroutedSNI, err)
	case !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET):
		t.Fatalf("a handshake for %s: %v; want the connection closed (EOF or reset)", unroutedSNI, err)
	}

	var lines []map[string]any
	waitUntil(t, "the access log to show the passthrough connections", 5*time.Second, func() bool {
		lines = r.gw.connectionLines()
		return findConnection(lines, l4PassListener, unroutedSNI) != nil &&
			findConnection(lines, l4PassListener, lbName) != nil
	})
	for _, c := range []struct {
		sni, upstream string
		results       []string
	}{
		{sni: unroutedSNI, upstream: "", results: []string{"no_route"}},
		{sni: lbName, upstream: l4PassUpstream, results: []string{"ok", "reset"}},
	} {
		l := findConnection(lines, l4PassListener, c.sni)
		if host, _, _ := net.SplitHostPort(fmt.Sprint(l["client"])); host != partnerAddr {
			t.Errorf("access log for sni %s: client %v, want the partner's address %s", c.sni, l["client"], partnerAddr)
		}
		if l["upstream"] != c.upstream || !slices.Contains(c.results, fmt.Sprint(l["result"])) {
			t.Errorf("access log for sni %s: upstream %v result %v, want upstream %q result in %v: %v",
				c.sni, l["upstream"], l["result"], c.upstream, c.results, l)
		}
	}
	t.Logf("unrouted SNI: the partner got %v; logged as %v", err, findConnection(lines, l4PassListener, unroutedSNI))
}

// l4Terminate: the partner's TLS session ends at the edge (it is shown
// drawbridge's listener certificate), drawbridge opens a pinned TLS
// connection to the LB's PROXY protocol port with a PROXY v2 header
// first, and nginx reads the partner's address from that header: it
// comes back as X-Proxy-Protocol-Addr and reaches the app as
// X-Forwarded-For, although nginx's TCP peer is the edge.
func (r *run) l4Terminate(t *testing.T) {
	addr := net.JoinHostPort(edgeAddr, l4TermPort)
	a, leaf, err := r.l4Request(l4TermListener, addr, listenerName, r.listenerCert.Pool(), http.MethodPost,
		"/l4/terminate/"+r.marker+"?note="+r.marker, map[string]string{"X-Marker": r.marker}, `{"note":"`+r.marker+`"}`)
	if err != nil {
		t.Fatalf("HTTPS request through the terminate listener: %v", err)
	}
	if got, want := transport.SPKIPin(leaf), transport.SPKIPin(r.listenerCert.Cert); got != want {
		t.Errorf("the terminate listener showed key %s (%s), want drawbridge's listener key %s", got, leaf.Subject, want)
	}
	e, err := a.echo()
	if err != nil {
		t.Fatalf("HTTPS request through the terminate listener: %v", err)
	}
	if err := markerIn(e, r.marker); err != nil {
		t.Fatal(err)
	}
	if got := a.header.Get("X-Proxy-Protocol-Addr"); got != partnerAddr {
		t.Errorf("nginx's $proxy_protocol_addr is %q, want the partner's address %s", got, partnerAddr)
	}
	if got := e.Headers["X-Forwarded-For"]; got != partnerAddr {
		t.Errorf("the app saw X-Forwarded-For %q (from the PROXY header), want %s", got, partnerAddr)
	}
	if got := e.Headers["X-Lb-Addr"]; got != lbAddr {
		t.Errorf("the request came through the LB at %q, want %q", got, lbAddr)
	}

	var l map[string]any
	waitUntil(t, "the access log to show the terminate connection", 5*time.Second, func() bool {
		l = findConnection(r.gw.connectionLines(), l4TermListener, listenerName)
		return l != nil
	})
	if host, _, _ := net.SplitHostPort(fmt.Sprint(l["client"])); host != partnerAddr {
		t.Errorf("access log: client %v, want the partner's address %s", l["client"], partnerAddr)
	}
	if l["upstream"] != l4TermUpstream || !slices.Contains([]string{"ok", "reset"}, fmt.Sprint(l["result"])) {
		t.Errorf("access log: upstream %v result %v, want %s and ok (or reset): %v", l["upstream"], l["result"], l4TermUpstream, l)
	}
}

// l4Metrics: drawbridge_l4_connections_total on the admin listener (on the
// edge's loopback, so asked from inside the edge) counts exactly the
// connections the partner opened to each tcp listener, with the right
// upstream and result; none is left open; bytes went both ways; and the
// passthrough upstream's TLS health check verified the LB by its pin.
func (r *run) l4Metrics(t *testing.T) {
	var samples []sample
	var lastErr error
	byListener := map[string]float64{}
	waitUntil(t, "the L4 metrics to count every connection the partner opened", 10*time.Second, func() bool {
		text, err := r.gw.adminGet("/metrics")
		if err != nil {
			if lastErr == nil || err.Error() != lastErr.Error() {
				t.Logf("GET /metrics from the edge: %v", err)
			}
			lastErr = err
			return false
		}
		samples = parseMetrics(text)
		clear(byListener)
		for _, s := range samples {
			if s.name == "drawbridge_l4_connections_total" {
				byListener[s.labels["listener"]] += s.value
			}
		}
		return byListener[l4PassListener] >= float64(r.l4Dials.get(l4PassListener)) &&
			byListener[l4TermListener] >= float64(r.l4Dials.get(l4TermListener))
	})

	for _, c := range []struct {
		listener, upstream string
		noRoute            float64
	}{
		{listener: l4PassListener, upstream: l4PassUpstream, noRoute: 1},
		{listener: l4TermListener, upstream: l4TermUpstream},
	} {
		want := float64(r.l4Dials.get(c.listener))
		if want == 0 {
			t.Fatalf("the partner opened no connection to %s: the scenarios before did not run", c.listener)
		}
		if got := byListener[c.listener]; got != want {
			t.Errorf("drawbridge_l4_connections_total{listener=%q} sums to %v, but the partner opened %v connections", c.listener, got, want)
		}
		var noRoute float64
		for _, s := range samples {
			if s.name != "drawbridge_l4_connections_total" || s.labels["listener"] != c.listener {
				continue
			}
			switch res := s.labels["result"]; {
			case res == "no_route" && s.labels["upstream"] == "":
				noRoute += s.value
			case (res == "ok" || res == "reset") && s.labels["upstream"] == c.upstream:
			default:
				t.Errorf("unexpected %s %v = %v: every connection should have reached %s", s.name, s.labels, s.value, c.upstream)
			}
		}
		if noRoute != c.noRoute {
			t.Errorf("listener %s: %v connections counted as no_route, want %v", c.listener, noRoute, c.noRoute)
		}
		if got := metricValue(samples, "drawbridge_l4_active_connections", map[string]string{"listener": c.listener}); got != 0 {
			t.Errorf("listener %s: %v connections still counted as open", c.listener, got)
		}
		for _, dir := range []string{"in", "out"} {
			if got := metricValue(samples, "drawbridge_l4_bytes_total", map[string]string{"listener": c.listener, "direction": dir}); got == 0 {
				t.Errorf("listener %s: no bytes counted %s", c.listener, dir)
			}
		}
	}
	if got := metricValue(samples, "drawbridge_health_checks_total", map[string]string{"upstream": l4PassUpstream, "result": "ok"}); got < 1 {
		t.Errorf("no successful TLS health check of %s counted", l4PassUpstream)
	}
	for _, s := range samples {
		if strings.HasPrefix(s.name, "drawbridge_l4_connections_total") {
			t.Logf("%s %v = %v", s.name, s.labels, s.value)
		}
	}
}

// connectionLines returns the access log's L4 lines ("msg":"connection").
func (g *gateway) connectionLines() []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(g.accessLog(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "connection" {
			out = append(out, m)
		}
	}
	return out
}

// findConnection returns the first access-log line of listener for sni.
func findConnection(lines []map[string]any, listener, sni string) map[string]any {
	for _, l := range lines {
		if l["listener"] == listener && l["sni"] == sni {
			return l
		}
	}
	return nil
}

// adminGet GETs path from drawbridge's admin listener, which listens on
// the edge's loopback: the request is made from inside the edge.
func (g *gateway) adminGet(path string) (string, error) {
	tr := &http.Transport{DialContext: dialerIn(g.tp.nsName(roleEdge)), DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + adminAddr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return string(b), nil
}

// sample is one line of Prometheus's text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// parseMetrics reads the samples of a /metrics answer. The label values
// the test looks at have no escapes, so they are kept as written.
func parseMetrics(text string) []sample {
	var out []sample
	for _, line := range strings.Split(text, "\n") {
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		s := sample{name: m[1], labels: map[string]string{}, value: v}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			s.labels[p[1]] = p[2]
		}
		out = append(out, s)
	}
	return out
}

// metricValue sums the samples called name whose labels include want.
func metricValue(samples []sample, name string, want map[string]string) float64 {
	var sum float64
	for _, s := range samples {
		if s.name != name {
			continue
		}
		match := true
		for k, v := range want {
			match = match && s.labels[k] == v
		}
		if match {
			sum += s.value
		}
	}
	return sum
}

// stripProxyHeader checks that stream starts with a PROXY protocol v2
// header carrying the partner's address as the source, and returns the
// bytes after it, which must be TLS as every other stream's.
func stripProxyHeader(stream []byte) ([]byte, error) {
	br := bufio.NewReader(bytes.NewReader(stream))
	h, err := proxyproto.Read(br)
	if err != nil {
		return nil, fmt.Errorf("no PROXY protocol header: %w", err)
	}
	if h.Version != 2 {
		return nil, fmt.Errorf("PROXY protocol version %d, want 2", h.Version)
	}
	src, _, ok := h.TCPAddrs()
	if !ok || src.IP.String() != partnerAddr {
		return nil, fmt.Errorf("the PROXY header's source is %v, want the partner's address %s", h.SourceAddr, partnerAddr)
	}
	return io.ReadAll(br)
}
