package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// Run runs the conformance suite against the backend that open returns.
// Each subtest calls open once for a fresh, empty store, and Run closes
// that store when the subtest ends (so open must not close it too). The
// subtests run one after another, so open may reuse one server (e.g.
// FLUSHDB on a Redis database) between them.
//
// Throttle subtests use the real clock, because a shared backend such as
// Redis keeps its own time; they assert only what cannot flake on a slow
// machine and skip a check when the machine was too slow to make it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		desc string
		fn   func(t *testing.T, s store.Store)
	}{
		{"key create and lookup", testKeyCreate},
		{"key create conflicts", testKeyConflicts},
		{"key not found", testKeyNotFound},
		{"key update", testKeyUpdate},
		{"key list sorted", testKeyList},
		{"key validity round trip", testKeyValid},
		{"plan crud", testPlanCRUD},
		{"plan list sorted", testPlanList},
		{"plan isolation from caller", testPlanIsolation},
		{"allow burst then rate", testAllowBurst},
		{"allow refusal consumes nothing", testAllowRefusalFree},
		{"allow buckets independent", testAllowIndependent},
		{"allow rate zero refuses", testAllowRateZero},
		{"allow burst zero is one", testAllowBurstZero},
		{"consume counts", testConsume},
		{"consume concurrent exact", testConsumeConcurrent},
		{"consume windows independent", testConsumeWindows},
		{"usage per day", testUsage},
		{"meter order and stop at first refusal", meterTest(testMeterOrder)},
		{"meter refusal takes nothing", meterTest(testMeterRefusalFree)},
		{"meter rate zero refuses", meterTest(testMeterRateZero)},
		{"meter without buckets or key", meterTest(testMeterEmpty)},
		{"meter consume concurrent exact", meterTest(testMeterConcurrent)},
		{"meter equals allow and consume", meterTest(testMeterEquivalence)},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close(): got %v, want nil", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

var ctx = context.Background()

// created is a fixed creation time with a non-UTC zone and nanoseconds, to
// catch backends that lose either.
var created = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.FixedZone("X", 5*3600))

func newKey(name string) store.Key {
	return store.Key{
		ID:          "key_" + name,
		Name:        name,
		Hash:        fmt.Sprintf("%064x", []byte(name)),
		Plan:        "gold",
		Description: "key " + name,
		Enabled:     true,
		CreatedAt:   created,
	}
}

// sameKey compares keys with time.Equal, as backends that serialize keys
// may change a time's zone or drop its monotonic reading.
func sameKey(a, b store.Key) bool {
	ta := [3]time.Time{a.CreatedAt, a.ExpiresAt, a.RevokedAt}
	tb := [3]time.Time{b.CreatedAt, b.ExpiresAt, b.RevokedAt}
	for i := range ta {
		if !ta[i].Equal(tb[i]) {
			return false
		}
	}
	a.CreatedAt, a.ExpiresAt, a.RevokedAt = time.Time{}, time.Time{}, time.Time{}
	b.CreatedAt, b.ExpiresAt, b.RevokedAt = time.Time{}, time.Time{}, time.Time{}
	return a == b
}

func mustCreate(t *testing.T, s store.Store, k store.Key) {
	t.Helper()
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatalf("CreateKey(%q): got %v, want nil", k.Name, err)
	}
}

func testKeyCreate(t *testing.T, s store.Store) {
	k := newKey("acme")
	mustCreate(t, s, k)
	got, err := s.KeyByName(ctx, "acme")
	if err != nil || !sameKey(got, k) {
		t.Errorf("KeyByName(acme): got %+v, %v, want %+v, nil", got, err, k)
	}
	got, err = s.KeyByHash(ctx, k.Hash)
	if err != nil || !sameKey(got, k) {
		t.Errorf("KeyByHash(%s): got %+v, %v, want %+v, nil", k.Hash, got, err, k)
	}
}

func testKeyConflicts(t *testing.T, s store.Store) {
	k := newKey("acme")
	mustCreate(t, s, k)
	sameName := newKey("acme")
	sameName.Hash = fmt.Sprintf("%064x", []byte("other"))
	sameHash := newKey("zeta")
	sameHash.Hash = k.Hash
	for _, c := range []struct {
		desc string
		k    store.Key
	}{
		{"same name", sameName},
		{"same hash", sameHash},
		{"same both", k},
	} {
		err := s.CreateKey(ctx, c.k)
		if !errors.Is(err, store.ErrExists) {
			t.Errorf("%s: CreateKey(%q): got %v, want ErrExists", c.desc, c.k.Name, err)
		} else if !strings.Contains(err.Error(), c.k.Name) {
			t.Errorf("%s: CreateKey(%q): error %q does not name the key", c.desc, c.k.Name, err)
		}
	}
	// A refused create must leave nothing behind.
	if _, err := s.KeyByName(ctx, "zeta"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("KeyByName(zeta) after refused create: got %v, want ErrNotFound", err)
	}
	got, err := s.KeyByHash(ctx, k.Hash)
	if err != nil || got.Name != "acme" {
		t.Errorf("KeyByHash(%s) after refused creates: got %q, %v, want acme, nil", k.Hash, got.Name, err)
	}
	if _, err := s.KeyByHash(ctx, sameName.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("KeyByHash(other) after refused create: got %v, want ErrNotFound", err)
	}
}

func testKeyNotFound(t *testing.T, s store.Store) {
	mustCreate(t, s, newKey("acme"))
	if _, err := s.KeyByName(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("KeyByName(nobody): got %v, want ErrNotFound naming the key", err)
	}
	if _, err := s.KeyByHash(ctx, strings.Repeat("0", 64)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("KeyByHash(000...): got %v, want ErrNotFound", err)
	}
	if err := s.UpdateKey(ctx, newKey("nobody")); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("UpdateKey(nobody): got %v, want ErrNotFound naming the key", err)
	}
	if _, err := s.KeyByName(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("KeyByName(nobody) after refused update: got %v, want ErrNotFound", err)
	}
}

func testKeyUpdate(t *testing.T, s store.Store) {
	k := newKey("acme")
	mustCreate(t, s, k)
	k.Plan = "silver"
	k.Enabled = false
	k.Description = ""
	k.RevokedAt = created.Add(time.Hour)
	k.ExpiresAt = created.Add(2 * time.Hour)
	if err := s.UpdateKey(ctx, k); err != nil {
		t.Fatalf("UpdateKey(acme): got %v, want nil", err)
	}
	got, err := s.KeyByName(ctx, "acme")
	if err != nil || !sameKey(got, k) {
		t.Errorf("KeyByName(acme) after update: got %+v, %v, want %+v, nil", got, err, k)
	}
	got, err = s.KeyByHash(ctx, k.Hash)
	if err != nil || !sameKey(got, k) {
		t.Errorf("KeyByHash(%s) after update: got %+v, %v, want %+v, nil", k.Hash, got, err, k)
	}

	// Name and Hash never change: an update carrying another hash keeps
	// the stored one, so the key's value still finds it.
	changed := k
	changed.Hash = fmt.Sprintf("%064x", []byte("changed"))
	changed.Plan = "bronze"
	if err := s.UpdateKey(ctx, changed); err != nil {
		t.Fatalf("UpdateKey(acme, new hash): got %v, want nil", err)
	}
	got, err = s.KeyByHash(ctx, k.Hash)
	if err != nil || got.Hash != k.Hash || got.Plan != "bronze" {
		t.Errorf("KeyByHash(old hash) after hash-changing update: got %+v, %v, want old hash and plan bronze", got, err)
	}
	if _, err := s.KeyByHash(ctx, changed.Hash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("KeyByHash(new hash) after hash-changing update: got %v, want ErrNotFound", err)
	}
}

func testKeyList(t *testing.T, s store.Store) {
	keys, err := s.ListKeys(ctx)
	if err != nil || len(keys) != 0 {
		t.Fatalf("ListKeys() on empty store: got %v, %v, want none, nil", keys, err)
	}
	for _, n := range []string{"mango", "apple", "zebra", "Banana"} {
		mustCreate(t, s, newKey(n))
	}
	revoked, _ := s.KeyByName(ctx, "zebra")
	revoked.RevokedAt = created
	if err := s.UpdateKey(ctx, revoked); err != nil {
		t.Fatalf("UpdateKey(zebra): got %v, want nil", err)
	}
	keys, err = s.ListKeys(ctx)
	if err != nil {
		t.Fatalf("ListKeys(): got %v, want nil", err)
	}
	var names []string
	for _, k := range keys {
		names = append(names, k.Name)
	}
	want := []string{"Banana", "apple", "mango", "zebra"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("ListKeys(): got names %q, want %q", names, want)
	}
	if len(keys) == 4 && (keys[3].RevokedAt.IsZero() || keys[1].Hash != newKey("apple").Hash) {
		t.Errorf("ListKeys(): got %+v, want full keys with zebra revoked", keys)
	}
}

func testKeyValid(t *testing.T, s store.Store) {
	now := created.Add(24 * time.Hour)
	disabled, revoked, expired, later := newKey("disabled"), newKey("revoked"), newKey("expired"), newKey("later")
	disabled.Enabled = false
	revoked.RevokedAt = now.Add(-time.Second)
	expired.ExpiresAt = now
	later.ExpiresAt = now.Add(time.Nanosecond)
	tests := []struct {
		desc string
		k    store.Key
		want bool
	}{
		{"enabled", newKey("enabled"), true},
		{"disabled", disabled, false},
		{"revoked", revoked, false},
		{"expires now", expired, false},
		{"expires later", later, true},
	}
	for _, tt := range tests {
		mustCreate(t, s, tt.k)
		got, err := s.KeyByHash(ctx, tt.k.Hash)
		if err != nil {
			t.Fatalf("%s: KeyByHash(): got %v, want nil", tt.desc, err)
		}
		if v := got.Valid(now); v != tt.want {
			t.Errorf("%s: stored key Valid(%v): got %v, want %v", tt.desc, now, v, tt.want)
		}
	}
}

func goldPlan() store.Plan {
	return store.Plan{
		Name:     "gold",
		Throttle: &store.Throttle{Rate: 100.5, Burst: 200},
		Quota:    &store.Quota{Limit: 100000, Period: "MONTH", Offset: 2},
		Methods:  map[string]store.Throttle{"GET /orders/{id}": {Rate: 5, Burst: 10}},
	}
}

func testPlanCRUD(t *testing.T, s store.Store) {
	if _, err := s.Plan(ctx, "gold"); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "gold") {
		t.Errorf("Plan(gold) on empty store: got %v, want ErrNotFound naming the plan", err)
	}
	p := goldPlan()
	if err := s.PutPlan(ctx, p); err != nil {
		t.Fatalf("PutPlan(gold): got %v, want nil", err)
	}
	got, err := s.Plan(ctx, "gold")
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Errorf("Plan(gold): got %+v, %v, want %+v, nil", got, err, p)
	}
	// PutPlan replaces the whole plan.
	p2 := store.Plan{Name: "gold", Throttle: &store.Throttle{Rate: 1, Burst: 1}}
	if err := s.PutPlan(ctx, p2); err != nil {
		t.Fatalf("PutPlan(gold again): got %v, want nil", err)
	}
	got, err = s.Plan(ctx, "gold")
	if err != nil || !reflect.DeepEqual(got, p2) {
		t.Errorf("Plan(gold) after replace: got %+v, %v, want %+v, nil", got, err, p2)
	}
	if err := s.DeletePlan(ctx, "gold"); err != nil {
		t.Fatalf("DeletePlan(gold): got %v, want nil", err)
	}
	if _, err := s.Plan(ctx, "gold"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Plan(gold) after delete: got %v, want ErrNotFound", err)
	}
	if err := s.DeletePlan(ctx, "gold"); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "gold") {
		t.Errorf("DeletePlan(gold) twice: got %v, want ErrNotFound naming the plan", err)
	}
}

func testPlanList(t *testing.T, s store.Store) {
	plans, err := s.ListPlans(ctx)
	if err != nil || len(plans) != 0 {
		t.Fatalf("ListPlans() on empty store: got %v, %v, want none, nil", plans, err)
	}
	for _, n := range []string{"silver", "bronze", "gold"} {
		if err := s.PutPlan(ctx, store.Plan{Name: n, Quota: &store.Quota{Limit: 10, Period: "DAY"}}); err != nil {
			t.Fatalf("PutPlan(%s): got %v, want nil", n, err)
		}
	}
	if err := s.PutPlan(ctx, goldPlan()); err != nil {
		t.Fatalf("PutPlan(gold): got %v, want nil", err)
	}
	plans, err = s.ListPlans(ctx)
	if err != nil {
		t.Fatalf("ListPlans(): got %v, want nil", err)
	}
	var names []string
	for _, p := range plans {
		names = append(names, p.Name)
	}
	if want := []string{"bronze", "gold", "silver"}; !reflect.DeepEqual(names, want) {
		t.Errorf("ListPlans(): got names %q, want %q", names, want)
	}
	if len(plans) == 3 && !reflect.DeepEqual(plans[1], goldPlan()) {
		t.Errorf("ListPlans()[1]: got %+v, want %+v", plans[1], goldPlan())
	}
}

func testPlanIsolation(t *testing.T, s store.Store) {
	p := goldPlan()
	if err := s.PutPlan(ctx, p); err != nil {
		t.Fatalf("PutPlan(gold): got %v, want nil", err)
	}
	p.Throttle.Rate = 1
	p.Methods["POST /x"] = store.Throttle{Rate: 1}
	got, err := s.Plan(ctx, "gold")
	if err != nil || !reflect.DeepEqual(got, goldPlan()) {
		t.Fatalf("Plan(gold) after caller changed its copy: got %+v, %v, want %+v", got, err, goldPlan())
	}
	got.Quota.Limit = 1
	again, _ := s.Plan(ctx, "gold")
	if !reflect.DeepEqual(again, goldPlan()) {
		t.Errorf("Plan(gold) after caller changed a returned plan: got %+v, want %+v", again, goldPlan())
	}
}

func mustAllow(t *testing.T, s store.Store, bucket string, th store.Throttle) store.Decision {
	t.Helper()
	d, err := s.Allow(ctx, bucket, th)
	if err != nil {
		t.Fatalf("Allow(%q, %+v): got %v, want nil", bucket, th, err)
	}
	return d
}

// slow reports, and logs, that more than limit passed since start, so that
// a timing-dependent check cannot be trusted.
func slow(t *testing.T, start time.Time, limit time.Duration, what string) bool {
	t.Helper()
	if e := time.Since(start); e >= limit {
		t.Logf("skipping check %q: machine too slow (%v elapsed, budget %v)", what, e, limit)
		return true
	}
	return false
}

func testAllowBurst(t *testing.T, s store.Store) {
	const burst = 5
	th := store.Throttle{Rate: 4, Burst: burst} // one token per 250ms
	interval := 250 * time.Millisecond
	start := time.Now()
	for i := range burst {
		d := mustAllow(t, s, "b", th)
		if !d.Allowed {
			t.Fatalf("Allow(b) #%d of a full bucket (burst %d): got refused %+v, want allowed", i+1, burst, d)
		}
		if i == 0 {
			if d.Remaining != burst-1 || d.RetryAfter != 0 || d.Reset <= 0 || d.Reset > interval {
				t.Errorf("Allow(b) #1: got %+v, want Remaining %d, RetryAfter 0, 0 < Reset <= %v", d, burst-1, interval)
			}
		}
	}
	d := mustAllow(t, s, "b", th)
	if slow(t, start, interval, "refused after burst") {
		return
	}
	if d.Allowed {
		t.Fatalf("Allow(b) #%d right after the burst: got allowed %+v, want refused", burst+1, d)
	}
	if d.Remaining != 0 || d.RetryAfter <= 0 || d.RetryAfter > interval || d.Reset <= 0 || d.Reset > burst*interval {
		t.Errorf("Allow(b) refused: got %+v, want Remaining 0, 0 < RetryAfter <= %v, 0 < Reset <= %v", d, interval, burst*interval)
	}
	time.Sleep(d.RetryAfter + 20*time.Millisecond)
	if d := mustAllow(t, s, "b", th); !d.Allowed {
		t.Errorf("Allow(b) after waiting RetryAfter: got refused %+v, want allowed", d)
	}
}

func testAllowRefusalFree(t *testing.T, s store.Store) {
	th := store.Throttle{Rate: 5, Burst: 1} // one token per 200ms
	interval := 200 * time.Millisecond
	start := time.Now()
	if d := mustAllow(t, s, "r", th); !d.Allowed {
		t.Fatalf("Allow(r) on a full bucket: got refused %+v, want allowed", d)
	}
	var last store.Decision
	for i := range 10 {
		last = mustAllow(t, s, "r", th)
		if slow(t, start, interval, "refusals") {
			return
		}
		if last.Allowed {
			t.Fatalf("Allow(r) refusal #%d: got allowed %+v, want refused", i+1, last)
		}
	}
	// Had the ten refusals taken tokens, the bucket would be two seconds
	// in debt and this would be refused.
	time.Sleep(last.RetryAfter + 30*time.Millisecond)
	if d := mustAllow(t, s, "r", th); !d.Allowed {
		t.Errorf("Allow(r) after RetryAfter following 10 refusals: got refused %+v, want allowed", d)
	}
}

func testAllowIndependent(t *testing.T, s store.Store) {
	th := store.Throttle{Rate: 0.5, Burst: 2}
	start := time.Now()
	for range 2 {
		mustAllow(t, s, "x", th)
	}
	dx := mustAllow(t, s, "x", th)
	dy := mustAllow(t, s, "y", th)
	if !dy.Allowed || dy.Remaining != 1 {
		t.Errorf("Allow(y) after x is drained: got %+v, want allowed with Remaining 1", dy)
	}
	if !slow(t, start, 2*time.Second, "x drained") && dx.Allowed {
		t.Errorf("Allow(x) #3 with burst 2: got allowed %+v, want refused", dx)
	}
}

func testAllowRateZero(t *testing.T, s store.Store) {
	for _, th := range []store.Throttle{{Rate: 0, Burst: 10}, {Rate: -1, Burst: 10}} {
		if d := mustAllow(t, s, "z", th); d.Allowed || d.Remaining != 0 {
			t.Errorf("Allow(z, %+v): got %+v, want refused with Remaining 0", th, d)
		}
	}
}

func testAllowBurstZero(t *testing.T, s store.Store) {
	th := store.Throttle{Rate: 1, Burst: 0}
	start := time.Now()
	d := mustAllow(t, s, "o", th)
	if !d.Allowed || d.Remaining != 0 {
		t.Errorf("Allow(o, burst 0) #1: got %+v, want allowed with Remaining 0 (burst counts as 1)", d)
	}
	d = mustAllow(t, s, "o", th)
	if !slow(t, start, time.Second, "burst 0 second call") && d.Allowed {
		t.Errorf("Allow(o, burst 0) #2: got allowed %+v, want refused", d)
	}
}

var (
	may   = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	june  = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	today = time.Date(2026, 5, 17, 12, 0, 0, 0, time.UTC)
)

func mustConsume(t *testing.T, s store.Store, keyID string, w *store.Window, now time.Time) store.QuotaDecision {
	t.Helper()
	d, err := s.Consume(ctx, keyID, w, now)
	if err != nil {
		t.Fatalf("Consume(%q): got %v, want nil", keyID, err)
	}
	return d
}

func mustUsed(t *testing.T, s store.Store, keyID string, w store.Window) int64 {
	t.Helper()
	n, err := s.QuotaUsed(ctx, keyID, w)
	if err != nil {
		t.Fatalf("QuotaUsed(%q, %v): got %v, want nil", keyID, w.Start, err)
	}
	return n
}

func mustUsage(t *testing.T, s store.Store, keyID string, from, to time.Time) map[string]int64 {
	t.Helper()
	u, err := s.Usage(ctx, keyID, from, to)
	if err != nil {
		t.Fatalf("Usage(%q, %v, %v): got %v, want nil", keyID, from, to, err)
	}
	return u
}

func testConsume(t *testing.T, s store.Store) {
	w := &store.Window{Start: may, End: june, Limit: 3}
	if n := mustUsed(t, s, "key_a", *w); n != 0 {
		t.Errorf("QuotaUsed(key_a) before any request: got %d, want 0", n)
	}
	for i := int64(1); i <= 3; i++ {
		if d := mustConsume(t, s, "key_a", w, today); !d.Allowed || d.Used != i {
			t.Errorf("Consume(key_a) #%d with limit 3: got %+v, want allowed, Used %d", i, d, i)
		}
	}
	for i := range 2 {
		if d := mustConsume(t, s, "key_a", w, today); d.Allowed || d.Used != 3 {
			t.Errorf("Consume(key_a) #%d over limit 3: got %+v, want refused, Used 3", i+4, d)
		}
	}
	if n := mustUsed(t, s, "key_a", *w); n != 3 {
		t.Errorf("QuotaUsed(key_a): got %d, want 3", n)
	}
	// Without a window a request is always allowed and counts as usage only.
	if d := mustConsume(t, s, "key_a", nil, today); !d.Allowed {
		t.Errorf("Consume(key_a, nil window): got %+v, want allowed", d)
	}
	if n := mustUsed(t, s, "key_a", *w); n != 3 {
		t.Errorf("QuotaUsed(key_a) after a windowless request: got %d, want 3", n)
	}
	// Refused requests are not usage.
	want := map[string]int64{"2026-05-17": 4}
	if u := mustUsage(t, s, "key_a", today, today); !reflect.DeepEqual(u, want) {
		t.Errorf("Usage(key_a, today): got %v, want %v", u, want)
	}
	// A limit of zero refuses everything.
	zero := &store.Window{Start: may, End: june, Limit: 0}
	if d := mustConsume(t, s, "key_z", zero, today); d.Allowed || d.Used != 0 {
		t.Errorf("Consume(key_z) with limit 0: got %+v, want refused, Used 0", d)
	}
	if u := mustUsage(t, s, "key_z", may, june); len(u) != 0 {
		t.Errorf("Usage(key_z) after refusal: got %v, want none", u)
	}
}

func testConsumeConcurrent(t *testing.T, s store.Store) {
	countConcurrently(t, s, "Consume(key_c)", func(w *store.Window) (bool, error) {
		d, err := s.Consume(ctx, "key_c", w, today)
		return d.Allowed, err
	})
}

// countConcurrently counts key_c from many goroutines at once through
// count, against a quota of 1000 in May, and checks that exactly the limit
// was allowed and recorded: no count lost or doubled by a race.
func countConcurrently(t *testing.T, s store.Store, what string, count func(*store.Window) (allowed bool, err error)) {
	t.Helper()
	const goroutines, calls, limit = 50, 40, 1000
	w := &store.Window{Start: may, End: june, Limit: limit}
	var allowed, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Go(func() {
			for range calls {
				ok, err := count(w)
				if err != nil {
					errs <- err
					return
				}
				if ok {
					allowed.Add(1)
				} else {
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("%s concurrently: %v", what, err)
	}
	if a, r := allowed.Load(), refused.Load(); a != limit || r != goroutines*calls-limit {
		t.Errorf("%d×%d concurrent %s with limit %d: got %d allowed, %d refused, want %d, %d",
			goroutines, calls, what, limit, a, r, limit, goroutines*calls-limit)
	}
	if n := mustUsed(t, s, "key_c", *w); n != limit {
		t.Errorf("QuotaUsed(key_c): got %d, want %d", n, limit)
	}
	if u := mustUsage(t, s, "key_c", today, today); u["2026-05-17"] != limit {
		t.Errorf("Usage(key_c, today): got %v, want %d", u, limit)
	}
}

func testConsumeWindows(t *testing.T, s store.Store) {
	wMay := &store.Window{Start: may, End: june, Limit: 2}
	wJune := &store.Window{Start: june, End: june.AddDate(0, 1, 0), Limit: 2}
	for range 3 {
		mustConsume(t, s, "key_a", wMay, today)
	}
	if d := mustConsume(t, s, "key_a", wJune, june); !d.Allowed || d.Used != 1 {
		t.Errorf("Consume(key_a, June) after May is spent: got %+v, want allowed, Used 1", d)
	}
	if d := mustConsume(t, s, "key_b", wMay, today); !d.Allowed || d.Used != 1 {
		t.Errorf("Consume(key_b, May) after key_a spent May: got %+v, want allowed, Used 1", d)
	}
	// The window is identified by its start, whatever zone it is given in.
	mayElsewhere := store.Window{Start: may.In(time.FixedZone("Y", -7*3600)), End: june, Limit: 2}
	if n := mustUsed(t, s, "key_a", mayElsewhere); n != 2 {
		t.Errorf("QuotaUsed(key_a, May in another zone): got %d, want 2", n)
	}
	if n := mustUsed(t, s, "key_a", *wJune); n != 1 {
		t.Errorf("QuotaUsed(key_a, June): got %d, want 1", n)
	}
	if n := mustUsed(t, s, "key_b", *wJune); n != 0 {
		t.Errorf("QuotaUsed(key_b, June): got %d, want 0", n)
	}
}

func testUsage(t *testing.T, s store.Store) {
	d1 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	d2 := time.Date(2026, 5, 2, 23, 59, 59, 0, time.UTC)
	d4 := time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC)
	// 02:00 on May 5 at UTC+05:00 is May 4 in UTC.
	d4east := time.Date(2026, 5, 5, 2, 0, 0, 0, time.FixedZone("E", 5*3600))
	for _, c := range []struct {
		at time.Time
		n  int
	}{{d1, 3}, {d2, 1}, {d4, 1}, {d4east, 1}} {
		for range c.n {
			mustConsume(t, s, "key_u", nil, c.at)
		}
	}
	mustConsume(t, s, "key_other", nil, d1)
	tests := []struct {
		desc     string
		from, to time.Time
		want     map[string]int64
	}{
		{"whole range", d1, d4, map[string]int64{"2026-05-01": 3, "2026-05-02": 1, "2026-05-04": 2}},
		{"days inclusive by UTC date", d2.Add(-time.Hour), d4.Add(-7 * time.Hour), map[string]int64{"2026-05-02": 1, "2026-05-04": 2}},
		{"zoned bounds", time.Date(2026, 5, 2, 6, 0, 0, 0, time.FixedZone("E", 5*3600)), d4east, map[string]int64{"2026-05-02": 1, "2026-05-04": 2}},
		{"one day", d1.Add(time.Hour), d1.Add(2 * time.Hour), map[string]int64{"2026-05-01": 3}},
		{"empty day", time.Date(2026, 5, 3, 0, 0, 0, 0, time.UTC), time.Date(2026, 5, 3, 23, 0, 0, 0, time.UTC), map[string]int64{}},
		{"before", d1.AddDate(-1, 0, 0), d1.Add(-time.Second), map[string]int64{}},
	}
	for _, tt := range tests {
		got := mustUsage(t, s, "key_u", tt.from, tt.to)
		if len(got) != 0 || len(tt.want) != 0 {
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: Usage(key_u, %v, %v): got %v, want %v", tt.desc, tt.from, tt.to, got, tt.want)
			}
		}
	}
	if u := mustUsage(t, s, "key_none", d1, d4); len(u) != 0 {
		t.Errorf("Usage(key_none): got %v, want none", u)
	}
}

// meterTest adapts a test of store.Meter to the suite: it is skipped for
// backends that do not implement Meter, which is optional.
func meterTest(fn func(t *testing.T, s store.Store, m store.Meter)) func(t *testing.T, s store.Store) {
	return func(t *testing.T, s store.Store) {
		m, ok := s.(store.Meter)
		if !ok {
			t.Skipf("%T does not implement store.Meter", s)
		}
		fn(t, s, m)
	}
}

func bucket(name string, th store.Throttle) store.BucketCheck {
	return store.BucketCheck{Bucket: name, Throttle: th}
}

func mustMeter(t *testing.T, m store.Meter, buckets []store.BucketCheck, keyID string, w *store.Window, now time.Time) store.MeterResult {
	t.Helper()
	r, err := m.Meter(ctx, buckets, keyID, w, now)
	if err != nil {
		t.Fatalf("Meter(%v, %q): got %v, want nil", buckets, keyID, err)
	}
	return r
}

// slowRate refills one token every 100 s: no bucket refills while a test
// runs, so counts of tokens are exact.
const slowRate = 0.01

func testMeterOrder(t *testing.T, s store.Store, m store.Meter) {
	buckets := []store.BucketCheck{
		bucket("a", store.Throttle{Rate: slowRate, Burst: 3}),
		bucket("b", store.Throttle{Rate: slowRate, Burst: 1}),
		bucket("c", store.Throttle{Rate: slowRate, Burst: 5}),
	}
	w := &store.Window{Start: may, End: june, Limit: 10}

	r := mustMeter(t, m, buckets, "key_m", w, today)
	if r.Refused != -1 || !r.Counted || r.Quota != (store.QuotaDecision{Allowed: true, Used: 1}) || len(r.Decisions) != 3 {
		t.Fatalf("Meter(a, b, c, key_m) on full buckets: got %+v, want 3 decisions, none refused, counted, quota allowed with Used 1", r)
	}
	for i, want := range []int{2, 0, 4} {
		if d := r.Decisions[i]; !d.Allowed || d.Remaining != want || d.RetryAfter != 0 {
			t.Errorf("Meter(a, b, c, key_m) decision %d: got %+v, want allowed with Remaining %d", i, d, want)
		}
	}

	// b is empty now: a gives its token, b refuses, c is never asked and
	// nothing is counted.
	r = mustMeter(t, m, buckets, "key_m", w, today)
	if r.Refused != 1 || r.Counted || len(r.Decisions) != 2 {
		t.Fatalf("Meter(a, b, c, key_m) with b empty: got %+v, want 2 decisions, refused by 1, not counted", r)
	}
	if d := r.Decisions[0]; !d.Allowed || d.Remaining != 1 {
		t.Errorf("Meter(a, b, c, key_m) with b empty, decision 0: got %+v, want allowed with Remaining 1", d)
	}
	if d := r.Decisions[1]; d.Allowed || d.Remaining != 0 || d.RetryAfter <= 0 {
		t.Errorf("Meter(a, b, c, key_m) with b empty, decision 1: got %+v, want refused with RetryAfter > 0", d)
	}
	if d := mustAllow(t, s, "c", buckets[2].Throttle); !d.Allowed || d.Remaining != 3 {
		t.Errorf("Allow(c) after a Meter refused by b: got %+v, want allowed with Remaining 3 (c untouched)", d)
	}
	if d := mustAllow(t, s, "a", buckets[0].Throttle); !d.Allowed || d.Remaining != 0 {
		t.Errorf("Allow(a) after two Meters: got %+v, want allowed with Remaining 0 (a gave two tokens)", d)
	}
	if n := mustUsed(t, s, "key_m", *w); n != 1 {
		t.Errorf("QuotaUsed(key_m) after a refused Meter: got %d, want 1", n)
	}
	if u := mustUsage(t, s, "key_m", today, today); u["2026-05-17"] != 1 {
		t.Errorf("Usage(key_m) after a refused Meter: got %v, want 1 today", u)
	}

	// Without a key nothing is counted; without buckets only the count.
	r = mustMeter(t, m, buckets[2:], "", w, today)
	if r.Refused != -1 || r.Counted || len(r.Decisions) != 1 || r.Decisions[0].Remaining != 2 {
		t.Errorf("Meter(c, no key): got %+v, want c allowed with Remaining 2, not counted", r)
	}
	r = mustMeter(t, m, nil, "key_m", nil, today)
	if r.Refused != -1 || !r.Counted || !r.Quota.Allowed || len(r.Decisions) != 0 {
		t.Errorf("Meter(no buckets, key_m, no window): got %+v, want counted and allowed", r)
	}
	if u := mustUsage(t, s, "key_m", today, today); u["2026-05-17"] != 2 {
		t.Errorf("Usage(key_m) after a windowless Meter: got %v, want 2 today", u)
	}
	if n := mustUsed(t, s, "key_m", *w); n != 1 {
		t.Errorf("QuotaUsed(key_m) after a windowless Meter: got %d, want 1", n)
	}

	// Over quota: counted (Consume ran) but refused, and not usage.
	one := &store.Window{Start: may, End: june, Limit: 1}
	r = mustMeter(t, m, nil, "key_m", one, today)
	if r.Refused != -1 || !r.Counted || r.Quota != (store.QuotaDecision{Used: 1}) {
		t.Errorf("Meter(key_m) over a limit of 1: got %+v, want counted, quota refused with Used 1", r)
	}
	if u := mustUsage(t, s, "key_m", today, today); u["2026-05-17"] != 2 {
		t.Errorf("Usage(key_m) after a Meter over quota: got %v, want 2 today", u)
	}
}

func testMeterRefusalFree(t *testing.T, s store.Store, m store.Meter) {
	th := store.Throttle{Rate: 5, Burst: 1} // one token per 200ms
	interval := 200 * time.Millisecond
	buckets := []store.BucketCheck{bucket("r", th)}
	start := time.Now()
	if r := mustMeter(t, m, buckets, "", nil, today); r.Refused != -1 {
		t.Fatalf("Meter(r) on a full bucket: got %+v, want allowed", r)
	}
	var last store.MeterResult
	for i := range 10 {
		last = mustMeter(t, m, buckets, "key_r", nil, today)
		if slow(t, start, interval, "refusals") {
			return
		}
		if last.Refused != 0 || last.Counted {
			t.Fatalf("Meter(r, key_r) refusal #%d: got %+v, want refused by 0, not counted", i+1, last)
		}
	}
	// Had the refusals taken tokens, RetryAfter would have grown by an
	// interval with each.
	if ra := last.Decisions[0].RetryAfter; ra <= 0 || ra > interval {
		t.Errorf("Meter(r) after 10 refusals: got RetryAfter %v, want 0 < RetryAfter <= %v", ra, interval)
	}
	if u := mustUsage(t, s, "key_r", today, today); len(u) != 0 {
		t.Errorf("Usage(key_r) after refused Meters: got %v, want none", u)
	}
	time.Sleep(last.Decisions[0].RetryAfter + 30*time.Millisecond)
	if d := mustAllow(t, s, "r", th); !d.Allowed {
		t.Errorf("Allow(r) after RetryAfter following 10 refused Meters: got refused %+v, want allowed", d)
	}
}

func testMeterRateZero(t *testing.T, s store.Store, m store.Meter) {
	a := store.Throttle{Rate: slowRate, Burst: 2}
	buckets := []store.BucketCheck{bucket("a", a), bucket("z", store.Throttle{Rate: 0, Burst: 10})}
	r := mustMeter(t, m, buckets, "key_z", nil, today)
	if r.Refused != 1 || r.Counted || len(r.Decisions) != 2 || r.Decisions[1] != (store.Decision{}) {
		t.Fatalf("Meter(a, z with rate 0, key_z): got %+v, want refused by 1 with a zero decision, not counted", r)
	}
	// As with Allow in turn, a's token is spent.
	if d := mustAllow(t, s, "a", a); !d.Allowed || d.Remaining != 0 {
		t.Errorf("Allow(a) after a Meter refused by a later bucket: got %+v, want allowed with Remaining 0", d)
	}
}

func testMeterEmpty(t *testing.T, s store.Store, m store.Meter) {
	r := mustMeter(t, m, nil, "", nil, today)
	if r.Refused != -1 || r.Counted || len(r.Decisions) != 0 {
		t.Errorf("Meter(nothing): got %+v, want Refused -1, nothing counted", r)
	}
}

func testMeterConcurrent(t *testing.T, s store.Store, m store.Meter) {
	buckets := []store.BucketCheck{bucket("wide", store.Throttle{Rate: 1e9, Burst: 1 << 30})}
	countConcurrently(t, s, "Meter(wide, key_c)", func(w *store.Window) (bool, error) {
		r, err := m.Meter(ctx, buckets, "key_c", w, today)
		if err == nil && (r.Refused != -1 || !r.Counted) {
			err = fmt.Errorf("Meter(wide, key_c): got %+v, want the bucket to allow and the request counted", r)
		}
		return r.Quota.Allowed, err
	})
}

// testMeterEquivalence runs one sequence of requests through Meter and,
// on buckets and a key of other names, through store.MeterByParts (Allow
// then Consume), and compares every answer.
func testMeterEquivalence(t *testing.T, s store.Store, m store.Meter) {
	th := map[string]store.Throttle{
		"key":     {Rate: slowRate, Burst: 4},
		"method":  {Rate: slowRate, Burst: 1},
		"route":   {Rate: slowRate, Burst: 6},
		"gateway": {Rate: slowRate, Burst: 8},
	}
	w := &store.Window{Start: may, End: june, Limit: 5}
	steps := []struct {
		buckets []string
		key     bool
		w       *store.Window
	}{
		{[]string{"key", "route", "gateway"}, true, w},
		{[]string{"method", "route", "gateway"}, true, w},
		{[]string{"method", "route", "gateway"}, true, w},
		{[]string{"route", "gateway"}, false, nil},
		{[]string{"key", "route", "gateway"}, true, nil},
		{[]string{"key", "route", "gateway"}, true, w},
		{[]string{"key", "route", "gateway"}, true, w},
		{[]string{"key", "route", "gateway"}, true, w},
		{[]string{"route", "gateway"}, true, w},
		{[]string{"route", "gateway"}, true, w},
		{[]string{"gateway"}, true, w},
		{[]string{"gateway"}, false, nil},
	}
	run := func(prefix string, meter func([]store.BucketCheck, string, *store.Window) (store.MeterResult, error)) []store.MeterResult {
		var out []store.MeterResult
		for i, st := range steps {
			var bs []store.BucketCheck
			for _, b := range st.buckets {
				bs = append(bs, store.BucketCheck{Bucket: prefix + b, Throttle: th[b]})
			}
			keyID := ""
			if st.key {
				keyID = "key_" + prefix
			}
			r, err := meter(bs, keyID, st.w)
			if err != nil {
				t.Fatalf("step %d: %s(%v, %q): got %v, want nil", i, prefix, bs, keyID, err)
			}
			out = append(out, r)
		}
		return out
	}
	start := time.Now()
	got := run("meter", func(bs []store.BucketCheck, keyID string, w *store.Window) (store.MeterResult, error) {
		return m.Meter(ctx, bs, keyID, w, today)
	})
	want := run("parts", func(bs []store.BucketCheck, keyID string, w *store.Window) (store.MeterResult, error) {
		return store.MeterByParts(ctx, s, bs, keyID, w, today)
	})
	// Times are measured from each call's own now: they may differ by
	// the time the runs took, plus rounding to a microsecond.
	slack := time.Since(start) + time.Millisecond
	near := func(a, b time.Duration) bool { return a-b <= slack && b-a <= slack }
	for i := range steps {
		g, p := got[i], want[i]
		same := g.Refused == p.Refused && g.Counted == p.Counted && g.Quota == p.Quota && len(g.Decisions) == len(p.Decisions)
		for j := 0; same && j < len(g.Decisions); j++ {
			dg, dp := g.Decisions[j], p.Decisions[j]
			same = dg.Allowed == dp.Allowed && dg.Remaining == dp.Remaining && near(dg.RetryAfter, dp.RetryAfter) && near(dg.Reset, dp.Reset)
		}
		if !same {
			t.Errorf("step %d %v: Meter: got %+v, want %+v as Allow then Consume", i, steps[i].buckets, g, p)
		}
	}
	for _, id := range []string{"key_meter", "key_parts"} {
		if n := mustUsed(t, s, id, *w); n != w.Limit {
			t.Errorf("QuotaUsed(%s): got %d, want %d", id, n, w.Limit)
		}
	}
	if gu, wu := mustUsage(t, s, "key_meter", today, today), mustUsage(t, s, "key_parts", today, today); !reflect.DeepEqual(gu, wu) {
		t.Errorf("Usage(key_meter): got %v, want %v as key_parts", gu, wu)
	}
}
