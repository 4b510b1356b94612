package upstream

import (
	"fmt"
	"sync/atomic"
)

// Selector is a load-balancing policy. Select returns an available target of
// targets that is not in tried, or nil when there is none. It is called on
// every request, concurrently, and must not allocate on the common path.
type Selector interface {
	Select(targets []*Target, tried []*Target) *Target
}

// SelectorFunc is an adapter to allow the use of ordinary functions as
// selectors.
type SelectorFunc func(targets, tried []*Target) *Target

// Select calls f(targets, tried).
func (f SelectorFunc) Select(targets, tried []*Target) *Target { return f(targets, tried) }

// Interface guards.
var (
	_ Selector = (*RoundRobin)(nil)
	_ Selector = (*LeastRequests)(nil)
	_ Selector = SelectorFunc(nil)
)

// RoundRobin hands out targets in turn, skipping unavailable ones. The zero
// value is ready to use.
type RoundRobin struct {
	next atomic.Uint64
}

// Select implements [Selector].
func (r *RoundRobin) Select(targets, tried []*Target) *Target {
	n := uint64(len(targets))
	if n == 0 {
		return nil
	}
	start := r.next.Add(1) - 1
	for i := range n {
		t := targets[(start+i)%n]
		if t.Available() && !contains(tried, t) {
			return t
		}
	}
	return nil
}

// LeastRequests picks the available target with the fewest requests in
// flight. Ties are broken round robin, so idle targets share the load
// instead of the first one taking it all. The zero value is ready to use.
type LeastRequests struct {
	next atomic.Uint64
}

// Select implements [Selector].
func (l *LeastRequests) Select(targets, tried []*Target) *Target {
	n := uint64(len(targets))
	if n == 0 {
		return nil
	}
	start := l.next.Add(1) - 1
	var best *Target
	var bestN int64
	for i := range n {
		t := targets[(start+i)%n]
		if !t.Available() || contains(tried, t) {
			continue
		}
		if c := t.InFlight(); best == nil || c < bestN {
			best, bestN = t, c
		}
	}
	return best
}

// contains is a linear scan: tried holds at most a few retries.
func contains(tried []*Target, t *Target) bool {
	for _, x := range tried {
		if x == t {
			return true
		}
	}
	return false
}

// newSelector returns the policy named by balance ("" means round robin).
func newSelector(balance string) (Selector, error) {
	switch balance {
	case "", BalanceRoundRobin:
		return new(RoundRobin), nil
	case BalanceLeastRequests:
		return new(LeastRequests), nil
	}
	return nil, fmt.Errorf("unknown balance policy %q (want %q or %q)", balance, BalanceRoundRobin, BalanceLeastRequests)
}
