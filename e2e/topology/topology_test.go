package topology

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

// run is everything one topology test has started, for the scenarios and
// for the diagnostics printed when one fails.
type run struct {
	tp       *topology
	gw       *gateway
	lb       *loadBalancer
	apps     map[string]*proc
	captures []*capture
	partner  *partner

	listenerCert, lbCert, rogueCert, nextCert *certs.Cert

	// marker is in every request the partner sends, through every
	// listener, while the captures run; it must be in none of them.
	marker  string
	l4Dials l4Dials
	// killedAt is when app1 was killed: the captures must go on past it.
	killedAt time.Time
}

func TestTopology(t *testing.T) {
	requireTools(t)

	root := t.TempDir()
	dir := func(name string) string {
		d := filepath.Join(root, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		return d
	}
	drawbridgeBin, appBin := buildBinaries(t, dir("bin"))

	r := &run{apps: map[string]*proc{}, marker: newMarker(t)}
	t.Cleanup(func() {
		if t.Failed() {
			r.diagnostics(t)
		}
	})
	r.tp = newTopology(t)
	r.tp.setEdgeHosts(lbAddr)

	// The LB's three certificates (current, rogue, next) carry the same
	// name; only their keys tell them apart, which is what pinning checks.
	r.listenerCert = certs.SelfSigned(t, certs.Options{DNSNames: []string{listenerName}})
	r.lbCert = certs.SelfSigned(t, certs.Options{DNSNames: []string{lbName}})
	r.rogueCert = certs.SelfSigned(t, certs.Options{DNSNames: []string{lbName}})
	r.nextCert = certs.SelfSigned(t, certs.Options{DNSNames: []string{lbName}})
	appsCA := certs.SelfSigned(t, certs.Options{IsCA: true, CommonName: "on-prem apps CA"})

	// The captures start before any process, so every TCP connection of
	// the run is captured from its SYN.
	pcaps := dir("pcap")
	for _, c := range [][2]string{{roleEdge, "to-partner"}, {roleLB, "to-edge"}, {roleLB, "to-app1"}, {roleLB, "to-app2"}} {
		r.captures = append(r.captures, startCapture(t, r.tp, pcaps, c[0], c[1]))
	}
	for role, addr := range map[string]string{roleApp1: app1Addr, roleApp2: app2Addr} {
		cert := certs.SelfSigned(t, certs.Options{DNSNames: []string{"app.internal"}, Parent: appsCA})
		r.apps[role] = startApp(t, r.tp, role, dir(role), appBin, addr, cert)
	}
	r.lb = startNginx(t, r.tp, dir("lb"), r.lbCert, appsCA)
	r.gw = startGateway(t, r.tp, drawbridgeBin, dir("edge"), r.listenerCert, r.lbCert)
	r.partner = newPartner(t, r.tp, r.listenerCert, r.gw.apiKey)

	// The scenarios share one topology and run in order, all of them
	// under the captures; the last stops the captures and checks them.
	// Every partner request of every scenario carries the run's marker
	// (see marked; the L4 scenarios send it too). A failed scenario stops
	// the rest.
	for _, s := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"partner cannot reach the LB past the edge", r.partnerIsolated},
		{"request with API key reaches an app; without one 403", r.apiKey},
		{"the marker reaches both apps in path, query, header and body", r.markerArrives},
		// The L4 tier (issue 6, deliverable 2): tcp listeners.
		{"L4 passthrough by SNI: the LB's own certificate; unrouted SNI closed", r.l4Passthrough},
		{"L4 terminate to the LB with PROXY v2: the partner's address arrives", r.l4Terminate},
		{"L4 metrics count the connections", r.l4Metrics},
		{"rogue LB certificate refused; two-pin rotation without restart", r.pinRotation},
		{"traffic follows the LB to a new address", r.addressChange},
		{"app killed: no failed request beyond those in flight", r.appKilled},
		{"no cleartext on any link during the whole run", r.noCleartext},
	} {
		if !t.Run(s.name, s.fn) {
			t.FailNow()
		}
	}
}

// startApp runs the echo app in its namespace on addr:appPort.
func startApp(t *testing.T, tp *topology, role, dir, bin, addr string, cert *certs.Cert) *proc {
	t.Helper()
	writeFile(t, filepath.Join(dir, "app.crt"), cert.CertPEM)
	writeFile(t, filepath.Join(dir, "app.key"), cert.KeyPEM)
	p := startIn(t, tp.nsName(role), role, dir, bin,
		"-name", role, "-addr", net.JoinHostPort(addr, appPort), "-cert", "app.crt", "-key", "app.key")
	p.waitOutput(t, "listening", 10*time.Second)
	return p
}

// partnerIsolated: the edge does not forward, and so the partner, though
// it routes the whole range to the edge, cannot open a connection to the
// LB, which the edge itself reaches.
func (r *run) partnerIsolated(t *testing.T) {
	if v := r.tp.sysctl(roleEdge, "/proc/sys/net/ipv4/ip_forward"); v != "0" {
		t.Fatalf("edge net.ipv4.ip_forward = %s, want 0", v)
	}
	if err := handshakeFrom(r.tp.nsName(roleEdge), lbAddr, r.lbCert); err != nil {
		t.Fatalf("the edge cannot reach the LB, so the partner's failure below would prove nothing: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := dialerIn(r.tp.nsName(rolePartner))(ctx, "tcp", net.JoinHostPort(lbAddr, "443"))
	if err == nil {
		conn.Close()
		t.Fatalf("the partner connected to the LB at %s directly, past the edge", lbAddr)
	}
	t.Logf("partner → %s:443 directly: %v (as it must)", lbAddr, err)
}

// apiKey: with the key, the request reaches an app intact and the app's
// answer comes back; without the key, or with a wrong one, API Gateway's
// 403 and nothing reaches the LB.
func (r *run) apiKey(t *testing.T) {
	e, err := r.markedEcho(r.marked(http.MethodGet, "/orders/42", true, nil))
	if err != nil {
		t.Fatalf("GET /orders/42 with key: %v", err)
	}
	if want := "/orders/42/" + r.marker; e.Method != http.MethodGet || e.Path != want || e.Query != "note="+r.marker {
		t.Errorf("the app saw %s %s?%s, want GET %s?note=%s", e.Method, e.Path, e.Query, want, r.marker)
	}
	if got := e.Headers["X-Forwarded-For"]; got != partnerAddr {
		t.Errorf("the app saw X-Forwarded-For %q, want the partner's address %q", got, partnerAddr)
	}
	if got := e.Headers["X-Lb-Addr"]; got != lbAddr {
		t.Errorf("the request came through the LB at %q, want %q", got, lbAddr)
	}

	for _, c := range []struct {
		desc    string
		withKey bool
		header  map[string]string
	}{
		{desc: "no key"},
		{desc: "wrong key", header: map[string]string{"x-api-key": "not-a-key-of-this-gateway"}},
	} {
		a, err := r.marked(http.MethodGet, "/orders/42", c.withKey, c.header)
		if err != nil {
			t.Fatalf("%s: %v", c.desc, err)
		}
		if a.status != http.StatusForbidden || string(a.body) != `{"message":"Forbidden"}` {
			t.Errorf("%s: got %d %s, want 403 {\"message\":\"Forbidden\"}", c.desc, a.status, a.body)
		}
		if got := a.header.Get("x-amzn-ErrorType"); got != "ForbiddenException" {
			t.Errorf("%s: x-amzn-ErrorType %q, want ForbiddenException", c.desc, got)
		}
	}
}

// markerArrives: nginx balances over both apps, so both app links carry
// the marker, and a POST (nginx retries only GETs; the other scenarios
// send those) carries it too, arriving intact in every place.
func (r *run) markerArrives(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 6; i++ {
		e, err := r.markedEcho(r.marked(http.MethodGet, fmt.Sprintf("/warmup/%d", i), true, nil))
		if err != nil {
			t.Fatalf("GET /warmup/%d: %v", i, err)
		}
		seen[e.App] = true
	}
	if !seen[roleApp1] || !seen[roleApp2] {
		t.Fatalf("the LB balanced only to %v; want both apps", seen)
	}
	e, err := r.markedEcho(r.marked(http.MethodPost, "/orders", true, nil))
	if err != nil {
		t.Fatalf("POST with marker: %v", err)
	}
	if e.Method != http.MethodPost {
		t.Errorf("the app saw %s, want POST", e.Method)
	}
}

// noCleartext stops the captures, which have run since before the first
// process started, and checks them all: the marker (in every request of
// every scenario, through the http listener and both tcp listeners) must
// be in no captured packet and no reassembled stream, and every TCP
// stream that carried data must be TLS records from its first byte,
// except that a stream to the LB's PROXY protocol port starts with a
// PROXY v2 header (binary, with addresses only) and is TLS from the byte
// after it (see checkStream for streams cut mid-record). Each link must
// have carried TLS to each of its servers, the LB's new address included,
// and the captures must have gone on past the app kill.
func (r *run) noCleartext(t *testing.T) {
	marker := r.marker
	for _, c := range r.captures {
		c.stop(t)
	}
	// Each link's servers: the connections on it must include at least
	// one TLS stream to each, so an idle link or listener cannot pass.
	servers := map[string][]string{
		roleEdge + ":to-partner": {
			net.JoinHostPort(edgeAddr, gatewayPort),
			net.JoinHostPort(edgeAddr, l4PassPort),
			net.JoinHostPort(edgeAddr, l4TermPort),
		},
		roleLB + ":to-edge": {
			net.JoinHostPort(lbAddr, "443"),
			net.JoinHostPort(lbAddr, lbProxyProtocolPort),
			// The address only exists after the move, so this proves
			// the moved traffic was captured (and checked) too.
			net.JoinHostPort(lbNewAddr, "443"),
		},
		roleLB + ":to-app1": {net.JoinHostPort(app1Addr, appPort)},
		roleLB + ":to-app2": {net.JoinHostPort(app2Addr, appPort)},
	}
	// The LB's PROXY protocol port, at either of its addresses.
	proxyProtocolServers := map[string]bool{
		net.JoinHostPort(lbAddr, lbProxyProtocolPort):    true,
		net.JoinHostPort(lbNewAddr, lbProxyProtocolPort): true,
	}
	for _, c := range r.captures {
		s, err := readCapture(c.file, []byte(marker))
		if err != nil {
			t.Errorf("%s: %v", c.link, err)
			continue
		}
		if s.packets == 0 {
			t.Errorf("%s: the capture is empty", c.link)
			continue
		}
		if len(s.markerIn) > 0 {
			t.Errorf("%s: the marker is in cleartext in packets %v of %s", c.link, s.markerIn, c.file)
		}
		tlsToServer, dataFlows, cutFlows := map[string]int{}, 0, 0
		for key, fl := range s.flows {
			if len(fl.segs) == 0 {
				continue
			}
			dataFlows++
			cut, err := s.checkStream(key, []byte(marker), proxyProtocolServers[key.dst])
			if err != nil {
				t.Errorf("%s: stream %s: %v", c.link, key, err)
				continue
			}
			if cut {
				cutFlows++
				t.Logf("%s: stream %s ends inside a TLS record, cut by a FIN or RST (accepted)", c.link, key)
			}
			tlsToServer[key.dst]++
		}
		for _, srv := range servers[c.link] {
			if tlsToServer[srv] == 0 {
				t.Errorf("%s: no TLS stream to %s in %d packets", c.link, srv, s.packets)
			}
		}
		if err := s.sawAfter(c.link, r.killedAt); err != nil {
			t.Errorf("%s: the capture did not cover the app kill: %v", c.link, err)
		}
		t.Logf("%s: %d packets, %d TCP streams with data checked, %d of them cut mid-record", c.link, s.packets, dataFlows, cutFlows)
	}
}

// sawAfter checks that the link's capture went on past at: the links
// still in use saw a packet with data after it, and app1's link saw app1's
// side of a connection end (FIN or RST) after it, as its kill does.
func (s *captureSummary) sawAfter(link string, at time.Time) error {
	if at.IsZero() {
		return errors.New("the app kill did not happen")
	}
	if link == roleLB+":to-app1" {
		app1 := net.JoinHostPort(app1Addr, appPort)
		for key, fl := range s.flows {
			if key.src == app1 && fl.ended && fl.endTime.After(at) {
				return nil
			}
		}
		return fmt.Errorf("no connection of app1 ended after the kill at %s", at.Format(time.RFC3339Nano))
	}
	for _, fl := range s.flows {
		if len(fl.segs) > 0 && fl.last.After(at) {
			return nil
		}
	}
	return fmt.Errorf("no packet with data after the kill at %s", at.Format(time.RFC3339Nano))
}

// marked sends a request that carries the run's marker in all four places
// the test looks for it: a path segment after path, the note query
// parameter, the X-Marker header and a JSON body (a GET's too: drawbridge
// and nginx pass it on, and nginx can retry a GET with its body), along
// with any other header given.
func (r *run) marked(method, path string, withKey bool, header map[string]string) (answer, error) {
	h := map[string]string{"X-Marker": r.marker, "Content-Type": "application/json"}
	maps.Copy(h, header)
	return r.partner.request(method, path+"/"+r.marker+"?note="+r.marker, withKey, h, `{"note":"`+r.marker+`"}`)
}

// markedEcho takes marked's result: an app's echo that shows the marker
// arrived in every place, so it crossed every link of the path.
func (r *run) markedEcho(a answer, err error) (appEcho, error) {
	if err != nil {
		return appEcho{}, err
	}
	e, err := a.echo()
	if err != nil {
		return e, err
	}
	if err := markerIn(e, r.marker); err != nil {
		return e, err
	}
	return e, nil
}

// markerIn reports whether the app received the marker in the path, the
// query, the X-Marker header and the body.
func markerIn(e appEcho, marker string) error {
	if !strings.Contains(e.Path, marker) || !strings.Contains(e.Query, marker) ||
		e.Headers["X-Marker"] != marker || !strings.Contains(e.Body, marker) {
		return fmt.Errorf("the app did not see the marker in path, query, header and body: %+v", e)
	}
	return nil
}

// pinRotation: nginx serving a rogue certificate with the LB's very name
// is refused with a 502 and the log says "pin mismatch"; then, with no
// restart, drawbridge pins the current and the next key (SIGHUP), the LB
// rotates to the next one, and drawbridge drops the old pin.
func (r *run) pinRotation(t *testing.T) {
	pid := r.gw.p.cmd.Process.Pid

	r.lb.swapCert(t, lbAddr, r.rogueCert)
	var last answer
	waitUntil(t, "drawbridge to refuse the rogue certificate", 15*time.Second, func() bool {
		a, err := r.marked(http.MethodGet, "/rotation/rogue", true, nil)
		last = a
		return err == nil && a.status == http.StatusBadGateway
	})
	if want := `{"message": "Internal server error"}`; string(last.body) != want {
		t.Errorf("rogue certificate: body %s, want %s", last.body, want)
	}
	// The logs arrive through pipes and a file, a moment after the answer.
	waitUntil(t, "drawbridge's log and access log to say pin mismatch", 5*time.Second, func() bool {
		return strings.Contains(r.gw.p.out.String(), `"reason":"upstream tls: pin mismatch"`) &&
			strings.Contains(r.gw.accessLog(), `"status":502`) &&
			strings.Contains(r.gw.accessLog(), `"error":"upstream tls: pin mismatch"`)
	})

	r.lb.swapCert(t, lbAddr, r.lbCert)
	r.expectOK(t, "the genuine certificate back")
	r.gw.reload(t, r.lbCert, r.nextCert)
	r.expectOK(t, "two pins, LB on the current key")
	r.lb.swapCert(t, lbAddr, r.nextCert)
	r.expectOK(t, "two pins, LB rotated to the next key")
	r.gw.reload(t, r.nextCert)
	r.expectOK(t, "the old pin dropped")

	if r.gw.p.exited() || r.gw.p.cmd.Process.Pid != pid {
		t.Fatalf("drawbridge restarted or exited: %v", r.gw.p.err)
	}
}

// expectOK waits until requests succeed, then requires five in a row to:
// a change on the LB settles in a moment (nginx's old worker finishing),
// and then must hold.
func (r *run) expectOK(t *testing.T, what string) {
	t.Helper()
	var lastErr error
	waitUntil(t, what+": a request to succeed", 15*time.Second, func() bool {
		_, err := r.markedEcho(r.marked(http.MethodGet, "/rotation/ok", true, nil))
		lastErr = err
		return err == nil
	})
	for i := 0; i < 5; i++ {
		_, err := r.markedEcho(r.marked(http.MethodGet, fmt.Sprintf("/rotation/ok/%d", i), true, nil))
		if err != nil {
			t.Fatalf("%s: request %d: %v (last before: %v)", what, i, err, lastErr)
		}
	}
}

// addressChange: the LB gets a new address and the edge's hosts file
// says so; drawbridge follows within its DNS refresh (plus Go's 5 s hosts
// file cache), then the old address is removed and every request still
// succeeds, all without a restart.
func (r *run) addressChange(t *testing.T) {
	pid := r.gw.p.cmd.Process.Pid
	// The new address is a secondary one in the same subnet; by default
	// the kernel deletes secondaries with their primary, so it must be
	// promoted instead when the old address goes.
	mustRun(t, "ip", "netns", "exec", r.tp.nsName(roleLB), "sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/to-edge/promote_secondaries")
	mustRun(t, "ip", "-n", r.tp.nsName(roleLB), "addr", "add", lbNewAddr+"/24", "dev", "to-edge")
	r.tp.setEdgeHosts(lbNewAddr)

	waitUntil(t, "requests to reach the LB at its new address", 30*time.Second, func() bool {
		e, err := r.markedEcho(r.marked(http.MethodGet, "/moved", true, nil))
		return err == nil && e.Headers["X-Lb-Addr"] == lbNewAddr
	})
	waitUntil(t, "drawbridge to log the new address", 5*time.Second, func() bool {
		return strings.Contains(r.gw.p.out.String(), `"msg":"target addresses changed"`)
	})

	mustRun(t, "ip", "-n", r.tp.nsName(roleLB), "addr", "del", lbAddr+"/24", "dev", "to-edge")
	for i := 0; i < 10; i++ {
		e, err := r.markedEcho(r.marked(http.MethodGet, fmt.Sprintf("/moved/%d", i), true, nil))
		if err != nil {
			t.Fatalf("request %d after the old address was removed: %v", i, err)
		}
		if got := e.Headers["X-Lb-Addr"]; got != lbNewAddr {
			t.Fatalf("request %d reached the LB at %q, want %q", i, got, lbNewAddr)
		}
	}
	if r.gw.p.exited() || r.gw.p.cmd.Process.Pid != pid {
		t.Fatalf("drawbridge restarted or exited: %v", r.gw.p.err)
	}
}

// appKilled sends a bounded stream of requests from four workers and
// kills app1 (SIGKILL, as a crash) when the 50th is due. The only requests
// allowed to fail are those exposed to the kill: in flight when it began,
// or started while it was under way. Every request started after app1 is
// gone is answered, by app2.
func (r *run) appKilled(t *testing.T) {
	const (
		total   = 200
		workers = 4
		killAt  = 50
	)
	// Phases of the kill, as a request sees them when it starts.
	const (
		beforeKill = iota
		duringKill
		afterKill
	)
	type result struct {
		phase int32
		app   string
		err   error
	}
	var (
		next, inFlight atomic.Int64
		phase          atomic.Int32
		inFlightAtKill int64
		mu             sync.Mutex
		results        []result
		wg             sync.WaitGroup
	)
	deadline := time.Now().Add(60 * time.Second)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := next.Add(1)
				if i > total {
					return
				}
				if i == killAt {
					// A request that saw beforeKill counted itself in
					// inFlight first, so the load below includes it
					// unless it had already finished.
					phase.Store(duringKill)
					inFlightAtKill = inFlight.Load()
					r.killedAt = time.Now()
					r.apps[roleApp1].kill()
					phase.Store(afterKill)
				}
				inFlight.Add(1)
				res := result{phase: phase.Load()}
				e, err := r.markedEcho(r.marked(http.MethodGet, fmt.Sprintf("/stream/%d", i), true, nil))
				inFlight.Add(-1)
				res.err, res.app = err, e.App
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	if len(results) != total {
		t.Fatalf("%d of %d requests were sent within the time bound", len(results), total)
	}
	exposed, failedExposed := inFlightAtKill, 0
	answers := map[int32]map[string]int{beforeKill: {}, duringKill: {}, afterKill: {}}
	for _, res := range results {
		if res.phase == duringKill {
			exposed++
		}
		switch {
		case res.err != nil && res.phase == afterKill:
			t.Errorf("a request sent after app1 was killed failed: %v", res.err)
		case res.err != nil:
			failedExposed++
			t.Logf("a request exposed to the kill failed: %v", res.err)
		default:
			answers[res.phase][res.app]++
		}
	}
	if int64(failedExposed) > exposed {
		t.Errorf("%d requests sent before app1 was gone failed, but only %d were exposed to the kill", failedExposed, exposed)
	}
	if answers[beforeKill][roleApp1] == 0 || answers[beforeKill][roleApp2] == 0 {
		t.Errorf("before the kill the answers came from %v; want both apps", answers[beforeKill])
	}
	if n := answers[afterKill][roleApp1]; n > 0 {
		t.Errorf("%d requests sent after app1 was killed were answered by app1", n)
	}
	if answers[afterKill][roleApp2] == 0 {
		t.Errorf("no request sent after the kill was answered by app2: %v", answers[afterKill])
	}
	t.Logf("%d requests; %d exposed to the kill, %d of them failed; answers before %v, during %v, after %v",
		total, exposed, failedExposed, answers[beforeKill], answers[duringKill], answers[afterKill])
}

// newMarker is a string that appears nowhere but where the test puts it.
func newMarker(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "drawbridge-marker-" + hex.EncodeToString(b)
}

// diagnostics prints what the processes said, for a failed run.
func (r *run) diagnostics(t *testing.T) {
	tail := func(s string) string {
		const max = 16 << 10
		if len(s) > max {
			return "…" + s[len(s)-max:]
		}
		return s
	}
	if r.gw != nil && r.gw.p != nil {
		t.Logf("drawbridge output:\n%s", tail(r.gw.p.out.String()))
		t.Logf("drawbridge access log:\n%s", tail(r.gw.accessLog()))
	}
	if r.lb != nil {
		t.Logf("nginx error log:\n%s", tail(readFile(filepath.Join(r.lb.dir, "error.log"))))
		t.Logf("nginx access log:\n%s", tail(readFile(filepath.Join(r.lb.dir, "access.log"))))
	}
	for name, p := range r.apps {
		t.Logf("%s output:\n%s", name, tail(p.out.String()))
	}
	for _, c := range r.captures {
		t.Logf("tcpdump %s output:\n%s", c.link, tail(c.p.out.String()))
	}
	if r.tp != nil {
		t.Logf("edge hosts file (%s):\n%s", r.tp.hostsFile(), r.tp.hosts)
	}
}
