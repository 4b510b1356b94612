package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httputil"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/memory"
)

// Key values of the fixture. Each is a secret the tests check never
// leaks into records.
const (
	valueAcme     = "acme-0123456789abcdefABCDEF"
	valueDisabled = "disabled-0123456789abcdef"
	valueExpired  = "expired-0123456789abcdef"
	valueRevoked  = "revoked-0123456789abcdef"
	valueUnknown  = "unknown-0123456789abcdef"
)

// newKeyStore returns a memory store holding the fixture's keys, created
// relative to now.
func newKeyStore(t *testing.T, now time.Time) *memory.Store {
	t.Helper()
	s := memory.New(memory.Options{})
	keys := []store.Key{
		{ID: "key_acme", Name: "acme", Hash: HashKey(valueAcme), Plan: "gold", Enabled: true, CreatedAt: now},
		{ID: "key_disabled", Name: "disabled", Hash: HashKey(valueDisabled), Enabled: false, CreatedAt: now},
		{ID: "key_expired", Name: "expired", Hash: HashKey(valueExpired), Enabled: true, CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Minute)},
		{ID: "key_revoked", Name: "revoked", Hash: HashKey(valueRevoked), Enabled: true, CreatedAt: now.Add(-time.Hour), RevokedAt: now.Add(-time.Minute)},
	}
	for _, k := range keys {
		if err := s.CreateKey(context.Background(), k); err != nil {
			t.Fatalf("CreateKey(%q): %v", k.Name, err)
		}
	}
	return s
}

func TestHashKey(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("abc"))
	if got, want := HashKey("abc"), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("HashKey(%q): got %q, want %q", "abc", got, want)
	}
	if got := HashKey("abc"); got != strings.ToLower(got) || len(got) != 64 {
		t.Errorf("HashKey(%q): got %q, want 64 lowercase hex digits", "abc", got)
	}
}

func TestKeyCheck(t *testing.T) {
	t.Parallel()
	const forbidden = `{"message":"Forbidden"}`
	tests := []struct {
		desc       string
		values     []string // x-api-key header lines; nil sends none
		wantStatus int
		wantBody   string
		wantError  string // record's Error
		wantReason string // OnReject's argument; "" when accepted
		wantLookup bool   // whether the store is asked
	}{
		{desc: "valid", values: []string{valueAcme}, wantStatus: 200, wantBody: "key=key_acme name=acme plan=gold partner=acme cert=", wantLookup: true},
		{desc: "missing", wantStatus: 403, wantBody: forbidden, wantError: "api key: missing", wantReason: ReasonMissing},
		{desc: "empty", values: []string{""}, wantStatus: 403, wantBody: forbidden, wantError: "api key: missing", wantReason: ReasonMissing},
		{desc: "wrong", values: []string{valueUnknown}, wantStatus: 403, wantBody: forbidden, wantError: "api key: unknown", wantReason: ReasonInvalid, wantLookup: true},
		{desc: "disabled", values: []string{valueDisabled}, wantStatus: 403, wantBody: forbidden, wantError: "api key: disabled", wantReason: ReasonDisabled, wantLookup: true},
		{desc: "expired", values: []string{valueExpired}, wantStatus: 403, wantBody: forbidden, wantError: "api key: expired", wantReason: ReasonExpired, wantLookup: true},
		{desc: "revoked", values: []string{valueRevoked}, wantStatus: 403, wantBody: forbidden, wantError: "api key: revoked", wantReason: ReasonRevoked, wantLookup: true},
		{desc: "10 kB key", values: []string{strings.Repeat("k", 10<<10)}, wantStatus: 403, wantBody: forbidden, wantError: "api key: malformed", wantReason: ReasonInvalid},
		{desc: "257 bytes", values: []string{strings.Repeat("k", 257)}, wantStatus: 403, wantBody: forbidden, wantError: "api key: malformed", wantReason: ReasonInvalid},
		{desc: "non-ASCII", values: []string{"acme-ключ-0123456789"}, wantStatus: 403, wantBody: forbidden, wantError: "api key: malformed", wantReason: ReasonInvalid},
		{desc: "inner space", values: []string{"acme 0123456789abcdef"}, wantStatus: 403, wantBody: forbidden, wantError: "api key: malformed", wantReason: ReasonInvalid},
		{desc: "repeated header", values: []string{valueAcme, valueAcme}, wantStatus: 403, wantBody: forbidden, wantError: "api key: repeated header", wantReason: ReasonInvalid},
		{desc: "repeated, one empty", values: []string{valueAcme, ""}, wantStatus: 403, wantBody: forbidden, wantError: "api key: repeated header", wantReason: ReasonInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			st := &flakyStore{KeyStore: newKeyStore(t, time.Now())}
			var rs reasons
			var sink recordSink
			h, err := NewKeyCheck(KeyOptions{Store: st, OnReject: rs.add}, identityEcho)
			if err != nil {
				t.Fatalf("NewKeyCheck: %v", err)
			}
			srv := newServer(t, sink.wrap(h))
			var header http.Header
			if tt.values != nil {
				header = http.Header{"X-Api-Key": tt.values}
			}
			got := get(t, srv.Client(), srv.URL+"/orders/1", header)
			if got.status != tt.wantStatus || got.body != tt.wantBody {
				t.Errorf("GET with x-api-key %.40q: got %d %q, want %d %q", tt.values, got.status, got.body, tt.wantStatus, tt.wantBody)
			}
			wantType := ""
			if tt.wantStatus == 403 {
				wantType = "ForbiddenException"
			}
			if got.errorType != wantType {
				t.Errorf("x-amzn-ErrorType: got %q, want %q", got.errorType, wantType)
			}
			rec := sink.last(t)
			if rec.Error != tt.wantError {
				t.Errorf("record.Error: got %q, want %q", rec.Error, tt.wantError)
			}
			if tt.wantStatus == 200 && (rec.KeyID != "key_acme" || rec.Plan != "gold" || rec.Partner != "acme") {
				t.Errorf("record KeyID, Plan, Partner: got %q, %q, %q, want %q, %q, %q", rec.KeyID, rec.Plan, rec.Partner, "key_acme", "gold", "acme")
			}
			if tt.wantStatus != 200 && (rec.KeyID != "" || rec.Plan != "") {
				t.Errorf("record of a refused key: got KeyID %q Plan %q, want both empty", rec.KeyID, rec.Plan)
			}
			var wantReasons []string
			if tt.wantReason != "" {
				wantReasons = []string{tt.wantReason}
			}
			if gotReasons := rs.get(); strings.Join(gotReasons, ",") != strings.Join(wantReasons, ",") {
				t.Errorf("OnReject calls: got %q, want %q", gotReasons, wantReasons)
			}
			if n := st.lookups.Load(); (n > 0) != tt.wantLookup {
				t.Errorf("store lookups: got %d, want any: %v", n, tt.wantLookup)
			}
			for _, v := range tt.values {
				if v != "" {
					mustNotLeak(t, sink.all(), v)
				}
			}
		})
	}
}

// TestKeyCheckMissingLooksLikeWrong checks that a caller cannot tell a
// missing key from a wrong, disabled or revoked one.
func TestKeyCheckMissingLooksLikeWrong(t *testing.T) {
	t.Parallel()
	h, err := NewKeyCheck(KeyOptions{Store: newKeyStore(t, time.Now())}, identityEcho)
	if err != nil {
		t.Fatalf("NewKeyCheck: %v", err)
	}
	srv := newServer(t, h)
	date := regexp.MustCompile(`(?m)^Date: .*\r\n`)
	dump := func(value string) string {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if value != "" {
			req.Header.Set("x-api-key", value)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("GET with key %q: %v", value, err)
		}
		defer resp.Body.Close()
		b, err := httputil.DumpResponse(resp, true)
		if err != nil {
			t.Fatalf("DumpResponse: %v", err)
		}
		return date.ReplaceAllString(string(b), "")
	}
	missing := dump("")
	for _, v := range []string{valueUnknown, valueDisabled, valueRevoked, valueExpired, "x"} {
		if got := dump(v); got != missing {
			t.Errorf("response to key %q:\n%s\nwant the same bytes as to a missing key:\n%s", v, got, missing)
		}
	}
}

// TestKeyCheckHeaderName checks that the header name is matched without
// regard to case, as HTTP requires.
func TestKeyCheckHeaderName(t *testing.T) {
	t.Parallel()
	h, err := NewKeyCheck(KeyOptions{Store: newKeyStore(t, time.Now())}, identityEcho)
	if err != nil {
		t.Fatalf("NewKeyCheck: %v", err)
	}
	srv := newServer(t, h)
	for _, name := range []string{"x-api-key", "X-API-KEY", "X-Api-Key"} {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		// Setting the map directly sends the name exactly as written.
		req.Header[name] = []string{valueAcme}
		if got := do(t, srv.Client(), req); got.status != 200 {
			t.Errorf("GET with header %q: got %d %q, want 200", name, got.status, got.body)
		}
	}
}

// TestKeyCheckCacheTTL checks that revoking a key, and creating one, take
// effect within CacheTTL.
func TestKeyCheckCacheTTL(t *testing.T) {
	t.Parallel()
	ms := newKeyStore(t, time.Now())
	h, err := NewKeyCheck(KeyOptions{Store: ms, CacheTTL: 20 * time.Millisecond}, identityEcho)
	if err != nil {
		t.Fatalf("NewKeyCheck: %v", err)
	}
	srv := newServer(t, h)
	send := func(value string) int {
		return get(t, srv.Client(), srv.URL+"/", http.Header{"X-Api-Key": {value}}).status
	}
	waitFor := func(value string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for send(value) != want {
			if time.Now().After(deadline) {
				t.Fatalf("GET with key %q: still not %d after 10s", value, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if got := send(valueAcme); got != 200 {
		t.Fatalf("GET with acme's key: got %d, want 200", got)
	}
	k, err := ms.KeyByName(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	k.RevokedAt = time.Now()
	if err := ms.UpdateKey(context.Background(), k); err != nil {
		t.Fatalf("UpdateKey: %v", err)
	}
	waitFor(valueAcme, 403)

	const newValue = "new-0123456789abcdef"
	if got := send(newValue); got != 403 {
		t.Fatalf("GET with a key not yet created: got %d, want 403", got)
	}
	if err := ms.CreateKey(context.Background(), store.Key{ID: "key_new", Name: "new", Hash: HashKey(newValue), Enabled: true}); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	waitFor(newValue, 200)
}

// TestKeyCheckExpiresWhileCached checks that a cached key stops working
// the moment it expires, not when the cache entry does.
func TestKeyCheckExpiresWhileCached(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	ms := memory.New(memory.Options{})
	if err := ms.CreateKey(context.Background(), store.Key{ID: "key_soon", Name: "soon", Hash: HashKey(valueAcme), Enabled: true, ExpiresAt: clock.Now().Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	h, err := NewKeyCheck(KeyOptions{Store: ms, Now: clock.Now, CacheTTL: time.Hour}, identityEcho)
	if err != nil {
		t.Fatalf("NewKeyCheck: %v", err)
	}
	srv := newServer(t, h)
	hdr := http.Header{"X-Api-Key": {valueAcme}}
	if got := get(t, srv.Client(), srv.URL, hdr); got.status != 200 {
		t.Fatalf("GET before expiry: got %d, want 200", got.status)
	}
	clock.Advance(time.Second)
	if got := get(t, srv.Client(), srv.URL, hdr); got.status != 403 {
		t.Errorf("GET at expiry: got %d, want 403", got.status)
	}
}

func TestKeyCheckStoreUnavailable(t *testing.T) {
	t.Parallel()
	const (
		ttl      = time.Second
		staleFor = time.Minute
	)
	tests := []struct {
		desc       string
		warm       string        // key sent while the store is up; "" for none
		age        time.Duration // clock advance after warming
		send       string
		wantStatus int
		wantType   string
		wantError  string
	}{
		{desc: "cached key within ttl", warm: valueAcme, age: ttl / 2, send: valueAcme, wantStatus: 200, wantType: ""},
		{desc: "cached key past ttl, within stale_for", warm: valueAcme, age: ttl + staleFor/2, send: valueAcme, wantStatus: 200},
		{desc: "cached key past stale_for", warm: valueAcme, age: staleFor + time.Second, send: valueAcme, wantStatus: 503, wantType: "InternalServerErrorException", wantError: "api key: store unavailable"},
		{desc: "nothing cached", send: valueAcme, wantStatus: 503, wantType: "InternalServerErrorException", wantError: "api key: store unavailable"},
		{desc: "unknown key, nothing cached", send: valueUnknown, wantStatus: 503, wantType: "InternalServerErrorException", wantError: "api key: store unavailable"},
		{desc: "cached unknown key stays refused", warm: valueUnknown, age: ttl * 2, send: valueUnknown, wantStatus: 403, wantType: "ForbiddenException", wantError: "api key: unknown"},
		{desc: "cached revoked key stays refused", warm: valueRevoked, age: ttl * 2, send: valueRevoked, wantStatus: 403, wantType: "ForbiddenException", wantError: "api key: revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			clock := newTestClock()
			st := &flakyStore{KeyStore: newKeyStore(t, clock.Now())}
			var rs reasons
			var sink recordSink
			h, err := NewKeyCheck(KeyOptions{Store: st, CacheTTL: ttl, StaleFor: staleFor, Now: clock.Now, OnReject: rs.add}, identityEcho)
			if err != nil {
				t.Fatalf("NewKeyCheck: %v", err)
			}
			srv := newServer(t, sink.wrap(h))
			if tt.warm != "" {
				get(t, srv.Client(), srv.URL, http.Header{"X-Api-Key": {tt.warm}})
			}
			st.down.Store(true)
			clock.Advance(tt.age)
			got := get(t, srv.Client(), srv.URL, http.Header{"X-Api-Key": {tt.send}})
			if got.status != tt.wantStatus || got.errorType != tt.wantType {
				t.Errorf("GET with store down: got %d %q %s, want %d %q", got.status, got.errorType, got.body, tt.wantStatus, tt.wantType)
			}
			if got.status == 503 && got.body != `{"message": "Internal server error"}` {
				t.Errorf("GET with store down: got body %q, want API Gateway's internal server error", got.body)
			}
			if rec := sink.last(t); rec.Error != tt.wantError {
				t.Errorf("record.Error: got %q, want %q", rec.Error, tt.wantError)
			}
			if tt.wantStatus == 503 && !contains(rs.get(), ReasonUnavailable) {
				t.Errorf("OnReject calls: got %q, want %q among them", rs.get(), ReasonUnavailable)
			}
			mustNotLeak(t, sink.all(), tt.send)

			// Once the store is back, the answer is the store's again.
			st.down.Store(false)
			clock.Advance(staleFor)
			want := 403
			if tt.send == valueAcme {
				want = 200
			}
			if got := get(t, srv.Client(), srv.URL, http.Header{"X-Api-Key": {tt.send}}); got.status != want {
				t.Errorf("GET with store back: got %d, want %d", got.status, want)
			}
		})
	}
}

// errStore fails every lookup with an error that is neither ErrNotFound
// nor ErrUnavailable.
type errStore struct{}

func (errStore) KeyByHash(context.Context, string) (store.Key, error) {
	return store.Key{}, errors.New("decoding key record: unexpected EOF")
}

// wrongHashStore returns a key whose hash is not the one asked for.
type wrongHashStore struct{}

func (wrongHashStore) KeyByHash(context.Context, string) (store.Key, error) {
	return store.Key{ID: "key_other", Name: "other", Hash: HashKey("other"), Enabled: true}, nil
}

// TestKeyCheckFailsClosed covers stores that misbehave: neither lets a
// request through.
func TestKeyCheckFailsClosed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc       string
		store      KeyStore
		wantStatus int
	}{
		{desc: "unexpected store error", store: errStore{}, wantStatus: 503},
		{desc: "store returns another key", store: wrongHashStore{}, wantStatus: 403},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			h, err := NewKeyCheck(KeyOptions{Store: tt.store}, identityEcho)
			if err != nil {
				t.Fatalf("NewKeyCheck: %v", err)
			}
			srv := newServer(t, h)
			if got := get(t, srv.Client(), srv.URL, http.Header{"X-Api-Key": {valueAcme}}); got.status != tt.wantStatus {
				t.Errorf("GET: got %d %q, want %d", got.status, got.body, tt.wantStatus)
			}
		})
	}
}

func TestNewKeyCheckErrors(t *testing.T) {
	t.Parallel()
	ms := memory.New(memory.Options{})
	tests := []struct {
		desc    string
		o       KeyOptions
		next    http.Handler
		wantErr string
	}{
		{desc: "no store", o: KeyOptions{}, next: identityEcho, wantErr: "no key store"},
		{desc: "nil next", o: KeyOptions{Store: ms}, wantErr: "next handler is nil"},
		{desc: "negative ttl", o: KeyOptions{Store: ms, CacheTTL: -time.Second}, next: identityEcho, wantErr: "negative cache ttl"},
		{desc: "negative stale_for", o: KeyOptions{Store: ms, StaleFor: -time.Second}, next: identityEcho, wantErr: "negative stale_for"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			_, err := NewKeyCheck(tt.o, tt.next)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewKeyCheck(%+v): got error %v, want one containing %q", tt.o, err, tt.wantErr)
			}
		})
	}
}

// TestKeyCheckConcurrent runs hits, misses and evictions at once, for the
// race detector; a tiny cache makes every miss evict.
func TestKeyCheckConcurrent(t *testing.T) {
	t.Parallel()
	h, err := NewKeyCheck(KeyOptions{Store: newKeyStore(t, time.Now()), CacheTTL: time.Millisecond}, identityEcho)
	if err != nil {
		t.Fatalf("NewKeyCheck: %v", err)
	}
	kc := h.(*keyCheck)
	kc.cache.entries = newKeyCache(4)
	srv := newServer(t, h)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				value, want := valueAcme, 200
				if (g+i)%2 == 1 {
					value, want = "guess-"+strings.Repeat("x", g+i), 403
				}
				if got := get(t, srv.Client(), srv.URL, http.Header{"X-Api-Key": {value}}); got.status != want {
					t.Errorf("GET with key %q: got %d, want %d", value, got.status, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := kc.cache.entries.len(); n > 4 {
		t.Errorf("cache size: got %d, want at most 4", n)
	}
}

func TestKeyCacheEvictsMissesFirst(t *testing.T) {
	t.Parallel()
	c := newKeyCache(3)
	now := time.Now()
	digest := func(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }
	c.put(digest("old-valid"), &cacheEntry{fetched: now.Add(-time.Hour), id: &Identity{KeyID: "a"}})
	c.put(digest("miss"), &cacheEntry{fetched: now})
	c.put(digest("valid"), &cacheEntry{fetched: now, id: &Identity{KeyID: "b"}})
	c.put(digest("new"), &cacheEntry{fetched: now, id: &Identity{KeyID: "c"}})
	if e := c.get(digest("miss")); e != nil {
		t.Errorf("get(miss) after eviction: got %+v, want nil", e)
	}
	c.put(digest("newer"), &cacheEntry{fetched: now, id: &Identity{KeyID: "d"}})
	if e := c.get(digest("old-valid")); e != nil {
		t.Errorf("get(old-valid) after second eviction: got %+v, want nil (oldest)", e)
	}
	if n := c.len(); n != 3 {
		t.Errorf("len: got %d, want 3", n)
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the check rather than a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

func BenchmarkKeyCheckHit(b *testing.B) {
	ms := memory.New(memory.Options{})
	if err := ms.CreateKey(context.Background(), store.Key{ID: "key_acme", Name: "acme", Hash: HashKey(valueAcme), Enabled: true, Plan: "gold"}); err != nil {
		b.Fatal(err)
	}
	var ok int
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ok++ })
	h, err := NewKeyCheck(KeyOptions{Store: ms, CacheTTL: time.Hour}, next)
	if err != nil {
		b.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1/orders/1", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("x-api-key", valueAcme)
	req = req.WithContext(observe.WithRecord(req.Context(), &observe.Record{}))
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, req) // warm the cache
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
	if ok == 0 {
		b.Fatal("next was never called")
	}
}
