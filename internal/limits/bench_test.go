package limits

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/memory"
)

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler rather than a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// benchHandler is the limits stage of a route for a key whose plan has a
// throttle high enough never to refuse, over a memory store and the plan
// cache the gateway uses: the hot path of every keyed request.
func benchHandler(b *testing.B, mode counterMode, headers bool) (http.Handler, *http.Request) {
	b.Helper()
	st := memory.New(memory.Options{})
	plan := store.Plan{Name: "gold", Throttle: throttle(1e9, 1e9)}
	if err := st.PutPlan(context.Background(), plan); err != nil {
		b.Fatalf("PutPlan: %v", err)
	}
	h, err := New(Options{
		Counter: mode.wrap(st),
		Plans:   NewPlanCache(st, time.Hour),
		Identity: func(context.Context) (string, string, bool) {
			return "key_bench", "gold", true
		},
		RouteName: "bench",
		MethodKey: "GET /bench",
		Headers:   headers,
	}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	if err != nil {
		b.Fatalf("New: %v", err)
	}
	r, err := http.NewRequest(http.MethodGet, "http://127.0.0.1/bench", nil)
	if err != nil {
		b.Fatalf("NewRequest: %v", err)
	}
	return h, r.WithContext(observe.WithRecord(r.Context(), &observe.Record{}))
}

func BenchmarkHandlerKeyThrottle(b *testing.B) {
	for _, mode := range modes {
		for _, headers := range []bool{false, true} {
			name := mode.name + "/headers=off"
			if headers {
				name = mode.name + "/headers=on"
			}
			b.Run(name, func(b *testing.B) {
				h, r := benchHandler(b, mode, headers)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					w := &discardWriter{h: http.Header{}}
					for pb.Next() {
						h.ServeHTTP(w, r)
					}
				})
			})
		}
	}
}

func BenchmarkPlanCacheHit(b *testing.B) {
	st := memory.New(memory.Options{})
	if err := st.PutPlan(context.Background(), store.Plan{Name: "gold"}); err != nil {
		b.Fatalf("PutPlan: %v", err)
	}
	c := NewPlanCache(st, time.Hour)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Plan(ctx, "gold"); err != nil {
				b.Errorf("Plan(gold): %v", err)
				return
			}
		}
	})
}
