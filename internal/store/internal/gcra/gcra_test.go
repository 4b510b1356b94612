package gcra

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

func TestDecideExtremes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tests := []struct {
		desc string
		th   store.Throttle
		want store.Decision
	}{
		{"rate zero", store.Throttle{Rate: 0, Burst: 5}, store.Decision{}},
		{"rate negative", store.Throttle{Rate: -3, Burst: 5}, store.Decision{}},
		{"rate NaN", store.Throttle{Rate: math.NaN(), Burst: 5}, store.Decision{}},
		{"burst zero is one", store.Throttle{Rate: 2, Burst: 0}, store.Decision{Allowed: true, Reset: 500 * time.Millisecond}},
		{"burst negative is one", store.Throttle{Rate: 2, Burst: -7}, store.Decision{Allowed: true, Reset: 500 * time.Millisecond}},
		{"rate beyond nanoseconds", store.Throttle{Rate: 1e12, Burst: 1}, store.Decision{Allowed: true, Reset: 1}},
		{"rate infinite", store.Throttle{Rate: math.Inf(1), Burst: 3}, store.Decision{Allowed: true, Remaining: 2, Reset: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			_, got := Decide(time.Time{}, now, tt.th)
			if got != tt.want {
				t.Errorf("Decide(zero, now, %+v): got %+v, want %+v", tt.th, got, tt.want)
			}
		})
	}
}

// TestDecideClamped checks that throttles whose interval or tolerance
// overflow a Duration are clamped rather than wrapped negative.
func TestDecideClamped(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, th := range []store.Throttle{{Rate: 1e-30, Burst: 2}, {Rate: 1e-9, Burst: math.MaxInt}, {Rate: math.SmallestNonzeroFloat64, Burst: math.MaxInt}} {
		tat, d := Decide(time.Time{}, now, th)
		if !d.Allowed || d.Remaining < 0 || d.Reset <= 0 || !tat.After(now) {
			t.Errorf("Decide(zero, now, %+v): got %+v, TAT %v, want allowed with Remaining >= 0, Reset > 0, TAT after now", th, d, tat)
		}
		if _, d := Decide(tat, now, th); d.Allowed && th.Burst < 3 || d.Remaining < 0 || d.RetryAfter < 0 {
			t.Errorf("Decide(TAT, now, %+v) again: got %+v, want no negative fields (and refused for a small burst)", th, d)
		}
	}
}

func TestDecideStaleTATIsFull(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	th := store.Throttle{Rate: 10, Burst: 4}
	_, fresh := Decide(time.Time{}, now, th)
	_, stale := Decide(now.Add(-time.Hour), now, th)
	if fresh != stale {
		t.Errorf("Decide(an hour-old TAT): got %+v, want %+v as for a new bucket", stale, fresh)
	}
}

func TestLimiterSweepsFullBuckets(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := New()
	th := store.Throttle{Rate: 100, Burst: 1}
	const n = 5000
	for i := range n {
		l.Allow(fmt.Sprint("b", i), th, now)
	}
	if got := l.Len(); got < n/2 {
		t.Fatalf("Len() after %d active buckets: got %d, want most of them kept", n, got)
	}
	// Once every bucket has refilled, the next sweep drops them all.
	now = now.Add(sweepEvery)
	// 1000 new buckets reach every shard (all but certainly: the shard
	// hash is seeded at random), and each shard sweeps on its first.
	const fresh = 1000
	for i := range fresh {
		l.Allow(fmt.Sprint("new", i), th, now)
	}
	if got := l.Len(); got > fresh {
		t.Errorf("Len() after the old buckets refilled and a sweep: got %d, want <= %d", got, fresh)
	}
	// A bucket still in debt survives the sweep.
	l.Allow("debt", store.Throttle{Rate: 1e-3, Burst: 1}, now)
	now = now.Add(sweepEvery)
	if d := l.Allow("debt", store.Throttle{Rate: 1e-3, Burst: 1}, now); d.Allowed {
		t.Errorf("Allow(debt) a minute after its only token at 1/1000s: got %+v, want refused", d)
	}
}

func TestParams(t *testing.T) {
	// The cap goes through float64, which rounds it by a nanosecond.
	capped := time.Duration(float64(maxDuration))
	tests := []struct {
		desc          string
		th            store.Throttle
		interval, tau time.Duration
	}{
		{"ten per second burst five", store.Throttle{Rate: 10, Burst: 5}, 100 * time.Millisecond, 500 * time.Millisecond},
		{"burst zero is one", store.Throttle{Rate: 4, Burst: 0}, 250 * time.Millisecond, 250 * time.Millisecond},
		{"interval at least 1ns", store.Throttle{Rate: math.Inf(1), Burst: 3}, 1, 3},
		{"tiny rate clamped", store.Throttle{Rate: 1e-30, Burst: 2}, capped, capped},
		{"huge burst clamped", store.Throttle{Rate: 1, Burst: math.MaxInt}, time.Second, capped},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			interval, tau := Params(tt.th)
			if interval != tt.interval || tau != tt.tau {
				t.Errorf("Params(%+v): got %v, %v, want %v, %v", tt.th, interval, tau, tt.interval, tt.tau)
			}
		})
	}
}
