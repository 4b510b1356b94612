package limits

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/memory"
)

// countingSource is a memory store's plans, counting reads and failing
// with store.ErrUnavailable while down is set.
type countingSource struct {
	st    *memory.Store
	calls atomic.Int64
	down  atomic.Bool
}

func (s *countingSource) Plan(ctx context.Context, name string) (store.Plan, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return store.Plan{}, fmt.Errorf("reading plan %q: %w", name, store.ErrUnavailable)
	}
	return s.st.Plan(ctx, name)
}

func TestPlanCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	plan := func(rate float64) store.Plan { return store.Plan{Name: "gold", Throttle: throttle(rate, 1)} }
	type op struct {
		advance  time.Duration
		put      *store.Plan // changes the plan in the store first
		down     bool        // store state for this lookup
		name     string
		wantRate float64 // 0 with wantErr
		wantErr  error
		calls    int64 // store reads so far
	}
	p2 := plan(2)
	tests := []struct {
		desc string
		ops  []op
	}{
		{
			desc: "fresh entries are served from the cache",
			ops: []op{
				{name: "gold", wantRate: 1, calls: 1},
				{advance: 400 * time.Millisecond, put: &p2, name: "gold", wantRate: 1, calls: 1},
				{advance: 100 * time.Millisecond, name: "gold", wantRate: 2, calls: 2},
			},
		},
		{
			desc: "not found is cached too",
			ops: []op{
				{name: "nope", wantErr: store.ErrNotFound, calls: 1},
				{name: "nope", wantErr: store.ErrNotFound, calls: 1},
				{advance: time.Second, name: "nope", wantErr: store.ErrNotFound, calls: 2},
			},
		},
		{
			desc: "store unavailable: stale entry for up to 5 minutes",
			ops: []op{
				{name: "gold", wantRate: 1, calls: 1},
				{advance: time.Second, down: true, name: "gold", wantRate: 1, calls: 2},
				{advance: 4 * time.Minute, down: true, name: "gold", wantRate: 1, calls: 3},
				{advance: 58 * time.Second, down: true, name: "gold", wantRate: 1, calls: 4},
				{advance: time.Second, down: true, name: "gold", wantErr: store.ErrUnavailable, calls: 5},
				{put: &p2, name: "gold", wantRate: 2, calls: 6},
			},
		},
		{
			desc: "store unavailable and nothing cached",
			ops: []op{
				{down: true, name: "gold", wantErr: store.ErrUnavailable, calls: 1},
				{down: true, name: "gold", wantErr: store.ErrUnavailable, calls: 2},
				{name: "gold", wantRate: 1, calls: 3},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			src := &countingSource{st: memory.New()}
			if err := src.st.PutPlan(ctx, plan(1)); err != nil {
				t.Fatal(err)
			}
			clock := newClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
			c := NewPlanCache(src, 0).(*planCache)
			c.now = clock.Now
			for i, o := range tc.ops {
				clock.Advance(o.advance)
				if o.put != nil {
					if err := src.st.PutPlan(ctx, *o.put); err != nil {
						t.Fatal(err)
					}
				}
				src.down.Store(o.down)
				p, err := c.Plan(ctx, o.name)
				switch {
				case o.wantErr != nil && !errors.Is(err, o.wantErr):
					t.Errorf("op %d: Plan(%q): got error %v, want %v", i, o.name, err, o.wantErr)
				case o.wantErr == nil && err != nil:
					t.Errorf("op %d: Plan(%q): got error %v, want none", i, o.name, err)
				case o.wantErr == nil && (p.Throttle == nil || p.Throttle.Rate != o.wantRate):
					t.Errorf("op %d: Plan(%q): got throttle %+v, want rate %v", i, o.name, p.Throttle, o.wantRate)
				}
				if n := src.calls.Load(); n != o.calls {
					t.Errorf("op %d: store reads: got %d, want %d", i, n, o.calls)
				}
			}
		})
	}
}

// TestPlanCacheConcurrent is for the race detector, and checks that
// concurrent lookups within the TTL do not each go to the store.
func TestPlanCacheConcurrent(t *testing.T) {
	t.Parallel()
	src := &countingSource{st: memory.New()}
	if err := src.st.PutPlan(context.Background(), store.Plan{Name: "gold"}); err != nil {
		t.Fatal(err)
	}
	c := NewPlanCache(src, time.Hour)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if _, err := c.Plan(context.Background(), "gold"); err != nil {
					t.Errorf("Plan(gold): %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Cold start may send each goroutine to the store once, no more.
	if n := src.calls.Load(); n < 1 || n > 8 {
		t.Errorf("store reads for 800 lookups within the TTL: got %d, want 1..8", n)
	}
}
