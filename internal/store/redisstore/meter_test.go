package redisstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/redistest"
)

// requestBuckets are the buckets of a keyed request on a route with a
// route and a gateway throttle, far from refusing.
var requestBuckets = []store.BucketCheck{
	{Bucket: "key:key_b", Throttle: store.Throttle{Rate: 1e6, Burst: 1e6}},
	{Bucket: "route:bench", Throttle: store.Throttle{Rate: 1e6, Burst: 1e6}},
	{Bucket: "gateway", Throttle: store.Throttle{Rate: 1e6, Burst: 1e6}},
}

// scriptCalls returns how many EVALSHA and EVAL commands Redis ran since
// its statistics were last reset.
func scriptCalls(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	info, err := rawClient(t, srv.Addr()).Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	n := 0
	for _, m := range regexp.MustCompile(`(?m)^cmdstat_eval(?:sha)?:calls=(\d+)`).FindAllStringSubmatch(info, -1) {
		c, _ := strconv.Atoi(m[1])
		n += c
	}
	return n
}

func TestMeterOneRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, Options{Addrs: []string{srv.Addr()}})
	now := time.Now()
	w := &store.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Limit: 100}
	// The first call loads the script (EVALSHA, then EVAL on NOSCRIPT).
	if _, err := s.Meter(ctx, requestBuckets, "key_b", w, now); err != nil {
		t.Fatalf("Meter(): got %v, want nil", err)
	}
	if err := rawClient(t, srv.Addr()).ConfigResetStat(ctx).Err(); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	r, err := s.Meter(ctx, requestBuckets, "key_b", w, now)
	if err != nil || r.Refused != -1 || !r.Counted || r.Quota.Used != 2 || len(r.Decisions) != 3 {
		t.Fatalf("Meter() again: got %+v, %v, want 3 buckets allowed, counted with Used 2", r, err)
	}
	if n := scriptCalls(t, srv); n != 1 {
		t.Errorf("scripts run by one Meter of 3 buckets and a quota: got %d, want 1", n)
	}
}

func TestMeterBucketExpires(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, Options{Addrs: []string{srv.Addr()}})
	th := store.Throttle{Rate: 1, Burst: 3}
	if _, err := s.Meter(ctx, []store.BucketCheck{{Bucket: "d", Throttle: th}}, "", nil, time.Now()); err != nil {
		t.Fatalf("Meter(d): got %v, want nil", err)
	}
	// As Allow's, the bucket expires when it would be full again.
	ttl, err := rawClient(t, srv.Addr()).PTTL(ctx, DefaultPrefix+"bucket:d").Result()
	if err != nil || ttl <= 0 || ttl > time.Second {
		t.Errorf("PTTL(bucket:d) after one Meter: got %v, %v, want 0 < TTL <= 1s", ttl, err)
	}
}

func TestMeterErrorNamesWhatFailed(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, Options{Addrs: []string{srv.Addr()}, Timeout: 300 * time.Millisecond})
	srv.Kill()
	_, err := s.Meter(ctx, requestBuckets, "key_b", nil, time.Now())
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Meter() with Redis killed: got %v, want ErrUnavailable", err)
	}
	for _, want := range []string{`"key:key_b"`, `"route:bench"`, `"gateway"`, "key_b"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Meter() with Redis killed: error %q does not name %s", err, want)
		}
	}
}

func TestMeterResultShape(t *testing.T) {
	tests := []struct {
		desc    string
		res     []int64
		n       int
		withKey bool
		ok      bool
	}{
		{"all allowed, counted", []int64{-1, 1, 1, 5, 1, 0, 0, 1, 1, 0, 0, 1}, 2, true, true},
		{"all allowed, no key", []int64{-1, 0, 0, 0, 1, 0, 0, 1}, 1, false, true},
		{"refused by the second", []int64{1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 9, 9}, 3, true, true},
		{"no buckets, counted", []int64{-1, 1, 0, 3}, 0, true, true},
		{"too short", []int64{-1, 1}, 0, true, false},
		{"ragged", []int64{-1, 0, 0, 0, 1}, 1, false, false},
		{"fewer decisions than buckets", []int64{-1, 1, 1, 1, 1, 0, 0, 1}, 2, true, false},
		{"refused but counted", []int64{0, 1, 1, 1, 0, 0, 1, 1}, 1, true, false},
		{"refused index past the decisions", []int64{2, 0, 0, 0, 0, 0, 1, 1}, 3, true, false},
		{"counted without a key", []int64{-1, 1, 1, 1}, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			_, ok := meterResult(tt.res, tt.n, tt.withKey)
			if ok != tt.ok {
				t.Errorf("meterResult(%v, %d, %v): got ok %v, want %v", tt.res, tt.n, tt.withKey, ok, tt.ok)
			}
		})
	}
}

// BenchmarkRequestLimits compares the store calls of one keyed request
// with a key, a route and a gateway bucket and a quota: Allow three times
// and Consume, as limits did, against one Meter.
func BenchmarkRequestLimits(b *testing.B) {
	srv := redistest.Start(b)
	s, err := New(Options{Addrs: []string{srv.Addr()}, Logger: quiet})
	if err != nil {
		b.Fatalf("New(): %v", err)
	}
	b.Cleanup(func() { s.Close() })
	now := time.Now()
	w := &store.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Limit: 1 << 40}
	b.Run("allow×3+consume", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, bc := range requestBuckets {
				if _, err := s.Allow(ctx, bc.Bucket, bc.Throttle); err != nil {
					b.Fatalf("Allow(%s): %v", bc.Bucket, err)
				}
			}
			if _, err := s.Consume(ctx, "key_b", w, now); err != nil {
				b.Fatalf("Consume(key_b): %v", err)
			}
		}
	})
	b.Run("meter", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Meter(ctx, requestBuckets, "key_b", w, now); err != nil {
				b.Fatalf("Meter(): %v", err)
			}
		}
	})
}

// TestMeterBatchedConcurrent: many concurrent Meter calls leave in shared
// pipelines, also right after Redis forgot the script (SCRIPT FLUSH, as
// after a restart), and every call is counted exactly once.
func TestMeterBatchedConcurrent(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, Options{Addrs: []string{srv.Addr()}})
	raw := rawClient(t, srv.Addr())
	now := time.Now()
	w := &store.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Limit: 1 << 40}
	const goroutines, calls = 64, 20
	for round := range 2 {
		if err := raw.ScriptFlush(ctx).Err(); err != nil {
			t.Fatalf("SCRIPT FLUSH: %v", err)
		}
		errs := make(chan error, goroutines)
		for range goroutines {
			go func() {
				for range calls {
					r, err := s.Meter(ctx, requestBuckets, "key_batch", w, now)
					if err == nil && (r.Refused != -1 || !r.Counted) {
						err = errors.New("not counted")
					}
					if err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range goroutines {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: Meter(): %v", round, err)
			}
		}
		used, err := s.QuotaUsed(ctx, "key_batch", *w)
		if want := int64((round + 1) * goroutines * calls); err != nil || used != want {
			t.Fatalf("round %d: QuotaUsed(): got %d, %v, want %d", round, used, err, want)
		}
	}
}

// TestMeterAfterClose: a call made after Close fails as unavailable
// instead of hanging.
func TestMeterAfterClose(t *testing.T) {
	srv := redistest.Start(t)
	s, err := New(Options{Addrs: []string{srv.Addr()}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := s.Meter(ctx, requestBuckets, "", nil, now); err != nil {
		t.Fatalf("Meter() before Close: %v", err)
	}
	s.Close()
	for range 20 { // before the fix, about half of these were queued and timed out
		_, err := s.Meter(ctx, requestBuckets, "", nil, now)
		if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, errStoreClosed) {
			t.Fatalf("Meter() after Close: got %v, want store.ErrUnavailable from errStoreClosed", err)
		}
	}
}

// TestMeterCallerGaveUpNotCounted: a call whose caller's context ended
// before it was sent is answered with that error and never counted: the
// caller has already applied its failure mode.
func TestMeterCallerGaveUpNotCounted(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, Options{Addrs: []string{srv.Addr()}})
	now := time.Now()
	w := &store.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Limit: 100}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	for range 20 {
		if _, err := s.Meter(gone, requestBuckets, "key_gone", w, now); !errors.Is(err, context.Canceled) {
			t.Fatalf("Meter() with a cancelled context: got %v, want context.Canceled", err)
		}
	}
	// A live call after them is sent after any of them that were queued.
	if _, err := s.Meter(ctx, requestBuckets, "key_gone", w, now); err != nil {
		t.Fatalf("Meter(): %v", err)
	}
	if used, err := s.QuotaUsed(ctx, "key_gone", *w); err != nil || used != 1 {
		t.Errorf("QuotaUsed(): got %d, %v, want 1 (the cancelled calls not counted)", used, err)
	}
}

// TestMeterHungRedisAnswersEveryCall: with Redis hung, every Meter call
// is answered as unavailable about when the store's timeout says, even
// with more calls waiting than the queue holds, so that a request never
// waits on the store longer than its timeout (the calls carry no timer of
// their own; the batcher keeps their deadlines).
func TestMeterHungRedisAnswersEveryCall(t *testing.T) {
	const timeout = 100 * time.Millisecond
	s := open(t, Options{Addrs: []string{hungServer(t)}, Timeout: timeout})
	now := time.Now()
	w := &store.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Limit: 100}
	// 16 queues' worth: sent batch after batch, each waiting out the
	// timeout, the last would be answered after 1.6 s.
	calls := 16 * meterWorkers * maxMeterBatch
	limit := timeout + 700*time.Millisecond
	errs := make(chan error, calls)
	for i := range calls {
		go func() {
			start := time.Now()
			_, err := s.Meter(ctx, requestBuckets, "key_hung", w, now)
			if e := time.Since(start); !errors.Is(err, store.ErrUnavailable) || e > limit {
				errs <- fmt.Errorf("call %d: got %v after %v, want ErrUnavailable within %v", i, err, e, limit)
				return
			}
			errs <- nil
		}()
	}
	for range calls {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkMeterParallel meters a keyed request from many goroutines, as a
// loaded gateway does: go test -bench MeterParallel -cpu 2 ./internal/store/redisstore
func BenchmarkMeterParallel(b *testing.B) {
	srv := redistest.Start(b)
	s, err := New(Options{Addrs: []string{srv.Addr()}, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	w := &store.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Limit: 1 << 40}
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Meter(ctx, requestBuckets, "key_bench", w, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestMeterGroupCountsEachRequest: calls of one key and plan sent together
// are one script run that meters each in turn, and the outcome is what
// as many single calls give: exactly the burst passes the throttle, of
// those exactly the quota's limit is counted, and each caller gets its
// own answer.
func TestMeterGroupCountsEachRequest(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, Options{Addrs: []string{srv.Addr()}})
	now := time.Now()
	w := &store.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Limit: 5}
	// A rate so low nothing refills during the test: the burst is all.
	buckets := []store.BucketCheck{{Bucket: "key:key_g", Throttle: store.Throttle{Rate: 0.001, Burst: 8}}}
	other := []store.BucketCheck{{Bucket: "key:key_o", Throttle: store.Throttle{Rate: 1e6, Burst: 1e6}}}
	// Load the script, so the group below is one EVALSHA.
	if _, err := s.Meter(ctx, other, "key_o", nil, now); err != nil {
		t.Fatal(err)
	}
	if err := rawClient(t, srv.Addr()).ConfigResetStat(ctx).Err(); err != nil {
		t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
	var batch []*meterCall
	for i := range 12 {
		c := testCall(s, buckets, "key_g", w, now, testTimeout)
		if i == 6 { // another key in the middle of the batch
			c = testCall(s, other, "key_o", nil, now, testTimeout)
		}
		batch = append(batch, c)
	}
	s.meter.send(batch)
	if n := scriptCalls(t, srv); n != 2 {
		t.Errorf("scripts run for a batch of two keys: got %d, want 2", n)
	}
	var counted, quotaRefused, throttled int
	var used []int64
	for i, c := range batch {
		<-c.done
		if c.err != nil {
			t.Fatalf("call %d: %v", i, c.err)
		}
		r, ok := meterResult(c.res, 1, true)
		if !ok {
			t.Fatalf("call %d: result %v is not one request's", i, c.res)
		}
		switch {
		case i == 6:
			if r.Refused != -1 || !r.Quota.Allowed {
				t.Errorf("the other key's call: %+v, want allowed", r)
			}
		case r.Refused == 0:
			throttled++
		case !r.Quota.Allowed:
			quotaRefused++
		default:
			counted++
			used = append(used, r.Quota.Used)
		}
	}
	// 11 calls of key_g: 8 pass the burst, 5 of those are counted.
	if counted != 5 || quotaRefused != 3 || throttled != 3 {
		t.Errorf("of 11 grouped calls: %d counted, %d over quota, %d throttled; want 5, 3, 3", counted, quotaRefused, throttled)
	}
	for i, u := range used {
		if u != int64(i+1) {
			t.Errorf("counted calls saw used %v, want 1 to 5 in order", used)
			break
		}
	}
	if got, err := s.QuotaUsed(ctx, "key_g", *w); err != nil || got != 5 {
		t.Errorf("QuotaUsed(key_g): got %d, %v, want 5", got, err)
	}
	raw := rawClient(t, srv.Addr())
	// The counter goes a day after its window ends; the bucket when it
	// would be full again (8 requests at 0.001/s: 8000 s).
	if ttl, err := raw.PTTL(ctx, s.quotaKey("key_g", w.Start)).Result(); err != nil || ttl < 24*time.Hour || ttl > 25*time.Hour {
		t.Errorf("PTTL(quota of key_g): got %v, %v, want about 25h", ttl, err)
	}
	if ttl, err := raw.PTTL(ctx, s.bucketKey("key:key_g")).Result(); err != nil || ttl < 7990*time.Second || ttl > 8000*time.Second {
		t.Errorf("PTTL(bucket of key_g): got %v, %v, want about 8000s", ttl, err)
	}
	if u, err := s.Usage(ctx, "key_g", now, now); err != nil || u[now.UTC().Format("2006-01-02")] != 5 {
		t.Errorf("Usage(key_g): got %v, %v, want 5 today", u, err)
	}
}

// TestMeterGroupMatchesSingleCalls: a group of calls gives each caller
// what the same calls sent one at a time give, with several buckets, a
// refusal by the second, a rate of zero, a key without a quota, buckets
// alone, and a quota running out, and leaves the same counts behind.
func TestMeterGroupMatchesSingleCalls(t *testing.T) {
	srv := redistest.Start(t)
	now := time.Now()
	// At 0.001/s nothing refills while the test runs, so the one clock of
	// a group and the several of single calls give the same remaining.
	wide := store.Throttle{Rate: 0.001, Burst: 1000}
	two := store.Throttle{Rate: 0.001, Burst: 2}
	window := func(limit int64) *store.Window {
		return &store.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Limit: limit}
	}
	cases := []struct {
		name    string
		buckets []store.BucketCheck
		keyID   string
		w       *store.Window
	}{
		{"second bucket refuses", []store.BucketCheck{{Bucket: "key:a", Throttle: wide}, {Bucket: "route:a", Throttle: two}}, "key_a", window(10)},
		{"rate of zero", []store.BucketCheck{{Bucket: "key:b", Throttle: wide}, {Bucket: "route:b", Throttle: store.Throttle{}}}, "key_b", window(10)},
		{"key without a quota", []store.BucketCheck{{Bucket: "key:c", Throttle: two}}, "key_c", nil},
		{"buckets alone", []store.BucketCheck{{Bucket: "route:d", Throttle: wide}, {Bucket: "gateway", Throttle: two}}, "", nil},
		{"quota runs out", []store.BucketCheck{{Bucket: "key:e", Throttle: wide}}, "key_e", window(3)},
	}
	const calls = 5
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			grouped := open(t, Options{Addrs: []string{srv.Addr()}, Prefix: fmt.Sprintf("{g%d}:", i)})
			single := open(t, Options{Addrs: []string{srv.Addr()}, Prefix: fmt.Sprintf("{s%d}:", i)})
			call := func(s *Store) *meterCall {
				return testCall(s, tc.buckets, tc.keyID, tc.w, now, testTimeout)
			}
			var group, one []*meterCall
			for range calls {
				group = append(group, call(grouped))
			}
			grouped.meter.send(group)
			for range calls {
				c := call(single)
				single.meter.send([]*meterCall{c})
				one = append(one, c)
			}
			for j := range calls {
				g, ok1 := meterResult(group[j].res, len(tc.buckets), tc.keyID != "")
				s, ok2 := meterResult(one[j].res, len(tc.buckets), tc.keyID != "")
				if group[j].err != nil || one[j].err != nil || !ok1 || !ok2 {
					t.Fatalf("call %d: grouped %v, %v; single %v, %v", j, group[j].res, group[j].err, one[j].res, one[j].err)
				}
				// Retry-after and reset come from each script's own clock.
				for k := range g.Decisions {
					g.Decisions[k].RetryAfter, g.Decisions[k].Reset = 0, 0
					s.Decisions[k].RetryAfter, s.Decisions[k].Reset = 0, 0
				}
				if fmt.Sprint(g) != fmt.Sprint(s) {
					t.Errorf("call %d: grouped %+v, single %+v", j, g, s)
				}
			}
			if tc.keyID == "" {
				return
			}
			gu, err1 := grouped.Usage(ctx, tc.keyID, now, now)
			su, err2 := single.Usage(ctx, tc.keyID, now, now)
			if err1 != nil || err2 != nil || fmt.Sprint(gu) != fmt.Sprint(su) {
				t.Errorf("usage: grouped %v, %v; single %v, %v", gu, err1, su, err2)
			}
			if tc.w != nil {
				gq, err1 := grouped.QuotaUsed(ctx, tc.keyID, *tc.w)
				sq, err2 := single.QuotaUsed(ctx, tc.keyID, *tc.w)
				if err1 != nil || err2 != nil || gq != sq {
					t.Errorf("quota used: grouped %d, %v; single %d, %v", gq, err1, sq, err2)
				}
			}
		})
	}
}

// TestMeterStaleCallNotSentWithFreshOnes: a call that waited most of its
// time in the queue is answered as timed out, not sent, so that the fresh
// calls of its batch keep their own deadlines.
func TestMeterStaleCallNotSentWithFreshOnes(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, Options{Addrs: []string{srv.Addr()}})
	now := time.Now()
	w := &store.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Limit: 100}
	call := func(left time.Duration) *meterCall {
		return testCall(s, requestBuckets, "key_st", w, now, left)
	}
	stale, fresh := call(testTimeout/8), call(testTimeout)
	s.meter.send([]*meterCall{stale, fresh})
	if !errors.Is(stale.err, context.DeadlineExceeded) {
		t.Errorf("call with an eighth of its time left: got %v, want a timeout", stale.err)
	}
	if fresh.err != nil {
		t.Errorf("fresh call: %v", fresh.err)
	}
	if used, err := s.QuotaUsed(ctx, "key_st", *w); err != nil || used != 1 {
		t.Errorf("QuotaUsed(): got %d, %v, want 1 (the stale call not counted)", used, err)
	}
}

// testCall is one Meter call as Meter queues it, with left until its
// deadline, for tests that hand batches to send themselves.
func testCall(s *Store, buckets []store.BucketCheck, keyID string, w *store.Window, now time.Time, left time.Duration) *meterCall {
	return &meterCall{ctx: ctx, deadline: time.Now().Add(left), args: s.meterCommand(buckets, keyID, w, now), n: len(buckets), done: make(chan struct{})}
}
