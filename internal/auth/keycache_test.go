package auth

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestKeyCacheShared checks that key checks sharing a KeyCache, as every
// route and method of a gateway do, ask the store once per key between
// them, for known and unknown keys alike.
func TestKeyCacheShared(t *testing.T) {
	t.Parallel()
	st := &flakyStore{KeyStore: newKeyStore(t, time.Now())}
	cache := NewKeyCache(KeyCacheOptions{Store: st, TTL: time.Hour})
	var rsA, rsB reasons
	// Store is deliberately unset: it comes from the cache.
	a, err := NewKeyCheck(KeyOptions{Cache: cache, OnReject: rsA.add}, identityEcho)
	if err != nil {
		t.Fatalf("NewKeyCheck(a): %v", err)
	}
	b, err := NewKeyCheck(KeyOptions{Cache: cache, OnReject: rsB.add}, identityEcho)
	if err != nil {
		t.Fatalf("NewKeyCheck(b): %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/a", a)
	mux.Handle("/b", b)
	srv := newServer(t, mux)

	tests := []struct {
		desc        string
		path, value string
		wantStatus  int
		wantLookups int64
	}{
		{desc: "known key on a", path: "/a", value: valueAcme, wantStatus: 200, wantLookups: 1},
		{desc: "known key on b", path: "/b", value: valueAcme, wantStatus: 200, wantLookups: 1},
		{desc: "unknown key on b", path: "/b", value: valueUnknown, wantStatus: 403, wantLookups: 2},
		{desc: "unknown key on a", path: "/a", value: valueUnknown, wantStatus: 403, wantLookups: 2},
	}
	for _, tt := range tests {
		got := get(t, srv.Client(), srv.URL+tt.path, http.Header{"X-Api-Key": {tt.value}})
		if got.status != tt.wantStatus {
			t.Errorf("%s: GET %s: got %d %q, want %d", tt.desc, tt.path, got.status, got.body, tt.wantStatus)
		}
		if n := st.lookups.Load(); n != tt.wantLookups {
			t.Errorf("%s: store lookups: got %d, want %d", tt.desc, n, tt.wantLookups)
		}
	}
	// Each check still reports its own refusals.
	if got := rsA.get(); len(got) != 1 || got[0] != ReasonInvalid {
		t.Errorf("check a's OnReject calls: got %q, want [%q]", got, ReasonInvalid)
	}
	if got := rsB.get(); len(got) != 1 || got[0] != ReasonInvalid {
		t.Errorf("check b's OnReject calls: got %q, want [%q]", got, ReasonInvalid)
	}
}

// TestKeyCachePerCheck checks the behaviour without KeyOptions.Cache:
// each check has a cache of its own.
func TestKeyCachePerCheck(t *testing.T) {
	t.Parallel()
	st := &flakyStore{KeyStore: newKeyStore(t, time.Now())}
	mux := http.NewServeMux()
	for _, path := range []string{"/a", "/b"} {
		h, err := NewKeyCheck(KeyOptions{Store: st, CacheTTL: time.Hour}, identityEcho)
		if err != nil {
			t.Fatalf("NewKeyCheck(%s): %v", path, err)
		}
		mux.Handle(path, h)
	}
	srv := newServer(t, mux)
	for _, path := range []string{"/a", "/b", "/a"} {
		if got := get(t, srv.Client(), srv.URL+path, http.Header{"X-Api-Key": {valueAcme}}); got.status != 200 {
			t.Errorf("GET %s: got %d %q, want 200", path, got.status, got.body)
		}
	}
	if n := st.lookups.Load(); n != 2 {
		t.Errorf("store lookups: got %d, want 2, one per check", n)
	}
}

func TestNewKeyCheckBadCache(t *testing.T) {
	t.Parallel()
	ms := newKeyStore(t, time.Now())
	tests := []struct {
		desc    string
		o       KeyCacheOptions
		wantErr string
	}{
		{desc: "no store", o: KeyCacheOptions{}, wantErr: "key check: no key store"},
		{desc: "negative ttl", o: KeyCacheOptions{Store: ms, TTL: -time.Second}, wantErr: "key check: negative cache ttl"},
		{desc: "negative stale_for", o: KeyCacheOptions{Store: ms, StaleFor: -time.Second}, wantErr: "key check: negative stale_for"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			// A Store in KeyOptions does not make up for the cache's.
			_, err := NewKeyCheck(KeyOptions{Cache: NewKeyCache(tt.o), Store: ms}, identityEcho)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewKeyCheck with NewKeyCache(%+v): got error %v, want one containing %q", tt.o, err, tt.wantErr)
			}
		})
	}
}

func TestValidKeyValue(t *testing.T) {
	t.Parallel()
	const base = "0123456789abcdefghij" // 20 bytes
	tests := []struct {
		desc    string
		v       string
		wantErr string // "" = valid
	}{
		{desc: "20 bytes", v: base},
		{desc: "128 bytes", v: strings.Repeat("k", 128)},
		{desc: "every printable byte but space", v: printableASCII()},
		{desc: "19 bytes", v: base[:19], wantErr: "want 20 to 128 characters, got 19"},
		{desc: "129 bytes", v: strings.Repeat("k", 129), wantErr: "want 20 to 128 characters, got 129"},
		{desc: "empty", v: "", wantErr: "got 0"},
		{desc: "inner space", v: "0123456789 abcdefghij", wantErr: "character 11 is a space"},
		{desc: "leading space", v: " " + base, wantErr: "character 1 is a space"},
		{desc: "trailing space", v: base + " ", wantErr: "character 21 is a space"},
		{desc: "tab", v: base + "\t", wantErr: "character 21 is not printable ASCII"},
		{desc: "DEL", v: base + "\x7f", wantErr: "character 21 is not printable ASCII"},
		{desc: "non-ASCII", v: base + "é", wantErr: "character 21 is not printable ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			err := ValidKeyValue(tt.v)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("ValidKeyValue(%q): got %v, want nil", tt.v, err)
				}
				// What may be stored must pass the request-time check.
				if !wellFormedKey(tt.v) {
					t.Errorf("wellFormedKey(%q): got false for a valid key value, want true", tt.v)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ValidKeyValue(%q): got %v, want an error containing %q", tt.v, err, tt.wantErr)
			}
			if tt.v != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.v)) {
				t.Errorf("ValidKeyValue(%q): got %q, which contains the value", tt.v, err)
			}
			// A byte the value rule refuses is refused on requests too.
			if strings.Contains(tt.wantErr, "character ") && strings.Contains(tt.wantErr, " is ") && wellFormedKey(tt.v) {
				t.Errorf("wellFormedKey(%q): got true, want false as ValidKeyValue refuses its bytes", tt.v)
			}
		})
	}
}

// printableASCII is the 94 bytes 0x21-0x7e.
func printableASCII() string {
	var b strings.Builder
	for c := byte(0x21); c <= 0x7e; c++ {
		b.WriteByte(c)
	}
	return b.String()
}
