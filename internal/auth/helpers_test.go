package auth

import (
	"context"
	"fmt"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// flakyStore is a real store that can be switched off, as Redis going
// down would: while down, every lookup fails with store.ErrUnavailable.
type flakyStore struct {
	KeyStore
	down    atomic.Bool
	lookups atomic.Int64
}

func (s *flakyStore) KeyByHash(ctx context.Context, hash string) (store.Key, error) {
	s.lookups.Add(1)
	if s.down.Load() {
		return store.Key{}, fmt.Errorf("redis 127.0.0.1:1: connection refused: %w", store.ErrUnavailable)
	}
	return s.KeyStore.KeyByHash(ctx, hash)
}

// testClock is a clock tests move by hand.
type testClock = testutil.Clock

func newTestClock() *testClock {
	return testutil.NewClock(time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC))
}

// recordSink keeps a copy of every request's observe.Record, as the
// access log would see it.
type recordSink struct {
	mu   sync.Mutex
	recs []observe.Record
}

func (s *recordSink) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &observe.Record{}
		next.ServeHTTP(w, r.WithContext(observe.WithRecord(r.Context(), rec)))
		s.mu.Lock()
		s.recs = append(s.recs, *rec)
		s.mu.Unlock()
	})
}

func (s *recordSink) last(t *testing.T) observe.Record {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recs) == 0 {
		t.Fatal("no record kept")
	}
	return s.recs[len(s.recs)-1]
}

func (s *recordSink) all() []observe.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]observe.Record(nil), s.recs...)
}

// reasons collects OnReject calls.
type reasons struct {
	mu   sync.Mutex
	list []string
}

func (r *reasons) add(reason string) {
	r.mu.Lock()
	r.list = append(r.list, reason)
	r.mu.Unlock()
}

func (r *reasons) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.list...)
}

// identityEcho is the next handler of the checks under test: it answers
// 200 with the Identity it was given.
var identityEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	id, ok := IdentityFrom(r.Context())
	if !ok {
		io.WriteString(w, "no identity")
		return
	}
	fmt.Fprintf(w, "key=%s name=%s plan=%s partner=%s cert=%s", id.KeyID, id.KeyName, id.Plan, id.Partner, id.CertFingerprint)
})

// response is what a test compares: status, body and the headers that
// matter.
type response struct {
	status    int
	body      string
	errorType string
	header    http.Header
}

func get(t *testing.T, client *http.Client, url string, header http.Header) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("http.NewRequest(GET, %q): %v", url, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return do(t, client, req)
}

func do(t *testing.T, client *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body of %s %s: %v", req.Method, req.URL, err)
	}
	return response{status: resp.StatusCode, body: string(body), errorType: resp.Header.Get("X-Amzn-Errortype"), header: resp.Header}
}

// newServer serves h over a real loopback socket for the test's lifetime.
func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// mustNotLeak fails if secret appears in any record field.
func mustNotLeak(t *testing.T, recs []observe.Record, secret string) {
	t.Helper()
	for _, rec := range recs {
		if s := fmt.Sprintf("%+v", rec); strings.Contains(s, secret) {
			t.Errorf("record %s: contains the key value %q", s, secret)
		}
	}
}
