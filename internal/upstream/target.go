package upstream

import (
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// epoch anchors the monotonic clock used for ejection deadlines, so a wall
// clock step cannot lengthen or cut short an ejection.
var epoch = time.Now()

// monotime returns nanoseconds since epoch on the monotonic clock.
func monotime() int64 { return int64(time.Since(epoch)) }

// PassiveOptions configures passive ejection: a target that fails to connect
// (or to complete the TLS handshake) on MaxFails partner requests within
// FailWindow is skipped for EjectFor. Passive checks cost nothing while all
// is well, but learn of a failure only when a request hits it.
type PassiveOptions struct {
	// MaxFails failures within FailWindow eject the target. Zero or
	// negative disables passive ejection.
	MaxFails int
	// FailWindow is how far back failures count. It defaults to
	// DefaultFailWindow.
	FailWindow time.Duration
	// EjectFor is how long an ejected target is skipped. It defaults to
	// DefaultEjectFor.
	EjectFor time.Duration
}

// Target is one backend address of a pool. Its state (health, ejection,
// in-flight count, resolved addresses) is safe for concurrent use.
// Target values must not be copied.
type Target struct {
	url      *url.URL
	hostport string // "host:port", the key the transport dials
	host     string
	port     string
	ip       bool // host is an IP literal: never resolved

	passive PassiveOptions
	logger  *slog.Logger

	down         atomic.Bool  // inverted so the zero value is healthy
	ejectedUntil atomic.Int64 // monotime deadline; 0 = never ejected
	inFlight     atomic.Int64

	failMu sync.Mutex
	fails  []time.Time // recent failures within FailWindow, oldest first
	nfails atomic.Int32

	// addrs is read on every dial; writes (refresh, on-demand resolution)
	// hold resolveMu so change detection and failure streaks stay coherent.
	addrs         atomic.Pointer[[]string]
	resolveMu     sync.Mutex
	lookupFailing bool
}

// URL returns scheme://host:port as configured. The host is what the
// transport dials and, by default, what TLS verifies. The returned URL is
// shared and must not be modified.
func (t *Target) URL() *url.URL { return t.url }

// String returns "host:port".
func (t *Target) String() string { return t.hostport }

// Available reports whether the target may receive requests: it is healthy
// and not ejected. This is the one predicate selection policies use.
func (t *Target) Available() bool { return t.Healthy() && !t.Ejected() }

// Healthy reports the active health state. It is true until a health
// checker says otherwise, so traffic flows from the start.
func (t *Target) Healthy() bool { return !t.down.Load() }

// SetHealthy records the verdict of the active health checker.
func (t *Target) SetHealthy(up bool) { t.down.Store(!up) }

// Ejected reports whether a passive ejection is in force.
func (t *Target) Ejected() bool {
	until := t.ejectedUntil.Load()
	return until != 0 && monotime() < until
}

// ReportFailure records a connect or TLS failure seen on a request. After
// MaxFails failures within FailWindow the target is ejected for EjectFor.
// Failures reported while the target is already ejected are ignored, so
// requests that were in flight at ejection time do not prolong it.
func (t *Target) ReportFailure() {
	maxFails := t.passive.MaxFails
	if maxFails <= 0 || t.Ejected() {
		return
	}
	now := time.Now()
	cutoff := now.Add(-t.passive.FailWindow)
	t.failMu.Lock()
	kept := t.fails[:0]
	for _, f := range t.fails {
		if f.After(cutoff) {
			kept = append(kept, f)
		}
	}
	kept = append(kept, now)
	eject := len(kept) >= maxFails
	if eject {
		kept = kept[:0]
		t.ejectedUntil.Store(monotime() + int64(t.passive.EjectFor))
	}
	t.fails = kept
	t.nfails.Store(int32(len(kept)))
	t.failMu.Unlock()
	if eject {
		t.logger.Warn("target ejected after connection failures",
			"target", t.hostport, "failures", maxFails,
			"window", t.passive.FailWindow.String(), "eject_for", t.passive.EjectFor.String())
	}
}

// ReportSuccess resets the failure count. It does not end an ejection in
// force; ejections expire on their own.
func (t *Target) ReportSuccess() {
	// Fast path: this runs on every successful request.
	if t.nfails.Load() == 0 {
		return
	}
	t.failMu.Lock()
	t.fails = t.fails[:0]
	t.nfails.Store(0)
	t.failMu.Unlock()
}

// Acquire counts a request as in flight; pair it with Release.
func (t *Target) Acquire() { t.inFlight.Add(1) }

// TryAcquire is Acquire unless limit (when above 0) requests or
// connections are in flight already: then it counts nothing and returns
// false. The check and the count are one atomic step, so concurrent
// callers never pass the limit together.
func (t *Target) TryAcquire(limit int64) bool {
	for {
		n := t.inFlight.Load()
		if limit > 0 && n >= limit {
			return false
		}
		if t.inFlight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release ends a request counted by Acquire.
func (t *Target) Release() { t.inFlight.Add(-1) }

// InFlight returns the number of requests in flight.
func (t *Target) InFlight() int64 { return t.inFlight.Load() }

// Addrs returns the currently resolved "ip:port" addresses of a host-name
// target (nil before the first successful lookup), or [host:port] for an IP
// target. The slice is a copy.
func (t *Target) Addrs() []string {
	if t.ip {
		return []string{t.hostport}
	}
	return slices.Clone(t.loadAddrs())
}

// loadAddrs returns the shared resolved address list; callers must not
// modify it.
func (t *Target) loadAddrs() []string {
	if p := t.addrs.Load(); p != nil {
		return *p
	}
	return nil
}

// InheritState copies old's health verdict, passive ejection and resolved
// addresses into t. A config reload builds new targets; without this, a
// target known to be down would get partner traffic again until the
// health checks caught up.
func (t *Target) InheritState(old *Target) {
	t.down.Store(old.down.Load())
	t.ejectedUntil.Store(old.ejectedUntil.Load())
	if a := old.addrs.Load(); a != nil && !t.ip {
		t.addrs.Store(a)
	}
}
