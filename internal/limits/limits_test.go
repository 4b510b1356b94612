package limits

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/memory"
)

// Exact answers partners see, from AWS-COMPAT.md.
const (
	bodyOK        = "ok"
	bodyThrottled = `{"message":"Too Many Requests"}`
	bodyQuota     = `{"message":"Limit Exceeded"}`
	bodyForbidden = `{"message":"Forbidden"}`
	body5xx       = `{"message": "Internal server error"}`
)

// step is one or more identical requests, after advancing the clock.
type step struct {
	advance   time.Duration
	path      string // "/a" when empty
	key, plan string // anonymous when key is ""
	n         int    // 1 when 0
	status    int
	body      string
	errType   string // x-amzn-ErrorType; "" means none
	recErr    string // observe.Record.Error
}

func TestHandler(t *testing.T) {
	t.Parallel()
	gold := store.Plan{
		Name:     "gold",
		Throttle: throttle(1, 3),
		Methods:  map[string]store.Throttle{"POST /orders": {Rate: 1, Burst: 1}},
	}
	quota5 := store.Plan{Name: "q5", Quota: &store.Quota{Limit: 5, Period: "DAY"}}
	quotaThrottled := store.Plan{Name: "qt", Throttle: throttle(1, 2), Quota: &store.Quota{Limit: 3, Period: "DAY"}}
	noLimits := store.Plan{Name: "free"}
	closed := store.Plan{Name: "closed", Throttle: throttle(0, 0)}

	ok := func(s step) step { s.status, s.body = 200, bodyOK; return s }
	throttled := func(s step, reason string) step {
		s.status, s.body, s.errType, s.recErr = 429, bodyThrottled, "TooManyRequestsException", reason
		return s
	}
	overQuota := func(s step) step {
		s.status, s.body, s.errType, s.recErr = 429, bodyQuota, "LimitExceededException", "quota exceeded"
		return s
	}

	tests := []struct {
		desc   string
		routes map[string]Options
		plans  []store.Plan
		steps  []step
		// warnings is how many lines the handler logs: one per bad plan
		// name, however many requests use it.
		warnings int
	}{
		{
			desc:   "key throttle: burst passes, then refused, then refills at rate",
			routes: map[string]Options{"/a": {}},
			plans:  []store.Plan{gold},
			steps: []step{
				ok(step{key: "k1", plan: "gold", n: 3}),
				throttled(step{key: "k1", plan: "gold"}, "throttled: key"),
				// Another key of the same plan has its own bucket.
				ok(step{key: "k2", plan: "gold", n: 3}),
				ok(step{advance: time.Second, key: "k1", plan: "gold"}),
				throttled(step{key: "k1", plan: "gold"}, "throttled: key"),
			},
		},
		{
			desc: "per-method override has its own bucket and throttle",
			routes: map[string]Options{
				"/a":      {},
				"/orders": {MethodKey: "POST /orders"},
			},
			plans: []store.Plan{gold},
			steps: []step{
				ok(step{path: "/orders", key: "k1", plan: "gold"}),
				throttled(step{path: "/orders", key: "k1", plan: "gold"}, "throttled: key"),
				// The plan's own bucket is untouched by the override's.
				ok(step{key: "k1", plan: "gold", n: 3}),
				throttled(step{key: "k1", plan: "gold"}, "throttled: key"),
			},
		},
		{
			desc:   "route bucket is shared by every caller of the route",
			routes: map[string]Options{"/a": {Route: throttle(1, 2)}, "/b": {Route: throttle(1, 2)}},
			plans:  []store.Plan{noLimits},
			steps: []step{
				ok(step{key: "k1", plan: "free"}),
				ok(step{}),
				throttled(step{key: "k2", plan: "free"}, "throttled: route"),
				throttled(step{}, "throttled: route"),
				// Another route has its own bucket.
				ok(step{path: "/b", n: 2}),
			},
		},
		{
			desc: "gateway bucket is shared by every route",
			routes: map[string]Options{
				"/a": {Gateway: throttle(1, 3)},
				"/b": {Gateway: throttle(1, 3)},
			},
			plans: []store.Plan{{Name: "open"}},
			steps: []step{
				ok(step{n: 2}),
				ok(step{path: "/b", key: "k1", plan: "open"}),
				throttled(step{path: "/b"}, "throttled: gateway"),
				throttled(step{}, "throttled: gateway"),
			},
		},
		{
			desc:   "key refused by its bucket spends no route or gateway token",
			routes: map[string]Options{"/a": {Route: throttle(1, 4), Gateway: throttle(1, 4)}},
			plans:  []store.Plan{gold},
			steps: []step{
				ok(step{key: "k1", plan: "gold", n: 3}),
				throttled(step{key: "k1", plan: "gold", n: 5}, "throttled: key"),
				// 4 - 3 = 1 route token left for everyone else.
				ok(step{}),
				throttled(step{}, "throttled: route"),
			},
		},
		{
			desc:   "no identity: only the route and gateway throttles apply",
			routes: map[string]Options{"/a": {Route: throttle(1, 5)}},
			plans:  []store.Plan{gold, quota5},
			steps: []step{
				ok(step{n: 5}),
				throttled(step{}, "throttled: route"),
			},
		},
		{
			desc:   "quota exact: limit 5 passes 5, refuses the 6th, resets in the next window",
			routes: map[string]Options{"/a": {}},
			plans:  []store.Plan{quota5},
			steps: []step{
				ok(step{key: "k1", plan: "q5", n: 5}),
				overQuota(step{key: "k1", plan: "q5", n: 2}),
				// Quotas are per key.
				ok(step{key: "k2", plan: "q5"}),
				// The clock starts at 12:00 UTC; the next UTC day is a new window.
				ok(step{advance: 12 * time.Hour, key: "k1", plan: "q5", n: 5}),
				overQuota(step{key: "k1", plan: "q5"}),
			},
		},
		{
			desc:   "throttled requests do not count toward the quota",
			routes: map[string]Options{"/a": {}},
			plans:  []store.Plan{quotaThrottled},
			steps: []step{
				ok(step{key: "k1", plan: "qt", n: 2}),
				throttled(step{key: "k1", plan: "qt", n: 10}, "throttled: key"),
				ok(step{advance: time.Second, key: "k1", plan: "qt"}),
				throttled(step{key: "k1", plan: "qt"}, "throttled: key"),
				overQuota(step{advance: time.Second, key: "k1", plan: "qt"}),
			},
		},
		{
			// API Gateway refuses a key in no usage plan; it would
			// otherwise pass without a key throttle or quota.
			desc:   "key in no plan: 403, before any bucket",
			routes: map[string]Options{"/a": {Route: throttle(1, 2)}},
			steps: []step{
				{key: "k1", n: 3, status: 403, body: bodyForbidden, errType: "ForbiddenException", recErr: "key in no usage plan"},
				ok(step{n: 2}),
				throttled(step{}, "throttled: route"),
			},
		},
		{
			// CheckPlan refuses a rate of 0, as the configuration does, so
			// a plan refused by the admin API is exactly one answered 500.
			desc:   "plan throttle of 0: 500, as CheckPlan refuses it",
			routes: map[string]Options{"/a": {}},
			plans:  []store.Plan{closed},
			steps: []step{
				{key: "k1", plan: "closed", status: 500, body: body5xx, errType: "InternalServerErrorException", recErr: "plan invalid"},
				ok(step{}),
			},
			warnings: 1,
		},
		{
			desc:   "month offset 28: 500, as CheckPlan refuses it",
			routes: map[string]Options{"/a": {}},
			plans:  []store.Plan{{Name: "m28", Quota: &store.Quota{Limit: 5, Period: "MONTH", Offset: 28}}},
			steps: []step{
				{key: "k1", plan: "m28", status: 500, body: body5xx, errType: "InternalServerErrorException", recErr: "plan invalid"},
			},
			warnings: 1,
		},
		{
			desc:   "unknown plan: 403 Forbidden, as AWS for a key in no plan of the stage",
			routes: map[string]Options{"/a": {}},
			plans:  []store.Plan{gold},
			steps: []step{
				{key: "k1", plan: "deleted", n: 2, status: 403, body: bodyForbidden, errType: "ForbiddenException", recErr: "plan not found"},
				ok(step{key: "k2", plan: "gold"}),
			},
			warnings: 1,
		},
		{
			desc:   "invalid plan quota: 500, the operator's mistake",
			routes: map[string]Options{"/a": {}},
			plans:  []store.Plan{{Name: "bad", Quota: &store.Quota{Limit: 5, Period: "YEAR"}}},
			steps: []step{
				{key: "k1", plan: "bad", n: 2, status: 500, body: body5xx, errType: "InternalServerErrorException", recErr: "plan invalid"},
			},
			warnings: 1,
		},
		{
			desc:   "invalid plan quota behind a throttle: the throttle answers first",
			routes: map[string]Options{"/a": {Route: throttle(1, 1)}},
			plans:  []store.Plan{{Name: "bad", Quota: &store.Quota{Limit: 5, Period: "YEAR"}}},
			steps: []step{
				{key: "k1", plan: "bad", status: 500, body: body5xx, errType: "InternalServerErrorException", recErr: "plan invalid"},
				// The 500 spent the route's token.
				throttled(step{key: "k1", plan: "bad"}, "throttled: route"),
				throttled(step{}, "throttled: route"),
			},
			warnings: 1,
		},
	}
	for _, tc := range tests {
		for _, mode := range modes {
			t.Run(tc.desc+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				testHandlerSteps(t, newEnvMode(t, mode, tc.routes, tc.plans...), tc.steps, tc.warnings)
			})
		}
	}
}

// testHandlerSteps sends steps' requests to e in order and checks each
// answer, then that warnings lines were logged.
func testHandlerSteps(t *testing.T, e *env, steps []step, warnings int) {
	var passed int64
	for i, s := range steps {
		e.clock.Advance(s.advance)
		path := s.path
		if path == "" {
			path = "/a"
		}
		for j := range max(s.n, 1) {
			got := e.do(path, s.key, s.plan)
			if got.status == 200 {
				passed++
			}
			if got.status != s.status || got.body != s.body {
				t.Fatalf("step %d request %d: GET %s as %q: got %d %s, want %d %s", i, j, path, s.key, got.status, got.body, s.status, s.body)
			}
			if et := got.header.Get("X-Amzn-Errortype"); et != s.errType {
				t.Errorf("step %d request %d: x-amzn-ErrorType: got %q, want %q", i, j, et, s.errType)
			}
			if got.recErr != s.recErr {
				t.Errorf("step %d request %d: Record.Error: got %q, want %q", i, j, got.recErr, s.recErr)
			}
			if ra := got.header.Get("Retry-After"); ra != "" {
				t.Errorf("step %d request %d: Retry-After: got %q with Headers off, want none", i, j, ra)
			}
		}
	}
	logs := strings.TrimSpace(e.logs.String())
	if n := len(strings.FieldsFunc(logs, func(r rune) bool { return r == '\n' })); n != warnings {
		t.Errorf("log lines: got %d, want %d:\n%s", n, warnings, logs)
	}
	if up := e.upstream.Load(); up != passed {
		t.Errorf("requests reaching next: got %d, want %d (the 200s)", up, passed)
	}
}

func TestQuotaCountsUsageWithoutQuota(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvMode(t, mode, map[string]Options{"/a": {}}, store.Plan{Name: "free"})
			for range 3 {
				if got := e.do("/a", "k1", "free"); got.status != 200 {
					t.Fatalf("GET /a: got %d, want 200", got.status)
				}
			}
			now := e.clock.Now()
			usage, err := e.st.Usage(context.Background(), "k1", now, now)
			if err != nil {
				t.Fatal(err)
			}
			if got := usage[now.Format("2006-01-02")]; got != 3 {
				t.Errorf("Usage(k1, today): got %d, want 3", got)
			}
		})
	}
}

func TestStoreFailure(t *testing.T) {
	t.Parallel()
	gold := store.Plan{Name: "gold", Throttle: throttle(100, 100), Quota: &store.Quota{Limit: 100, Period: "MONTH"}}
	tests := []struct {
		desc     string
		failOpen bool
		key      string
		status   int
		body     string
		recErr   string
	}{
		{desc: "fail closed, identified", key: "k1", status: 503, body: body5xx, recErr: "store unavailable"},
		{desc: "fail closed, anonymous", status: 503, body: body5xx, recErr: "store unavailable"},
		{desc: "fail open, identified", failOpen: true, key: "k1", status: 200, body: bodyOK},
		{desc: "fail open, anonymous", failOpen: true, status: 200, body: bodyOK},
	}
	for _, tc := range tests {
		for _, mode := range modes {
			t.Run(tc.desc+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				var storeErrs atomic.Int64
				var lastErr atomic.Value
				counter := &flakyCounter{Counter: memory.New()}
				e := newEnvMode(t, mode, map[string]Options{"/a": {
					Counter:  counter,
					Route:    throttle(100, 100),
					Gateway:  throttle(100, 100),
					FailOpen: tc.failOpen,
					OnStoreError: func(err error) {
						storeErrs.Add(1)
						lastErr.Store(err)
					},
				}}, gold)

				if got := e.do("/a", tc.key, "gold"); got.status != 200 {
					t.Fatalf("GET /a with the store up: got %d, want 200", got.status)
				}
				counter.down.Store(true)
				got := e.do("/a", tc.key, "gold")
				if got.status != tc.status || got.body != tc.body {
					t.Errorf("GET /a with the store down: got %d %s, want %d %s", got.status, got.body, tc.status, tc.body)
				}
				if got.recErr != tc.recErr {
					t.Errorf("Record.Error: got %q, want %q", got.recErr, tc.recErr)
				}
				if n := storeErrs.Load(); n != 1 {
					t.Errorf("OnStoreError calls: got %d, want 1 per failed request", n)
				}
				if err, _ := lastErr.Load().(error); !errors.Is(err, store.ErrUnavailable) {
					t.Errorf("OnStoreError(err): got %v, want store.ErrUnavailable", err)
				}
				counter.down.Store(false)
				if got := e.do("/a", tc.key, "gold"); got.status != 200 {
					t.Errorf("GET /a with the store back: got %d, want 200", got.status)
				}
			})
		}
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	plans := []store.Plan{
		{Name: "gold", Throttle: throttle(1, 2), Quota: &store.Quota{Limit: 3, Period: "DAY"}},
	}
	// The clock starts at 12:00 UTC: 43200 s left in the DAY window.
	tests := []struct {
		desc                       string
		headers                    bool
		key                        string
		advance                    time.Duration
		status                     int
		retryAfter, policy, states string
	}{
		{
			desc: "on, first request", headers: true, key: "k1", status: 200,
			policy: `"key";q=2;w=2, "route";q=10;w=1, "quota";q=3;w=86400`,
			states: `"key";r=1;t=1, "route";r=9;t=1, "quota";r=2;t=43200`,
		},
		{
			desc: "on, second request", headers: true, key: "k1", status: 200,
			policy: `"key";q=2;w=2, "route";q=10;w=1, "quota";q=3;w=86400`,
			states: `"key";r=0;t=2, "route";r=8;t=1, "quota";r=1;t=43200`,
		},
		{
			desc: "on, throttled by the key bucket", headers: true, key: "k1", status: 429, retryAfter: "1",
			policy: `"key";q=2;w=2`,
			states: `"key";r=0;t=2`,
		},
		{
			desc: "on, third request after a refill", headers: true, key: "k1", advance: 1500 * time.Millisecond, status: 200,
			policy: `"key";q=2;w=2, "route";q=10;w=1, "quota";q=3;w=86400`,
			states: `"key";r=0;t=2, "route";r=9;t=1, "quota";r=0;t=43199`,
		},
		{
			// 12:00:06.5: 43193.5 s left, rounded up.
			desc: "on, over quota: Retry-After until the window ends", headers: true, key: "k1", advance: 5 * time.Second, status: 429, retryAfter: "43194",
			policy: `"key";q=2;w=2, "route";q=10;w=1, "quota";q=3;w=86400`,
			states: `"key";r=1;t=1, "route";r=9;t=1, "quota";r=0;t=43194`,
		},
		{
			desc: "on, anonymous", headers: true, status: 200,
			policy: `"route";q=10;w=1`,
			states: `"route";r=8;t=1`,
		},
		{desc: "off, identified", key: "k1", status: 200},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			// The steps share one server and clock, so they run in order.
			e := newEnvMode(t, mode, map[string]Options{"/a": {Route: throttle(10, 10), Headers: true}}, plans...)
			eOff := newEnvMode(t, mode, map[string]Options{"/a": {Route: throttle(10, 10)}}, plans...)
			for _, tc := range tests {
				env := eOff
				if tc.headers {
					env = e
				}
				env.clock.Advance(tc.advance)
				got := env.do("/a", tc.key, "gold")
				if got.status != tc.status {
					t.Fatalf("%s: GET /a: got %d %s, want %d", tc.desc, got.status, got.body, tc.status)
				}
				for _, h := range []struct{ name, want string }{
					{"Retry-After", tc.retryAfter},
					{"RateLimit-Policy", tc.policy},
					{"RateLimit", tc.states},
				} {
					if v := got.header.Get(h.name); v != h.want {
						t.Errorf("%s: %s: got %q, want %q", tc.desc, h.name, v, h.want)
					}
				}
			}
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	st := memory.New()
	next := http.NotFoundHandler()
	tests := []struct {
		desc    string
		o       Options
		next    http.Handler
		wantErr string // "" = no error
	}{
		{desc: "minimal", o: Options{Counter: st}, next: next},
		{desc: "everything", o: Options{Counter: st, Plans: st, Identity: testIdentity, Gateway: throttle(10, 5), Route: throttle(1, 0), RouteName: "r"}, next: next},
		{desc: "zero rate", o: Options{Counter: st, Route: throttle(0, 0), RouteName: "r"}, next: next, wantErr: `route "r" throttle: rate 0`},
		{desc: "no next", o: Options{Counter: st}, wantErr: "next handler is nil"},
		{desc: "no counter", o: Options{}, next: next, wantErr: "no counter"},
		{desc: "identity without plans", o: Options{Counter: st, Identity: testIdentity}, next: next, wantErr: "no plan source"},
		{desc: "route throttle without name", o: Options{Counter: st, Route: throttle(1, 1)}, next: next, wantErr: "needs a route name"},
		{desc: "negative rate", o: Options{Counter: st, Gateway: throttle(-1, 1)}, next: next, wantErr: "gateway throttle: rate -1"},
		{desc: "negative burst", o: Options{Counter: st, Route: throttle(1, -1), RouteName: "r"}, next: next, wantErr: `route "r" throttle: burst -1`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.o, tc.next)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("New(): got error %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("New(): got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestThrottleAccuracy hammers one key bucket with the real clock and
// checks the count allowed against what a token bucket allows in the time
// the test actually took, so a slow machine changes the expectation, not
// the verdict.
func TestThrottleAccuracy(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			testThrottleAccuracy(t, mode)
		})
	}
}

func testThrottleAccuracy(t *testing.T, mode counterMode) {
	const (
		rate    = 100
		burst   = 20
		workers = 4
		run     = 2 * time.Second
	)
	st := memory.New()
	plan := store.Plan{Name: "p", Throttle: throttle(rate, burst)}
	e := newEnvMode(t, mode, map[string]Options{"/a": {Counter: st, Plans: st}, "/warm": {Counter: st, Plans: st}})
	if err := st.PutPlan(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	// Keep one connection per worker: a TLS handshake per request would
	// make the workers slower than the bucket.
	tr := e.client.Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = workers
	client := &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	var allowed, refused, other atomic.Int64
	var warm, wg sync.WaitGroup
	warm.Add(workers)
	go1 := make(chan struct{})
	var start, deadline time.Time
	for range workers {
		wg.Go(func() {
			// Open this worker's connection before the clock starts: the
			// handshakes would otherwise eat into the measured time while
			// the bucket, already full, cannot save up for them.
			resp, err := client.Get(e.srv.URL + "/warm")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				<-e.recErrs
			}
			warm.Done()
			<-go1
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/a", nil)
				req.Header.Set(hdrKey, "k1")
				req.Header.Set(hdrPlan, "p")
				resp, err := client.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				<-e.recErrs
				switch resp.StatusCode {
				case 200:
					allowed.Add(1)
				case 429:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	warm.Wait()
	start = time.Now()
	deadline = start.Add(run)
	close(go1)
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	want := burst + rate*elapsed
	lo, hi := want*0.95-3, want*1.05+3
	got := float64(allowed.Load())
	t.Logf("allowed %d, refused %d, other %d in %.2fs; want %.0f (%.0f..%.0f)", allowed.Load(), refused.Load(), other.Load(), elapsed, want, lo, hi)
	if other.Load() != 0 {
		t.Errorf("answers other than 200 and 429: got %d, want 0", other.Load())
	}
	if refused.Load() == 0 {
		t.Fatalf("refused: got 0; the workers did not outrun the bucket, so the test proves nothing")
	}
	if got < lo || got > hi {
		t.Errorf("allowed in %.2fs at %d/s burst %d: got %.0f, want %.0f±5%%+3", elapsed, rate, burst, got, want)
	}
}

// TestMeterCalls checks that a Counter with Meter gets one call per
// request, and one without gets an Allow per bucket and a Consume.
func TestMeterCalls(t *testing.T) {
	t.Parallel()
	gold := store.Plan{Name: "gold", Throttle: throttle(100, 100), Quota: &store.Quota{Limit: 100, Period: "MONTH"}}
	tests := []struct {
		desc                      string
		mode                      counterMode
		key                       string
		opts                      Options
		allow, consume, meterCall int64
	}{
		{"meter, keyed, three buckets", meterMode, "k1", Options{Route: throttle(100, 100), Gateway: throttle(100, 100)}, 0, 0, 1},
		{"meter, anonymous, one bucket", meterMode, "", Options{Route: throttle(100, 100)}, 0, 0, 1},
		{"meter, anonymous, no buckets", meterMode, "", Options{}, 0, 0, 0},
		{"parts, keyed, three buckets", partsMode, "k1", Options{Route: throttle(100, 100), Gateway: throttle(100, 100)}, 3, 1, 0},
		{"parts, anonymous, no buckets", partsMode, "", Options{}, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			c := &countingCounter{Counter: memory.New()}
			o := tc.opts
			o.Counter = c
			e := newEnvMode(t, tc.mode, map[string]Options{"/a": o}, gold)
			if got := e.do("/a", tc.key, "gold"); got.status != 200 {
				t.Fatalf("GET /a as %q: got %d %s, want 200", tc.key, got.status, got.body)
			}
			if a, co, m := c.allow.Load(), c.consume.Load(), c.meter.Load(); a != tc.allow || co != tc.consume || m != tc.meterCall {
				t.Errorf("GET /a as %q: got %d Allow, %d Consume, %d Meter calls, want %d, %d, %d", tc.key, a, co, m, tc.allow, tc.consume, tc.meterCall)
			}
		})
	}
}

// brokenMeter answers Meter with a result that does not fit the question.
type brokenMeter struct {
	Counter
	res store.MeterResult
}

func (b brokenMeter) Meter(context.Context, []store.BucketCheck, string, *store.Window, time.Time) (store.MeterResult, error) {
	return b.res, nil
}

func TestBrokenMeterIsStoreError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc string
		res  store.MeterResult
	}{
		{"refused index out of range", store.MeterResult{Refused: 5}},
		{"too few decisions", store.MeterResult{Refused: -1, Counted: true}},
		{"not counted", store.MeterResult{Refused: -1, Decisions: []store.Decision{{Allowed: true}}}},
		{"refused by an allowing bucket", store.MeterResult{Refused: 0, Decisions: []store.Decision{{Allowed: true}}}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			var storeErrs atomic.Int64
			e := newEnv(t, map[string]Options{"/a": {
				Counter:      brokenMeter{Counter: memory.New(), res: tc.res},
				Route:        throttle(100, 100),
				OnStoreError: func(error) { storeErrs.Add(1) },
			}}, store.Plan{Name: "free"})
			got := e.do("/a", "k1", "free")
			if got.status != 503 || got.recErr != "store unavailable" || storeErrs.Load() != 1 {
				t.Errorf("GET /a with Meter answering %+v: got %d %q, %d store errors, want 503 store unavailable, 1", tc.res, got.status, got.recErr, storeErrs.Load())
			}
		})
	}
}
