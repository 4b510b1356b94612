package memory

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/internal/counters"
	"github.com/drawbridge-gw/drawbridge/internal/store/internal/gcra"
)

var (
	_ store.Store = (*Store)(nil)
	_ store.Meter = (*Store)(nil)
)

// Options configures a Store. The zero Options is ready to use.
type Options struct {
	// Now is the clock of the throttle buckets. If nil, time.Now is used;
	// tests inject a fake clock to step buckets without sleeping. Consume
	// does not use it: its caller passes the time.
	Now func() time.Time
}

// Store is an in-memory store.Store, safe for concurrent use.
type Store struct {
	now     func() time.Time
	buckets *gcra.Limiter
	counts  *counters.Counters

	mu     sync.RWMutex
	keys   map[string]store.Key // by name
	hashes map[string]string    // hash -> name
	plans  map[string]store.Plan
}

// New returns an empty Store. It takes at most one Options, so that tests
// can write memory.New() when the defaults suit them.
func New(opts ...Options) *Store {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Store{
		now:     o.Now,
		buckets: gcra.New(),
		counts:  counters.New(false),
		keys:    make(map[string]store.Key),
		hashes:  make(map[string]string),
		plans:   make(map[string]store.Plan),
	}
}

// CreateKey implements store.Store.
func (s *Store) CreateKey(_ context.Context, k store.Key) error {
	if k.Name == "" || k.Hash == "" {
		return errors.New("creating key: name and hash must not be empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k.Name]; ok {
		return fmt.Errorf("key %q: %w", k.Name, store.ErrExists)
	}
	if _, ok := s.hashes[k.Hash]; ok {
		return fmt.Errorf("key %q: value: %w", k.Name, store.ErrExists)
	}
	s.keys[k.Name] = k
	s.hashes[k.Hash] = k.Name
	return nil
}

// UpdateKey implements store.Store. The stored Hash is kept whatever
// k.Hash says, because lookups by the key's value must keep working.
func (s *Store) UpdateKey(_ context.Context, k store.Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.keys[k.Name]
	if !ok {
		return fmt.Errorf("key %q: %w", k.Name, store.ErrNotFound)
	}
	k.Hash = old.Hash
	s.keys[k.Name] = k
	return nil
}

// KeyByHash implements store.Store.
func (s *Store) KeyByHash(_ context.Context, hash string) (store.Key, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	name, ok := s.hashes[hash]
	if !ok {
		return store.Key{}, fmt.Errorf("key with hash %.8s...: %w", hash, store.ErrNotFound)
	}
	return s.keys[name], nil
}

// KeyByName implements store.Store.
func (s *Store) KeyByName(_ context.Context, name string) (store.Key, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[name]
	if !ok {
		return store.Key{}, fmt.Errorf("key %q: %w", name, store.ErrNotFound)
	}
	return k, nil
}

// ListKeys implements store.Store.
func (s *Store) ListKeys(context.Context) ([]store.Key, error) {
	s.mu.RLock()
	keys := slices.Collect(maps.Values(s.keys))
	s.mu.RUnlock()
	slices.SortFunc(keys, func(a, b store.Key) int { return strings.Compare(a.Name, b.Name) })
	return keys, nil
}

// PutPlan implements store.Store.
func (s *Store) PutPlan(_ context.Context, p store.Plan) error {
	if p.Name == "" {
		return errors.New("putting plan: name must not be empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plans[p.Name] = clonePlan(p)
	return nil
}

// Plan implements store.Store.
func (s *Store) Plan(_ context.Context, name string) (store.Plan, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.plans[name]
	if !ok {
		return store.Plan{}, fmt.Errorf("plan %q: %w", name, store.ErrNotFound)
	}
	return clonePlan(p), nil
}

// ListPlans implements store.Store.
func (s *Store) ListPlans(context.Context) ([]store.Plan, error) {
	s.mu.RLock()
	plans := make([]store.Plan, 0, len(s.plans))
	for _, p := range s.plans {
		plans = append(plans, clonePlan(p))
	}
	s.mu.RUnlock()
	slices.SortFunc(plans, func(a, b store.Plan) int { return strings.Compare(a.Name, b.Name) })
	return plans, nil
}

// DeletePlan implements store.Store.
func (s *Store) DeletePlan(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.plans[name]; !ok {
		return fmt.Errorf("plan %q: %w", name, store.ErrNotFound)
	}
	delete(s.plans, name)
	return nil
}

// Allow implements store.Store with GCRA; see gcra.Decide for Rate <= 0
// and Burst < 1.
func (s *Store) Allow(_ context.Context, bucket string, t store.Throttle) (store.Decision, error) {
	return s.buckets.Allow(bucket, t, s.now()), nil
}

// Consume implements store.Store.
func (s *Store) Consume(_ context.Context, keyID string, w *store.Window, now time.Time) (store.QuotaDecision, error) {
	return s.counts.Consume(keyID, w, now), nil
}

// Meter implements store.Meter by calling Allow and Consume in turn,
// which in process cost no more than one call would.
func (s *Store) Meter(ctx context.Context, buckets []store.BucketCheck, keyID string, w *store.Window, now time.Time) (store.MeterResult, error) {
	return store.MeterByParts(ctx, s, buckets, keyID, w, now)
}

// QuotaUsed implements store.Store.
func (s *Store) QuotaUsed(_ context.Context, keyID string, w store.Window) (int64, error) {
	return s.counts.QuotaUsed(keyID, w), nil
}

// Usage implements store.Store.
func (s *Store) Usage(_ context.Context, keyID string, from, to time.Time) (map[string]int64, error) {
	return s.counts.Usage(keyID, from, to), nil
}

// Close implements store.Store; there is nothing to release.
func (s *Store) Close() error { return nil }

// clonePlan copies p deeply so that neither the caller nor the store sees
// the other's later changes.
func clonePlan(p store.Plan) store.Plan {
	if p.Throttle != nil {
		t := *p.Throttle
		p.Throttle = &t
	}
	if p.Quota != nil {
		q := *p.Quota
		p.Quota = &q
	}
	p.Methods = maps.Clone(p.Methods)
	return p
}
