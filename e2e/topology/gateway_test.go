package topology

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// gatewayConf is drawbridge in the edge: one partner listener, the
// on-prem LB by host name (resolved through the edge's hosts file every
// second) and verified by pinned key only, and one catch-all route that
// needs an API key. Passive ejection is off so that a refused certificate
// keeps answering 502 (the reason under test) instead of 503 once ejected.
//
// The L4 tier (issue 6, deliverable 2) has two tcp listeners on other
// ports of edgeAddr: "nlb" passes the partner's TLS through to the LB's
// 443 when the SNI is the LB's name (any other name is closed), with a
// TLS health check verified by the same pins (it runs at start; the long
// interval keeps a check from being cut in half when the captures stop,
// which would look like a broken TLS stream); "nlb-tls" terminates TLS
// with the partner listener's certificate and opens a new TLS connection,
// pinned, to the LB's PROXY protocol port, sending a PROXY v2 header
// first. The admin listener is on the edge's loopback, for /metrics.
const gatewayConf = `listeners:
  - name: partners
    addr: {{listen}}
    tls: {cert: listener.crt, key: listener.key}
  - name: nlb
    type: tcp
    addr: {{l4pass}}
    tls: {mode: passthrough}
    sni:
      {{lb}}: onprem-tcp
  - name: nlb-tls
    type: tcp
    addr: {{l4term}}
    tls: {mode: terminate, cert: listener.crt, key: listener.key}
    sni:
      "*": onprem-pp
admin:
  addr: {{admin}}
upstreams:
  onprem:
    targets: [https://{{lb}}:443]
    tls:
      server_name: {{lb}}
      pins: [{{pins}}]
    dns_refresh: 1s
    dial_timeout: 2s
    passive: {max_fails: -1}
  onprem-tcp:
    targets: [tcp://{{lb}}:443]
    tls:
      server_name: {{lb}}
      pins: [{{pins}}]
    health: {type: tls, interval: 1m}
    dns_refresh: 1s
    dial_timeout: 2s
  onprem-pp:
    targets: [tls://{{lb}}:{{lbpp}}]
    tls:
      server_name: {{lb}}
      pins: [{{pins}}]
    proxy_protocol: v2
    dns_refresh: 1s
    dial_timeout: 2s
routes:
  - path: /{proxy+}
    upstream: onprem
    api_key_required: true
    timeout: 10s
store: {type: bolt, path: drawbridge.db}
plans:
  partners:
    throttle: {rate: 1000, burst: 1000}
log:
  level: info
  access: access.log
`

// listenerName is the name on drawbridge's partner certificate.
const listenerName = "api.drawbridge.test"

// gateway is drawbridge serving in the edge namespace.
type gateway struct {
	tp     *topology
	bin    string
	dir    string
	p      *proc
	apiKey string
}

// startGateway writes the config pinning pins, creates an API key with
// `drawbridge keys create` (straight into the bolt store, before serve
// opens it), checks the config with `drawbridge validate` and serves.
func startGateway(t *testing.T, tp *topology, bin, dir string, listener *certs.Cert, pins ...*certs.Cert) *gateway {
	t.Helper()
	g := &gateway{tp: tp, bin: bin, dir: dir}
	writeFile(t, filepath.Join(dir, "listener.crt"), listener.CertPEM)
	writeFile(t, filepath.Join(dir, "listener.key"), listener.KeyPEM)
	g.writeConfig(t, pins...)
	g.run(t, "validate", "-c", g.config())
	out := g.run(t, "keys", "create", "-c", g.config(), "--name", "acme", "--plan", "partners")
	m := regexp.MustCompile(`(?m)^key: (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("drawbridge keys create printed no key line:\n%s", out)
	}
	g.apiKey = m[1]
	g.p = startIn(t, tp.nsName(roleEdge), "drawbridge", dir, bin, "serve", "-c", g.config())
	g.p.waitOutput(t, `"msg":"listening"`, 15*time.Second)
	return g
}

func (g *gateway) config() string { return filepath.Join(g.dir, "drawbridge.yaml") }

// writeConfig writes the config trusting the given certificates' keys.
func (g *gateway) writeConfig(t *testing.T, pins ...*certs.Cert) {
	t.Helper()
	var ps []string
	for _, c := range pins {
		ps = append(ps, transport.SPKIPin(c.Cert))
	}
	conf := strings.NewReplacer(
		"{{listen}}", net.JoinHostPort(edgeAddr, gatewayPort),
		"{{l4pass}}", net.JoinHostPort(edgeAddr, l4PassPort),
		"{{l4term}}", net.JoinHostPort(edgeAddr, l4TermPort),
		"{{admin}}", adminAddr,
		"{{lbpp}}", lbProxyProtocolPort,
		"{{lb}}", lbName,
		"{{pins}}", strings.Join(ps, ", "),
	).Replace(gatewayConf)
	writeFile(t, g.config(), []byte(conf))
}

// run runs a drawbridge command in the edge namespace and returns its
// output, failing the test if it fails.
func (g *gateway) run(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", g.tp.nsName(roleEdge), g.bin}, args...)...)
	cmd.Dir = g.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("drawbridge %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// reload re-pins the upstream to pins and sends SIGHUP, waiting until
// drawbridge logs that the new config serves.
func (g *gateway) reload(t *testing.T, pins ...*certs.Cert) {
	t.Helper()
	g.writeConfig(t, pins...)
	before := strings.Count(g.p.out.String(), `"msg":"config reloaded"`)
	if err := g.p.signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP to drawbridge: %v", err)
	}
	waitUntil(t, "drawbridge to log the reload", 10*time.Second, func() bool {
		if strings.Contains(g.p.out.String(), `"msg":"config reload failed`) {
			t.Fatalf("drawbridge refused the new config:\n%s", g.p.out.String())
		}
		return strings.Count(g.p.out.String(), `"msg":"config reloaded"`) > before
	})
}

func (g *gateway) accessLog() string { return readFile(filepath.Join(g.dir, "access.log")) }

// partner is the partner's HTTPS client. Its sockets live in the partner
// namespace; it trusts drawbridge's listener certificate and nothing else.
type partner struct {
	client *http.Client
	base   string
	apiKey string
}

func newPartner(t *testing.T, tp *topology, listener *certs.Cert, apiKey string) *partner {
	tr := &http.Transport{
		DialContext:         dialerIn(tp.nsName(rolePartner)),
		TLSClientConfig:     &tls.Config{RootCAs: listener.Pool(), ServerName: listenerName, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 16,
		ForceAttemptHTTP2:   true,
	}
	// An open socket keeps its namespace alive after `ip netns del`.
	t.Cleanup(tr.CloseIdleConnections)
	return &partner{
		client: &http.Client{Transport: tr, Timeout: 15 * time.Second},
		base:   "https://" + net.JoinHostPort(edgeAddr, gatewayPort),
		apiKey: apiKey,
	}
}

// answer is what the partner got back.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// echo decodes an app's answer; an answer that is not one is an error.
func (a answer) echo() (appEcho, error) {
	var e appEcho
	if a.status != http.StatusOK {
		return e, fmt.Errorf("status %d, body %s", a.status, a.body)
	}
	if err := json.Unmarshal(a.body, &e); err != nil || e.App == "" {
		return e, fmt.Errorf("not an app's echo (%v): %s", err, a.body)
	}
	return e, nil
}

// appEcho mirrors cmd/app's Echo.
type appEcho struct {
	App     string            `json:"app"`
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Query   string            `json:"query"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// request sends one request; withKey adds the partner's x-api-key.
func (p *partner) request(method, pathAndQuery string, withKey bool, header map[string]string, body string) (answer, error) {
	req, err := http.NewRequest(method, p.base+pathAndQuery, bytes.NewReader([]byte(body)))
	if err != nil {
		return answer{}, err
	}
	if withKey {
		req.Header.Set("x-api-key", p.apiKey)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("reading the answer: %w", err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}
