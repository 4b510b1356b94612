// Package gcra is the in-process token bucket behind the memory and bolt
// stores' Allow: the generic cell rate algorithm (GCRA), which keeps one
// timestamp per bucket instead of a token count and a refill time. Its
// Params are also what the Redis store hands its script, so that all
// stores derive a throttle's timing the same way.
package gcra

import (
	"hash/maphash"
	"math"
	"sync"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// maxDuration caps the emission interval and the tolerance so that a tiny
// rate or a huge burst cannot overflow time.Duration arithmetic.
const maxDuration = time.Duration(math.MaxInt64 / 4)

// Decide applies the throttle t to one request arriving at now, for a
// bucket whose theoretical arrival time (TAT) is tat; the zero tat is a
// full bucket. It returns the bucket's new TAT and the decision.
//
// The emission interval is T = 1/Rate and the tolerance is τ = T*Burst, so
// a full bucket lets Burst requests through at once and then Rate per
// second. A refused request leaves the TAT unchanged: it takes nothing.
//
// Rate <= 0 (or NaN) refuses every request, as API Gateway does with a
// throttle of 0; RetryAfter and Reset are then 0 because the bucket never
// refills. Burst < 1 with a positive Rate counts as 1.
func Decide(tat, now time.Time, t store.Throttle) (time.Time, store.Decision) {
	if !(t.Rate > 0) {
		return tat, store.Decision{}
	}
	interval, tau := Params(t)
	start := tat
	if start.Before(now) {
		start = now
	}
	newTAT := start.Add(interval)
	ahead := newTAT.Sub(now)
	if ahead > tau {
		return tat, store.Decision{
			RetryAfter: ahead - tau,
			Reset:      start.Sub(now),
		}
	}
	return newTAT, store.Decision{
		Allowed:   true,
		Remaining: int((tau - ahead) / interval),
		Reset:     ahead,
	}
}

// Params returns the emission interval T = 1/Rate and the tolerance
// τ = T*Burst of t, which must have a positive Rate. Burst < 1 counts as 1;
// T is at least 1ns, and both are capped so that adding them to a time
// cannot overflow.
func Params(t store.Throttle) (interval, tau time.Duration) {
	burst := max(t.Burst, 1)
	iv := float64(time.Second) / t.Rate
	iv = min(max(iv, 1), float64(maxDuration))
	tf := min(iv*float64(burst), float64(maxDuration))
	return time.Duration(iv), time.Duration(tf)
}

const (
	numShards = 16
	// minSweep is the bucket count below which a shard sweeps only by age.
	minSweep = 1024
	// sweepEvery bounds how long full buckets can linger in a quiet shard.
	sweepEvery = time.Minute
)

// Limiter holds the TATs of many named buckets. A bucket whose TAT has
// passed is full, which is the same as not existing, so such buckets are
// swept away: memory stays proportional to the buckets in use. The zero
// Limiter is not usable; call New.
type Limiter struct {
	seed   maphash.Seed
	shards [numShards]shard
}

type shard struct {
	mu        sync.Mutex
	tat       map[string]time.Time
	nextSweep int
	lastSweep time.Time
}

// New returns an empty Limiter.
func New() *Limiter {
	l := &Limiter{seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].tat = make(map[string]time.Time)
		l.shards[i].nextSweep = minSweep
	}
	return l
}

// Allow applies t to one request on bucket at now (see Decide).
func (l *Limiter) Allow(bucket string, t store.Throttle, now time.Time) store.Decision {
	s := &l.shards[maphash.String(l.seed, bucket)%numShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, d := Decide(s.tat[bucket], now, t)
	if d.Allowed {
		s.tat[bucket] = tat
	}
	if len(s.tat) >= s.nextSweep || now.Sub(s.lastSweep) >= sweepEvery {
		s.sweep(now)
	}
	return d
}

// sweep drops full buckets and schedules the next sweep for when the shard
// has doubled, so the cost of sweeping is amortized over the inserts.
func (s *shard) sweep(now time.Time) {
	for b, tat := range s.tat {
		if !tat.After(now) {
			delete(s.tat, b)
		}
	}
	s.nextSweep = max(minSweep, 2*len(s.tat))
	s.lastSweep = now
}

// Len returns the number of buckets held, for tests and metrics.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}
