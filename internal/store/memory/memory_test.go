package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/memory"
	"github.com/drawbridge-gw/drawbridge/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return memory.New() })
}

// TestAllowFakeClock steps the injected clock, which the conformance suite
// cannot, to check the bucket's arithmetic exactly.
func TestAllowFakeClock(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := memory.New(memory.Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	th := store.Throttle{Rate: 10, Burst: 3}
	steps := []struct {
		desc    string
		advance time.Duration
		want    store.Decision
	}{
		{"first", 0, store.Decision{Allowed: true, Remaining: 2, Reset: 100 * time.Millisecond}},
		{"second", 0, store.Decision{Allowed: true, Remaining: 1, Reset: 200 * time.Millisecond}},
		{"third", 0, store.Decision{Allowed: true, Remaining: 0, Reset: 300 * time.Millisecond}},
		{"refused", 0, store.Decision{RetryAfter: 100 * time.Millisecond, Reset: 300 * time.Millisecond}},
		{"refused again", 50 * time.Millisecond, store.Decision{RetryAfter: 50 * time.Millisecond, Reset: 250 * time.Millisecond}},
		{"one refilled", 50 * time.Millisecond, store.Decision{Allowed: true, Remaining: 0, Reset: 300 * time.Millisecond}},
		{"full after idle", time.Hour, store.Decision{Allowed: true, Remaining: 2, Reset: 100 * time.Millisecond}},
	}
	for _, st := range steps {
		now = now.Add(st.advance)
		got, err := s.Allow(ctx, "b", th)
		if err != nil || got != st.want {
			t.Errorf("%s: Allow(b, %+v): got %+v, %v, want %+v, nil", st.desc, th, got, err, st.want)
		}
	}
}
