package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/drawbridge-gw/drawbridge/internal/gateway"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/listener"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

// Status is a hop's verdict.
type Status string

// Statuses, from best to worst.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Kinds of hop.
const (
	KindListener = "listener"
	KindUpstream = "upstream"
	// KindStore is the hop to a Redis store.
	KindStore = "store"
)

// DefaultTimeout bounds each network step (lookup, connect, handshake,
// health request) when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// ExpiryWarning is how close to its expiry a certificate gets a warning.
const ExpiryWarning = 14 * 24 * time.Hour

// Hop is the result of checking one listener or one upstream target.
type Hop struct {
	Kind   string `json:"kind"`   // KindListener or KindUpstream
	Name   string `json:"name"`   // the listener's or upstream's name
	Target string `json:"target"` // the listen address or the target URL
	Status Status `json:"status"`
	// Detail is what was found, or the cause of a warning or failure.
	Detail string `json:"detail"`
	// Fix says what to do about a warning or failure; empty when OK.
	Fix string `json:"fix,omitempty"`
}

// String formats h as one line: "KIND NAME → TARGET [DETAIL] STATUS".
func (h Hop) String() string {
	return fmt.Sprintf("%s %s → %s [%s] %s", h.Kind, h.Name, h.Target, h.Detail, strings.ToUpper(string(h.Status)))
}

// Failed reports whether any hop failed.
func Failed(hops []Hop) bool {
	return slices.ContainsFunc(hops, func(h Hop) bool { return h.Status == Fail })
}

// Options tunes a check.
type Options struct {
	// Timeout bounds each network step of one target. It defaults to
	// DefaultTimeout.
	Timeout time.Duration
	// Now is the time certificates are judged at. It defaults to time.Now.
	Now func() time.Time
}

// Run checks every listener of cfg, then a Redis store, then every target
// of every upstream in name order, and returns one hop each in that order. Targets are
// checked concurrently. Only the addresses in cfg (and its resolvers) are
// dialed.
func Run(ctx context.Context, cfg *config.Config, o Options) []Hop {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var hops []Hop
	for _, lc := range cfg.Listeners {
		// A listener with ACME only has no certificate file to check.
		if lc.TLS.ACME == nil || lc.TLS.Cert != "" {
			hops = append(hops, checkListener(lc, o.Now()))
		}
		hops = append(hops, checkACME(ctx, lc, o.Now())...)
	}
	hops = append(hops, checkStore(ctx, cfg, o.Timeout)...)
	type job struct {
		uc     *config.Upstream
		target string
	}
	var jobs []job
	names := make([]string, 0, len(cfg.Upstreams))
	for name := range cfg.Upstreams {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, t := range cfg.Upstreams[name].Targets {
			jobs = append(jobs, job{cfg.Upstreams[name], t})
		}
	}
	results := make([]Hop, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() { results[i] = checkTarget(ctx, j.uc, j.target, o) })
	}
	wg.Wait()
	return append(hops, results...)
}

// checkListener checks a listener's certificate, key and client CA file.
func checkListener(lc config.Listener, now time.Time) Hop {
	h := Hop{Kind: KindListener, Name: lc.Name, Target: lc.Addr}
	if lc.Type == config.ListenerTCP && lc.TLS.Mode == config.ModePassthrough {
		// Passthrough serves no certificate: each target's own is checked
		// as its upstream's hop.
		h.Status, h.Detail = OK, fmt.Sprintf("tcp passthrough, %d sni routes, targets serve their own certificates", len(lc.SNI))
		return h
	}
	certs, err := listener.LoadCerts(lc.TLS.Cert, lc.TLS.Key)
	if err != nil {
		h.Status, h.Detail = Fail, err.Error()
		switch msg := err.Error(); {
		case strings.Contains(msg, "does not match"):
			h.Fix = fmt.Sprintf("tls.key must be the private key of the certificate in %q: use the key it was issued for, or reissue the certificate for this key", lc.TLS.Cert)
		case strings.Contains(msg, "leaf certificate first"):
			h.Fix = "put the leaf certificate first in tls.cert, then its intermediates"
		default:
			h.Fix = "fix tls.cert and tls.key: PEM certificate chain, leaf first, and its private key"
		}
		return h
	}
	tc, _ := certs.GetCertificate(nil)
	leaf := tc.Leaf
	var notes []string
	notes = append(notes, "cert "+names(leaf))
	status, dates, fix := judgeDates(leaf, now, "renew the listener certificate "+quote(lc.TLS.Cert)+"; partners' handshakes fail while it is "+"out of date")
	notes = append(notes, dates)
	if msg := chainOrder(tc.Certificate); msg != "" {
		notes = append(notes, msg)
		if status == OK {
			status, fix = Warn, "order tls.cert as leaf, then the certificate that signed it, and so on up; some clients refuse an out-of-order chain"
		}
	}
	minV := "TLS1.2+"
	if lc.TLS.MinVersion == "1.3" {
		minV = "TLS1.3"
	}
	notes = append(notes, minV)
	if lc.TLS.ClientCA != "" {
		n, err := loadPEMCerts(lc.TLS.ClientCA)
		if err != nil {
			notes = append(notes, err.Error())
			status, fix = Fail, "tls.client_ca must be a PEM file of the CA certificates partners' client certificates are issued by"
		} else {
			notes = append(notes, fmt.Sprintf("client CAs %d", n))
		}
	}
	h.Status, h.Detail, h.Fix = status, strings.Join(notes, ", "), fix
	return h
}

// judgeDates says how cert's validity stands at now: FAIL outside it,
// WARN within ExpiryWarning of its end. fix is used for both.
func judgeDates(cert *x509.Certificate, now time.Time, fix string) (Status, string, string) {
	switch {
	case now.After(cert.NotAfter):
		return Fail, "expired " + day(cert.NotAfter), fix
	case now.Before(cert.NotBefore):
		return Fail, "not valid before " + cert.NotBefore.UTC().Format(time.RFC3339), "check the clock of this machine, or " + fix
	}
	left := cert.NotAfter.Sub(now)
	days := fmt.Sprintf("%d days left", int(left/(24*time.Hour)))
	if left < ExpiryWarning {
		return Warn, days + " (expires " + day(cert.NotAfter) + ")", fix
	}
	return OK, days, ""
}

// chainOrder returns a problem with the order of a PEM chain (DER, leaf
// first), or "" when each certificate is signed by the next.
func chainOrder(ders [][]byte) string {
	for i := 0; i+1 < len(ders); i++ {
		child, err1 := x509.ParseCertificate(ders[i])
		parent, err2 := x509.ParseCertificate(ders[i+1])
		if err1 != nil || err2 != nil {
			return "chain unparsable"
		}
		if child.CheckSignatureFrom(parent) != nil {
			return fmt.Sprintf("chain out of order: certificate %d is not signed by certificate %d", i+1, i+2)
		}
	}
	return ""
}

// names lists the names a certificate is valid for, its CN when it has
// no SANs.
func names(c *x509.Certificate) string {
	var ns []string
	ns = append(ns, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		ns = append(ns, ip.String())
	}
	if len(ns) == 0 {
		return "CN=" + c.Subject.CommonName + " (no SAN)"
	}
	return strings.Join(ns, " ")
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

func quote(s string) string { return fmt.Sprintf("%q", s) }

// loadPEMCerts counts the certificates of a PEM file, failing if there
// are none.
func loadPEMCerts(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading client CA file: %w", err)
	}
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return 0, fmt.Errorf("client CA file %q: certificate %d: %w", path, n+1, err)
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("client CA file %q: no PEM certificate found", path)
	}
	return n, nil
}

// checkTarget checks one target of uc: name, reachability, TLS and health.
func checkTarget(ctx context.Context, uc *config.Upstream, raw string, o Options) Hop {
	h := Hop{Kind: KindUpstream, Name: uc.Name, Target: raw}
	fail := func(detail, fix string) Hop {
		h.Status, h.Detail, h.Fix = Fail, detail, fix
		return h
	}
	u, err := url.Parse(raw)
	var defPort string
	ok := false
	if err == nil {
		defPort, ok = upstream.DefaultPort(u.Scheme)
	}
	if !ok || u.Hostname() == "" {
		return fail(fmt.Sprintf("target %q is not a URL https://host:port", raw), "write the target as https://host:port")
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = defPort
	}
	hostport := net.JoinHostPort(host, port)
	var notes []string

	// Name resolution, with the upstream's resolver if it has one.
	var addrs []string
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []string{net.JoinHostPort(ip.String(), port)}
	} else {
		ips, err := lookup(ctx, uc.Resolver, host, o.Timeout)
		if err != nil {
			via := "the system resolver"
			if uc.Resolver != "" {
				via = "resolver " + uc.Resolver
			}
			return fail(err.Error(), fmt.Sprintf("make %q resolvable by %s, or use the backend's IP in targets with tls.server_name", host, via))
		}
		for _, ip := range ips {
			addrs = append(addrs, net.JoinHostPort(ip.String(), port))
		}
		notes = append(notes, fmt.Sprintf("%s is %s", host, strings.Join(ipStrings(ips), " ")))
	}

	// TCP reachability: the first address that connects is used below.
	var (
		reached  string
		held     net.Conn // the probe's connection, reused for the handshake
		dialErrs []string
	)
	for _, a := range addrs {
		dctx, cancel := context.WithTimeout(ctx, o.Timeout)
		c, err := (&net.Dialer{}).DialContext(dctx, "tcp", a)
		cancel()
		if err == nil {
			reached, held = a, c
			break
		}
		dialErrs = append(dialErrs, err.Error())
	}
	// Whatever happens below, the probe's connection is not left open.
	var heldMu sync.Mutex
	defer func() {
		heldMu.Lock()
		defer heldMu.Unlock()
		if held != nil {
			held.Close()
		}
	}()
	if reached == "" {
		return fail("unreachable: "+strings.Join(dialErrs, "; "),
			fmt.Sprintf("check routing and firewalls from this machine to %s, and that the backend listens on port %s", strings.Join(addrs, ", "), port))
	}

	if u.Scheme == "tcp" && (uc.Health == nil || uc.Health.Type != config.HealthTLS) {
		// A passthrough target's TLS is the client's to verify; the L4
		// tier only needs it to accept connections.
		h.Status, h.Detail = OK, strings.Join(append(notes, "tcp reachable (passthrough: its TLS is the client's to verify)"), ", ")
		return h
	}

	if u.Scheme == "http" {
		h.Status, h.Fix = Warn, "use an https:// target; plaintext is allowed only by allow_insecure"
		notes = append(notes, "plaintext (allow_insecure): not authenticated, not encrypted")
		if uc.Health != nil {
			st, note, fix := health(ctx, uc, nil, hostport, "http", o.Timeout)
			notes = append(notes, note)
			if st == Fail {
				h.Status, h.Fix = Fail, fix
			}
		}
		h.Detail = strings.Join(notes, ", ")
		return h
	}

	opts, err := gateway.TransportOptions(uc)
	if err != nil {
		return fail(err.Error(), "fix the upstream's tls settings (drawbridge validate names the line)")
	}
	opts.DialTimeout = o.Timeout
	// The first dial takes the probe's connection, so that the backend
	// does not log a connection closed before its handshake.
	opts.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		heldMu.Lock()
		c := held
		held = nil
		heldMu.Unlock()
		if c != nil {
			return c, nil
		}
		var d net.Dialer
		return d.DialContext(ctx, network, reached)
	}
	tr, err := transport.New(opts)
	if err != nil {
		return fail(err.Error(), "fix the upstream's tls settings (drawbridge validate names the line)")
	}
	defer tr.CloseIdleConnections()

	conn, err := tr.DialTLSContext(ctx, "tcp", hostport)
	if err != nil {
		detail, fix := handshakeProblem(err, uc, hostport, host)
		return fail(detail, fix)
	}
	tc, ok := conn.(*tls.Conn)
	if !ok {
		conn.Close()
		return fail("transport returned a non-TLS connection", "report this as a drawbridge bug")
	}
	cs := tc.ConnectionState()
	conn.Close()
	status := OK
	var fix string
	if len(cs.PeerCertificates) > 0 {
		leaf := cs.PeerCertificates[0]
		pin := transport.SPKIPin(leaf)
		now := o.Now()
		switch {
		case uc.TLS.InsecureSkipVerify:
			notes = append(notes, "NOT verified (insecure_skip_verify)")
			status, fix = Warn, fmt.Sprintf("pin the backend's key instead: run %s", pinCommand(hostport, uc.TLS.ServerName))
		case pinListed(uc.TLS.Pins, pin):
			notes = append(notes, "verified by pin "+short(pin))
			if now.After(leaf.NotAfter) {
				// Only accept_expired lets an expired pinned leaf through.
				notes = append(notes, fmt.Sprintf("expired %s, accepted by pin because accept_expired is set", day(leaf.NotAfter)))
				status, fix = Warn, "renew the backend's certificate (keep its key and the pin stays valid), then drop accept_expired"
			}
		default:
			via := "system roots"
			if uc.TLS.CA != "" {
				via = "CA " + uc.TLS.CA
			}
			notes = append(notes, "verified by "+via+" for "+verifiedName(uc, host))
			if left := leaf.NotAfter.Sub(now); left < ExpiryWarning {
				notes = append(notes, fmt.Sprintf("backend certificate expires %s", day(leaf.NotAfter)))
				status, fix = Warn, "renew the backend's certificate before it expires; the gateway refuses it after"
			}
		}
	}
	notes = append(notes, tls.VersionName(cs.Version))
	if uc.TLS.ClientCert != "" {
		st, note, f := clientCertDates(uc.TLS.ClientCert, o.Now())
		notes = append(notes, note)
		status, fix = worse(status, fix, st, f)
	}
	if uc.Health != nil && (uc.Health.Type == config.HealthTCP || uc.Health.Type == config.HealthTLS) {
		notes = append(notes, "health "+uc.Health.Type+" ok")
	} else if uc.Health != nil {
		st, note, f := health(ctx, uc, tr, hostport, "https", o.Timeout)
		notes = append(notes, note)
		status, fix = worse(status, fix, st, f)
	}
	h.Status, h.Detail, h.Fix = status, strings.Join(notes, ", "), fix
	return h
}

// worse returns the worse of two statuses with its fix.
func worse(a Status, afix string, b Status, bfix string) (Status, string) {
	rank := map[Status]int{OK: 0, Warn: 1, Fail: 2}
	if rank[b] > rank[a] {
		return b, bfix
	}
	return a, afix
}

// pinListed reports whether pin is among pins, written with or without
// base64 padding.
func pinListed(pins []string, pin string) bool {
	want, err := transport.ParsePin(pin)
	if err != nil {
		return false
	}
	for _, p := range pins {
		if got, err := transport.ParsePin(p); err == nil && got == want {
			return true
		}
	}
	return false
}

// short abbreviates a pin for display: enough to tell keys apart.
func short(pin string) string {
	if len(pin) <= len("sha256/")+8 {
		return pin
	}
	return pin[:len("sha256/")+8] + "…"
}

func verifiedName(uc *config.Upstream, host string) string {
	if uc.TLS.ServerName != "" {
		return uc.TLS.ServerName
	}
	return host
}

func pinCommand(hostport, serverName string) string {
	cmd := "drawbridge pin https://" + hostport
	if serverName != "" {
		cmd += " --server-name " + serverName
	}
	return `"` + cmd + `"`
}

// handshakeProblem turns a failed TLS dial into a cause and a fix.
func handshakeProblem(err error, uc *config.Upstream, hostport, host string) (detail, fix string) {
	pinCmd := pinCommand(hostport, uc.TLS.ServerName)
	if ve, ok := transport.AsVerifyError(err); ok {
		detail = string(ve.Reason)
		if ve.Detail != "" {
			detail += ": " + ve.Detail
		}
		switch ve.Reason {
		case transport.ReasonPinMismatch:
			return detail, "the backend's key changed or this is not the backend: run " + pinCmd + " and compare before trusting the new key"
		case transport.ReasonUnknownAuthority:
			where := "the system roots"
			if uc.TLS.CA != "" {
				where = fmt.Sprintf("tls.ca %q", uc.TLS.CA)
			}
			return detail, fmt.Sprintf("the backend's certificate does not chain to %s: put the CA that issued it (or the self-signed certificate itself) there, or pin its key (run %s)", where, pinCmd)
		case transport.ReasonNameMismatch:
			return detail, fmt.Sprintf("the certificate is not valid for %q: set tls.server_name to a name it holds (run %s to see them)", verifiedName(uc, host), pinCmd)
		case transport.ReasonExpired, transport.ReasonNotYetValid:
			return detail, "renew the backend's certificate; if it cannot be renewed, pin its key and set tls.accept_expired: true"
		}
		return detail, "run " + pinCmd + " to inspect the certificate, and fix tls.ca, tls.pins or tls.server_name"
	}
	var de *transport.DialError
	if errors.As(err, &de) && de.Op == transport.OpDial {
		return "unreachable: " + oneLine(de.Err), "check routing and firewalls from this machine to " + hostport
	}
	if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		return "no TLS handshake in time: " + oneLine(err), "check that " + hostport + " serves TLS (run " + pinCmd + ")"
	}
	return "tls handshake: " + oneLine(err), "run " + pinCmd + " to see what the backend speaks; old backends may need tls.min_version or tls.legacy_ciphers"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// clientCertDates judges the validity of the first certificate in the
// client certificate file presented to the backend.
func clientCertDates(path string, now time.Time) (Status, string, string) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Fail, "client cert: " + err.Error(), "fix tls.client_cert"
	}
	var block *pem.Block
	for rest := data; ; {
		block, rest = pem.Decode(rest)
		if block == nil || block.Type == "CERTIFICATE" {
			break
		}
	}
	if block == nil {
		return Fail, fmt.Sprintf("client cert %q: no PEM certificate", path), "fix tls.client_cert: a PEM certificate"
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return Fail, fmt.Sprintf("client cert %q: %v", path, err), "fix tls.client_cert: a PEM certificate"
	}
	st, dates, fix := judgeDates(c, now, fmt.Sprintf("renew the client certificate %q; the backend refuses it when out of date", path))
	return st, "client cert " + dates, fix
}

// health does one GET of the upstream's health path, as the active checks
// do, and reports status and latency. tr is nil for plaintext targets.
func health(ctx context.Context, uc *config.Upstream, tr *http.Transport, hostport, scheme string, timeout time.Duration) (Status, string, string) {
	path := uc.Health.Path
	rt := http.RoundTripper(tr)
	if tr == nil {
		plain := &http.Transport{}
		defer plain.CloseIdleConnections()
		rt = plain
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+hostport+path, nil)
	if err != nil {
		return Fail, "health " + path + ": " + err.Error(), "fix health.path"
	}
	if uc.TLS.ServerName != "" {
		req.Host = uc.TLS.ServerName
	}
	req.Header.Set("User-Agent", "drawbridge-doctor")
	start := time.Now()
	resp, err := (&http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		return Fail, "health " + path + ": " + oneLine(err), "check that the backend answers GET " + path
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	took := time.Since(start)
	note := fmt.Sprintf("health %s %d in %d ms", path, resp.StatusCode, took.Milliseconds())
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return Fail, note, fmt.Sprintf("the backend answers GET %s with %d; active checks mark it down: fix the backend or health.path", path, resp.StatusCode)
	}
	return OK, note, ""
}

// lookup resolves host as the upstream pool does: with a pure-Go resolver
// sending every query to server, or the system resolver when server is "".
func lookup(ctx context.Context, server, host string, timeout time.Duration) ([]netip.Addr, error) {
	r := net.DefaultResolver
	if server != "" {
		r = &net.Resolver{
			PreferGo: true,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, server)
			},
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		if server != "" {
			return nil, fmt.Errorf("resolving %q via %s: %w", host, server, err)
		}
		return nil, fmt.Errorf("resolving %q: %w", host, err)
	}
	for i, ip := range ips {
		ips[i] = ip.Unmap()
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	ips = slices.Compact(ips)
	if len(ips) == 0 {
		return nil, fmt.Errorf("resolving %q: no addresses", host)
	}
	return ips, nil
}

func ipStrings(ips []netip.Addr) []string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return s
}
