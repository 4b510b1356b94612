package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/storetest"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/redistest"
)

var ctx = context.Background()

// quiet is a logger for tests that do not look at the logs.
var quiet = slog.New(slog.DiscardHandler)

// open returns a Store on addr that the test closes when it ends.
// testTimeout replaces DefaultTimeout in tests that are not about
// timeouts: the race detector on a loaded two-core machine can take longer
// than 500 ms for an operation that is not failing.
const testTimeout = 5 * time.Second

func open(t *testing.T, o Options) *Store {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	if o.Timeout == 0 {
		o.Timeout = testTimeout
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): got %v, want nil", o, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawClient is a plain client for looking at what the store wrote.
func rawClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	n := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		// A fresh prefix per subtest gives each an empty store on the one
		// server, and shows that prefixes keep stores apart.
		n++
		s, err := New(Options{Addrs: []string{srv.Addr()}, Prefix: fmt.Sprintf("{conformance%d}:", n), Timeout: testTimeout, Logger: quiet})
		if err != nil {
			t.Fatalf("New(): got %v, want nil", err)
		}
		return s
	})
}

func TestAllowSharedAcrossStores(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, Options{Addrs: []string{srv.Addr()}})
	b := open(t, Options{Addrs: []string{srv.Addr()}})
	const (
		rate    = 50
		burst   = 10
		workers = 8
		run     = 2 * time.Second
	)
	th := store.Throttle{Rate: rate, Burst: burst}
	var allowed, calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for i := range workers {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for time.Since(start) < run {
				d, err := s.Allow(ctx, "shared", th)
				if err != nil {
					errs <- err
					return
				}
				calls.Add(1)
				if d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	// The bucket refills for as long as the hammering lasted, which on a
	// loaded machine can be longer than run.
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatalf("Allow(shared): got %v, want nil", err)
	}
	want := rate*elapsed.Seconds() + burst
	got := float64(allowed.Load())
	if slack := want*0.05 + 3; math.Abs(got-want) > slack {
		t.Errorf("%d workers on two stores calling Allow(shared, %+v) for %v (%d calls): got %v allowed, want %.0f ± %.1f",
			workers, th, elapsed, calls.Load(), got, want, slack)
	}
	if calls.Load() < 2*int64(want) {
		t.Logf("only %d calls for %.0f tokens: the bucket was barely contended", calls.Load(), want)
	}
}

func TestAllowDecision(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, Options{Addrs: []string{srv.Addr()}})
	th := store.Throttle{Rate: 1, Burst: 3} // slow enough that no token returns during the test
	for i := range 3 {
		d, err := s.Allow(ctx, "d", th)
		if err != nil || !d.Allowed || d.Remaining != 2-i || d.RetryAfter != 0 {
			t.Fatalf("Allow(d) #%d: got %+v, %v, want allowed, Remaining %d, RetryAfter 0", i+1, d, err, 2-i)
		}
		if want := time.Duration(i+1) * time.Second; d.Reset > want || d.Reset < want-time.Second/2 {
			t.Errorf("Allow(d) #%d: got Reset %v, want about %v", i+1, d.Reset, want)
		}
	}
	d, err := s.Allow(ctx, "d", th)
	if err != nil || d.Allowed || d.Remaining != 0 || d.RetryAfter <= 0 || d.RetryAfter > time.Second || d.Reset > 3*time.Second {
		t.Errorf("Allow(d) #4: got %+v, %v, want refused, 0 < RetryAfter <= 1s, Reset <= 3s", d, err)
	}

	// The bucket expires when it would be full again, so idle buckets cost
	// no memory in Redis.
	ttl, err := rawClient(t, srv.Addr()).PTTL(ctx, DefaultPrefix+"bucket:d").Result()
	if err != nil || ttl <= 0 || ttl > 3*time.Second {
		t.Errorf("PTTL(bucket:d): got %v, %v, want 0 < TTL <= 3s", ttl, err)
	}
}

func TestConsumeExactAcrossStores(t *testing.T) {
	srv := redistest.Start(t)
	stores := []*Store{
		open(t, Options{Addrs: []string{srv.Addr()}}),
		open(t, Options{Addrs: []string{srv.Addr()}}),
	}
	const limit, workers, each = 500, 20, 50 // 1000 attempts
	now := time.Now()
	w := &store.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), Limit: limit}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		s := stores[i%2]
		wg.Go(func() {
			for range each {
				d, err := s.Consume(ctx, "key_x", w, now)
				if err != nil {
					errs <- err
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Consume(key_x): got %v, want nil", err)
	}
	if got := allowed.Load(); got != limit {
		t.Errorf("%d concurrent Consume(key_x) with limit %d through two stores: got %d allowed, want %d", workers*each, limit, got, limit)
	}
	for i, s := range stores {
		if n, err := s.QuotaUsed(ctx, "key_x", *w); err != nil || n != limit {
			t.Errorf("store %d: QuotaUsed(key_x): got %d, %v, want %d, nil", i, n, err, limit)
		}
	}
	day := now.UTC().Format("2006-01-02")
	if u, err := stores[1].Usage(ctx, "key_x", now, now); err != nil || u[day] != limit {
		t.Errorf("Usage(key_x, today): got %v, %v, want %s: %d", u, err, day, limit)
	}

	// The window's counter goes away a day after the window ends.
	ttl, err := rawClient(t, srv.Addr()).PTTL(ctx, stores[0].quotaKey("key_x", w.Start)).Result()
	if want := 25 * time.Hour; err != nil || ttl <= 24*time.Hour || ttl > want {
		t.Errorf("PTTL(quota key): got %v, %v, want within (24h, %v]", ttl, err, want)
	}
}

func TestCreateKeyRace(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, Options{Addrs: []string{srv.Addr()}})
	b := open(t, Options{Addrs: []string{srv.Addr()}})
	tests := []struct {
		desc string
		// keys returns what each store tries to create in round i.
		keys func(i int) (store.Key, store.Key)
	}{
		{"same name", func(i int) (store.Key, store.Key) {
			name := fmt.Sprintf("name%d", i)
			return testKey(name, "a"+name), testKey(name, "b"+name)
		}},
		{"same hash", func(i int) (store.Key, store.Key) {
			value := fmt.Sprintf("value%d", i)
			return testKey("a"+value, value), testKey("b"+value, value)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			for i := range 30 {
				ka, kb := tt.keys(i)
				var errA, errB error
				var wg sync.WaitGroup
				wg.Go(func() { errA = a.CreateKey(ctx, ka) })
				wg.Go(func() { errB = b.CreateKey(ctx, kb) })
				wg.Wait()
				okA, okB := errA == nil, errB == nil
				if okA == okB {
					t.Fatalf("round %d: CreateKey(%q) and CreateKey(%q) at once from two stores: got %v and %v, want exactly one nil", i, ka.Name, kb.Name, errA, errB)
				}
				loser, winner := errB, ka
				if okB {
					loser, winner = errA, kb
				}
				if !errors.Is(loser, store.ErrExists) {
					t.Errorf("round %d: losing CreateKey: got %v, want ErrExists", i, loser)
				}
				got, err := b.KeyByHash(ctx, winner.Hash)
				if err != nil || got.Name != winner.Name {
					t.Errorf("round %d: KeyByHash(winner): got %q, %v, want %q", i, got.Name, err, winner.Name)
				}
			}
		})
	}
}

// testKey is a key named name whose hash is derived from value.
func testKey(name, value string) store.Key {
	return store.Key{ID: "key_" + name, Name: name, Hash: fmt.Sprintf("%064x", []byte(value)), Enabled: true, CreatedAt: time.Now()}
}

// everyOp runs each Store method once and returns the errors by method.
func everyOp(s *Store) map[string]error {
	w := store.Window{Start: time.Now(), End: time.Now().Add(time.Hour), Limit: 10}
	errs := map[string]error{}
	errs["CreateKey"] = s.CreateKey(ctx, testKey("down", "down"))
	errs["UpdateKey"] = s.UpdateKey(ctx, testKey("down", "down"))
	_, errs["KeyByHash"] = s.KeyByHash(ctx, testKey("down", "down").Hash)
	_, errs["KeyByName"] = s.KeyByName(ctx, "down")
	_, errs["ListKeys"] = s.ListKeys(ctx)
	errs["PutPlan"] = s.PutPlan(ctx, store.Plan{Name: "p"})
	_, errs["Plan"] = s.Plan(ctx, "p")
	_, errs["ListPlans"] = s.ListPlans(ctx)
	errs["DeletePlan"] = s.DeletePlan(ctx, "p")
	_, errs["Allow"] = s.Allow(ctx, "b", store.Throttle{Rate: 1, Burst: 1})
	_, errs["Consume"] = s.Consume(ctx, "key_down", &w, time.Now())
	_, errs["Meter"] = s.Meter(ctx, []store.BucketCheck{{Bucket: "b", Throttle: store.Throttle{Rate: 1, Burst: 1}}}, "key_down", &w, time.Now())
	_, errs["QuotaUsed"] = s.QuotaUsed(ctx, "key_down", w)
	_, errs["Usage"] = s.Usage(ctx, "key_down", time.Now(), time.Now())
	errs["Ping"] = s.Ping(ctx)
	return errs
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRedisDownAndBack(t *testing.T) {
	srv := redistest.Start(t)
	var logs lockedBuffer
	const timeout = 300 * time.Millisecond
	s := open(t, Options{Addrs: []string{srv.Addr()}, Timeout: timeout, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := s.CreateKey(ctx, testKey("acme", "acme")); err != nil {
		t.Fatalf("CreateKey(acme) with Redis up: got %v, want nil", err)
	}

	srv.Kill()
	for op, err := range everyOp(s) {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with Redis killed: got %v, want ErrUnavailable", op, err)
		}
	}
	// Generous bound: the point is that a call does not hang, not its speed.
	limit := timeout + 2*time.Second
	start := time.Now()
	_, err := s.KeyByName(ctx, "acme")
	if e := time.Since(start); !errors.Is(err, store.ErrUnavailable) || e > limit {
		t.Errorf("KeyByName(acme) with Redis killed: got %v after %v, want ErrUnavailable within %v", err, e, limit)
	}
	if n := strings.Count(logs.String(), "redis store unavailable"); n != 1 {
		t.Errorf("log after many failures: got %d warnings, want 1:\n%s", n, logs.String())
	}

	srv.Restart()
	waitUp(t, s)
	// Persistence is off, so the restarted Redis is empty: everything works
	// again from scratch.
	for op, err := range everyOp(s) {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s after restart: got %v, want nil or ErrNotFound", op, err)
		}
	}
	if err := s.CreateKey(ctx, testKey("acme", "acme")); err != nil {
		t.Errorf("CreateKey(acme) after restart: got %v, want nil", err)
	}
	if !strings.Contains(logs.String(), "redis store available again") {
		t.Errorf("log after recovery: got\n%s\nwant a note that Redis is available again", logs.String())
	}
}

// waitUp waits until s reaches Redis: a restarted server takes a moment to
// listen, and the client to redial.
func waitUp(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Ping(ctx)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ping() after restart: still %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStartsWhileRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop()
	s := open(t, Options{Addrs: []string{srv.Addr()}, Timeout: 200 * time.Millisecond})
	if _, err := s.ListKeys(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("ListKeys() before Redis is up: got %v, want ErrUnavailable", err)
	}
	srv.Restart()
	waitUp(t, s)
	if keys, err := s.ListKeys(ctx); err != nil || len(keys) != 0 {
		t.Errorf("ListKeys() once Redis is up: got %v, %v, want none, nil", keys, err)
	}
}

// hungServer starts a server that accepts connections and never answers,
// like a Redis stuck behind a dead network path, and returns its address.
func hungServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	done := make(chan struct{})
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				<-done
				c.Close()
			})
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-accepting
		close(done)
		conns.Wait()
	})
	return l.Addr().String()
}

func TestHungRedisTimesOut(t *testing.T) {
	const timeout = 200 * time.Millisecond
	s := open(t, Options{Addrs: []string{hungServer(t)}, Timeout: timeout})
	limit := timeout + 2*time.Second
	start := time.Now()
	_, err := s.Consume(ctx, "key_h", nil, time.Now())
	if e := time.Since(start); !errors.Is(err, store.ErrUnavailable) || e > limit {
		t.Errorf("Consume(key_h) on a hung server: got %v after %v, want ErrUnavailable within %v", err, e, limit)
	}
}

func TestCallerCancel(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, Options{Addrs: []string{srv.Addr()}})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.KeyByName(cctx, "acme")
	if !errors.Is(err, context.Canceled) || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("KeyByName(acme) with a canceled context: got %v, want context.Canceled, not ErrUnavailable", err)
	}
}

func TestPassword(t *testing.T) {
	srv := redistest.Start(t)
	const password = "s3cret-Pa55"
	if err := rawClient(t, srv.Addr()).ConfigSet(ctx, "requirepass", password).Err(); err != nil {
		t.Fatalf("CONFIG SET requirepass: %v", err)
	}
	tests := []struct {
		desc     string
		password string
		wantErr  error
	}{
		{"right password", password, nil},
		{"wrong password", "wr0ng-Pa55", store.ErrUnavailable},
		{"no password", "", store.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			var logs lockedBuffer
			s := open(t, Options{Addrs: []string{srv.Addr()}, Password: tt.password, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			err := s.PutPlan(ctx, store.Plan{Name: "gold"})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("PutPlan(gold): got %v, want %v", err, tt.wantErr)
			}
			for _, secret := range []string{password, tt.password} {
				if secret == "" {
					continue
				}
				if strings.Contains(logs.String(), secret) || (err != nil && strings.Contains(err.Error(), secret)) {
					t.Errorf("a password leaked into the log or error: %v\n%s", err, logs.String())
				}
			}
		})
	}
}

func TestLayout(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, Options{Addrs: []string{srv.Addr()}, Prefix: "{gw}:"})
	rc := rawClient(t, srv.Addr())
	k := testKey("acme", "acme")
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatalf("CreateKey(acme): %v", err)
	}
	if err := s.PutPlan(ctx, store.Plan{Name: "gold"}); err != nil {
		t.Fatalf("PutPlan(gold): %v", err)
	}
	if _, err := s.Consume(ctx, "key_acme", nil, time.Date(2026, 5, 17, 1, 0, 0, 0, time.UTC)); err != nil {
		t.Fatalf("Consume(key_acme): %v", err)
	}
	checks := []struct {
		desc string
		got  func() (string, error)
		want string
	}{
		{"name index", func() (string, error) { return rc.HGet(ctx, "{gw}:keyhash", k.Hash).Result() }, "acme"},
		{"key JSON", func() (string, error) {
			v, err := rc.HGet(ctx, "{gw}:keys", "acme").Result()
			return fmt.Sprint(strings.Contains(v, `"hash":"`+k.Hash+`"`)), err
		}, "true"},
		{"plan JSON", func() (string, error) { return rc.HGet(ctx, "{gw}:plans", "gold").Result() }, `{"name":"gold"}`},
		{"usage day", func() (string, error) { return rc.HGet(ctx, "{gw}:usage:key_acme", "2026-05-17").Result() }, "1"},
	}
	for _, c := range checks {
		if got, err := c.got(); err != nil || got != c.want {
			t.Errorf("%s: got %q, %v, want %q", c.desc, got, err, c.want)
		}
	}

	// Another prefix is another store.
	other := open(t, Options{Addrs: []string{srv.Addr()}, Prefix: "{other}:"})
	if _, err := other.KeyByName(ctx, "acme"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("KeyByName(acme) under another prefix: got %v, want ErrNotFound", err)
	}
}

func TestUpdateKeyKeepsHashIndex(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, Options{Addrs: []string{srv.Addr()}})
	k := testKey("acme", "acme")
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatalf("CreateKey(acme): %v", err)
	}
	// A caller that never read the key sends no hash at all.
	noHash := k
	noHash.Hash = ""
	noHash.Plan = "silver"
	if err := s.UpdateKey(ctx, noHash); err != nil {
		t.Fatalf("UpdateKey(acme, no hash): got %v, want nil", err)
	}
	got, err := s.KeyByHash(ctx, k.Hash)
	if err != nil || got.Hash != k.Hash || got.Plan != "silver" {
		t.Errorf("KeyByHash(acme's hash) after update without hash: got %+v, %v, want acme's hash and plan silver", got, err)
	}
}

func TestNewOptions(t *testing.T) {
	tests := []struct {
		desc    string
		o       Options
		wantErr string
	}{
		{"single node", Options{Addrs: []string{"127.0.0.1:1"}}, ""},
		{"sentinel", Options{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, MasterName: "mymaster", Prefix: "gw:"}, ""},
		{"cluster with default prefix", Options{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}}, ""},
		{"cluster with hash tag", Options{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, Prefix: "app:{gw}:"}, ""},
		{"no addresses", Options{}, "no addresses"},
		{"empty address", Options{Addrs: []string{""}}, "empty address"},
		{"negative timeout", Options{Addrs: []string{"127.0.0.1:1"}, Timeout: -time.Second}, "negative timeout"},
		{"negative db", Options{Addrs: []string{"127.0.0.1:1"}, DB: -1}, "negative db"},
		{"cluster without hash tag", Options{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, Prefix: "gw:"}, "hash tag"},
		{"cluster with empty hash tag", Options{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, Prefix: "{}gw:"}, "hash tag"},
		{"cluster db", Options{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}, DB: 2}, "db 2"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			s, err := New(tt.o)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New(%+v): got %v, want nil", tt.o, err)
				}
				s.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New(%+v): got %v, want an error containing %q", tt.o, err, tt.wantErr)
			}
		})
	}
}

func TestHasHashTag(t *testing.T) {
	tests := []struct {
		prefix string
		want   bool
	}{
		{"{drawbridge}:", true},
		{"app:{x}:", true},
		{"drawbridge:", false},
		{"{}:", false},
		{"{drawbridge:", false},
		{"}x{", false},
		{"{}{x}", false}, // Redis hashes by the first "{", whose tag is empty
	}
	for _, tt := range tests {
		if got := hasHashTag(tt.prefix); got != tt.want {
			t.Errorf("hasHashTag(%q): got %v, want %v", tt.prefix, got, tt.want)
		}
	}
}
