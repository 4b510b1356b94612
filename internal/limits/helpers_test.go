package limits

import (
	"context"
	"fmt"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/memory"
)

// fakeClock is a clock tests step by hand.
type fakeClock = testutil.Clock

var newClock = testutil.NewClock

// Test requests name their caller in these headers; the test's
// identity func reads them back from the context, standing in for auth.
const (
	hdrKey  = "X-Test-Key"
	hdrPlan = "X-Test-Plan"
)

type identityKey struct{}

type identity struct{ keyID, plan string }

func testIdentity(ctx context.Context) (string, string, bool) {
	id, ok := ctx.Value(identityKey{}).(identity)
	return id.keyID, id.plan, ok
}

// env is a TLS server with one limits handler per path, backed by a memory
// store on a fake clock.
type env struct {
	t        *testing.T
	st       *memory.Store
	clock    *fakeClock
	srv      *httptest.Server
	client   *http.Client
	upstream atomic.Int64 // requests that reached next
	recErrs  chan string  // observe.Record.Error of each request, in order
	logs     syncBuffer   // what the handlers logged
}

// counterMode is how a test's handlers reach their Counter: through
// store.Meter, one call per request, or with Meter hidden, so that they
// call Allow and Consume. Handler tests run in both modes, which must
// give the same answers.
type counterMode struct {
	name string
	wrap func(Counter) Counter
}

var (
	meterMode = counterMode{"meter", func(c Counter) Counter { return c }}
	partsMode = counterMode{"allow and consume", func(c Counter) Counter { return partsOnly{c} }}
	modes     = []counterMode{meterMode, partsMode}
)

// partsOnly hides the Meter method of the Counter it holds.
type partsOnly struct{ Counter }

// newEnv builds the server in meterMode; see newEnvMode.
func newEnv(t *testing.T, routes map[string]Options, plans ...store.Plan) *env {
	t.Helper()
	return newEnvMode(t, meterMode, routes, plans...)
}

// newEnvMode builds the server. routes maps a path to its options;
// Counter, Plans, Identity and Now are filled in when nil, RouteName
// defaults to the path, and mode wraps every Counter.
func newEnvMode(t *testing.T, mode counterMode, routes map[string]Options, plans ...store.Plan) *env {
	t.Helper()
	clock := newClock(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	e := &env{
		t:       t,
		st:      memory.New(memory.Options{Now: clock.Now}),
		clock:   clock,
		recErrs: make(chan string, 1024),
	}
	for _, p := range plans {
		if err := e.st.PutPlan(context.Background(), p); err != nil {
			t.Fatalf("PutPlan(%q): %v", p.Name, err)
		}
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.upstream.Add(1)
		io.WriteString(w, "ok")
	})
	mux := http.NewServeMux()
	for path, o := range routes {
		if o.Counter == nil {
			o.Counter = e.st
		}
		o.Counter = mode.wrap(o.Counter)
		if o.Plans == nil {
			o.Plans = e.st
		}
		if o.Identity == nil {
			o.Identity = testIdentity
		}
		if o.Now == nil {
			o.Now = clock.Now
		}
		if o.RouteName == "" {
			o.RouteName = path
		}
		if o.Logger == nil {
			o.Logger = slog.New(slog.NewTextHandler(&e.logs, nil))
		}
		h, err := New(o, next)
		if err != nil {
			t.Fatalf("New(%s): %v", path, err)
		}
		mux.Handle(path, h)
	}
	e.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &observe.Record{}
		ctx := observe.WithRecord(r.Context(), rec)
		if k := r.Header.Get(hdrKey); k != "" {
			ctx = context.WithValue(ctx, identityKey{}, identity{k, r.Header.Get(hdrPlan)})
		}
		mux.ServeHTTP(w, r.WithContext(ctx))
		e.recErrs <- rec.Error
	}))
	t.Cleanup(e.srv.Close)
	e.client = e.srv.Client()
	return e
}

// answer is what a test request got back.
type answer struct {
	status int
	body   string
	header http.Header
	recErr string
}

// do sends GET path as key (anonymous when key is "").
func (e *env) do(path, key, plan string) answer {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set(hdrKey, key)
		req.Header.Set(hdrPlan, plan)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("reading body of GET %s: %v", path, err)
	}
	return answer{status: resp.StatusCode, body: string(body), header: resp.Header, recErr: <-e.recErrs}
}

// flakyCounter wraps a working Counter and fails with
// store.ErrUnavailable while down is set, as a Redis store does when
// Redis is unreachable.
type flakyCounter struct {
	Counter
	down atomic.Bool
}

func (f *flakyCounter) Allow(ctx context.Context, bucket string, t store.Throttle) (store.Decision, error) {
	if f.down.Load() {
		return store.Decision{}, fmt.Errorf("allow %q: %w", bucket, store.ErrUnavailable)
	}
	return f.Counter.Allow(ctx, bucket, t)
}

func (f *flakyCounter) Consume(ctx context.Context, keyID string, w *store.Window, now time.Time) (store.QuotaDecision, error) {
	if f.down.Load() {
		return store.QuotaDecision{}, fmt.Errorf("consume %q: %w", keyID, store.ErrUnavailable)
	}
	return f.Counter.Consume(ctx, keyID, w, now)
}

func (f *flakyCounter) Meter(ctx context.Context, buckets []store.BucketCheck, keyID string, w *store.Window, now time.Time) (store.MeterResult, error) {
	if f.down.Load() {
		return store.MeterResult{Refused: -1}, fmt.Errorf("meter %q: %w", keyID, store.ErrUnavailable)
	}
	return f.Counter.(store.Meter).Meter(ctx, buckets, keyID, w, now)
}

// countingCounter counts the calls made to the Counter it wraps, which
// must be a store.Meter.
type countingCounter struct {
	Counter
	allow, consume, meter atomic.Int64
}

func (c *countingCounter) Allow(ctx context.Context, bucket string, t store.Throttle) (store.Decision, error) {
	c.allow.Add(1)
	return c.Counter.Allow(ctx, bucket, t)
}

func (c *countingCounter) Consume(ctx context.Context, keyID string, w *store.Window, now time.Time) (store.QuotaDecision, error) {
	c.consume.Add(1)
	return c.Counter.Consume(ctx, keyID, w, now)
}

func (c *countingCounter) Meter(ctx context.Context, buckets []store.BucketCheck, keyID string, w *store.Window, now time.Time) (store.MeterResult, error) {
	c.meter.Add(1)
	return c.Counter.(store.Meter).Meter(ctx, buckets, keyID, w, now)
}

func throttle(rate float64, burst int) *store.Throttle {
	return &store.Throttle{Rate: rate, Burst: burst}
}

type syncBuffer = testutil.SyncBuffer
