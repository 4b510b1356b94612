package limits

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

const (
	// DefaultPlanTTL is how long NewPlanCache keeps a plan before asking
	// the store again: short enough that an operator's plan change reaches
	// every replica within a second, long enough that the store sees a
	// handful of reads per second instead of one per request.
	DefaultPlanTTL = 500 * time.Millisecond
	// maxStale is how long a cached plan keeps serving while the store is
	// unavailable, so a Redis restart does not turn every key into a 503.
	maxStale = 5 * time.Minute
)

// planCache is a PlanSource that remembers answers for ttl.
type planCache struct {
	src PlanSource
	ttl time.Duration
	now func() time.Time

	// mu is read-locked on the hot path, a fresh hit, so that concurrent
	// requests do not queue behind each other; the write lock is only
	// taken to start or finish a refresh.
	mu      sync.RWMutex
	entries map[string]*planEntry
}

type planEntry struct {
	plan    store.Plan
	err     error // nil or a not-found error; other errors are not cached
	fetched time.Time
	// refreshing is set while one caller asks the store for a newer copy;
	// the others keep serving this one instead of piling onto the store.
	// It is written only under planCache.mu's write lock.
	refreshing bool
}

var _ PlanSource = (*planCache)(nil)

// NewPlanCache wraps src with a cache that keeps each answer for ttl
// (DefaultPlanTTL when ttl <= 0), so each request does not hit the store.
// Not-found answers are cached too, so an unknown plan costs no more than
// a known one. When src fails with an error matching store.ErrUnavailable,
// the last good answer keeps being served for up to 5 minutes after it was
// fetched. Plans returned share their Methods map and pointers with the
// cache and must not be modified.
func NewPlanCache(src PlanSource, ttl time.Duration) PlanSource {
	if ttl <= 0 {
		ttl = DefaultPlanTTL
	}
	return &planCache{src: src, ttl: ttl, now: time.Now, entries: make(map[string]*planEntry)}
}

// Plan returns the plan called name from the cache or src.
func (c *planCache) Plan(ctx context.Context, name string) (store.Plan, error) {
	now := c.now()
	c.mu.RLock()
	e := c.entries[name]
	if e != nil && e.usable(now, c.ttl) {
		p, err := e.plan, e.err
		c.mu.RUnlock()
		return p, err
	}
	c.mu.RUnlock()

	// Stale or missing: decide under the write lock whether this caller
	// refreshes, as another may have started or finished meanwhile.
	c.mu.Lock()
	e = c.entries[name]
	if e != nil {
		if e.usable(now, c.ttl) {
			p, err := e.plan, e.err
			c.mu.Unlock()
			return p, err
		}
		e.refreshing = true
	}
	c.mu.Unlock()

	p, err := c.src.Plan(ctx, name)

	c.mu.Lock()
	defer c.mu.Unlock()
	if e != nil {
		e.refreshing = false
	}
	switch {
	case err == nil || errors.Is(err, store.ErrNotFound):
		c.entries[name] = &planEntry{plan: p, err: err, fetched: c.now()}
		return p, err
	case errors.Is(err, store.ErrUnavailable) && e != nil && now.Sub(e.fetched) < maxStale:
		return e.plan, e.err
	default:
		return store.Plan{}, err
	}
}

// usable reports whether e may be served at now without asking the store:
// it is fresh, or another caller is refreshing it and it is not too old.
// planCache.mu must be held, for reading at least.
func (e *planEntry) usable(now time.Time, ttl time.Duration) bool {
	age := now.Sub(e.fetched)
	return age < ttl || (e.refreshing && age < maxStale)
}
