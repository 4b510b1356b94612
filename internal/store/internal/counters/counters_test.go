package counters

import (
	"maps"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

func TestKeys(t *testing.T) {
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.FixedZone("W", -3600))
	tests := []struct {
		desc, key, wantID, wantRest string
	}{
		{"quota", QuotaKey("key_x", start), "key_x", "2026-11-01T01:00:00Z"},
		{"usage", UsageKey("key_x", "2026-11-01"), "key_x", "2026-11-01"},
		{"separator in id", UsageKey("a|b", "2026-11-01"), "a|b", "2026-11-01"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			id, rest, ok := SplitKey(tt.key)
			if !ok || id != tt.wantID || rest != tt.wantRest {
				t.Errorf("SplitKey(%q): got %q, %q, %v, want %q, %q, true", tt.key, id, rest, ok, tt.wantID, tt.wantRest)
			}
		})
	}
	if _, _, ok := SplitKey("nosep"); ok {
		t.Errorf("SplitKey(nosep): got ok, want not ok")
	}
}

func TestDirtyTracking(t *testing.T) {
	c := New(true)
	now := time.Date(2026, 5, 17, 12, 0, 0, 0, time.UTC)
	w := &store.Window{Start: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Limit: 10}
	c.SetQuota(QuotaKey("key_a", w.Start), 4)
	if q, u := c.TakeDirty(); len(q)+len(u) != 0 {
		t.Fatalf("TakeDirty() after loading only: got %v, %v, want nothing", q, u)
	}
	c.Consume("key_a", w, now)
	c.Consume("key_a", w, now)
	q, u := c.TakeDirty()
	wantQ := []Entry{{QuotaKey("key_a", w.Start), 6}}
	wantU := []Entry{{UsageKey("key_a", "2026-05-17"), 2}}
	if !equal(q, wantQ) || !equal(u, wantU) {
		t.Fatalf("TakeDirty(): got %v, %v, want %v, %v", q, u, wantQ, wantU)
	}
	if q, u := c.TakeDirty(); len(q)+len(u) != 0 {
		t.Errorf("TakeDirty() twice: got %v, %v, want nothing", q, u)
	}
	// A failed write hands the entries back; the retry sees newer values.
	c.MarkDirty(q, u)
	c.Consume("key_a", w, now)
	q, u = c.TakeDirty()
	wantQ[0].N, wantU[0].N = 7, 3
	if !equal(q, wantQ) || !equal(u, wantU) {
		t.Errorf("TakeDirty() after MarkDirty and Consume: got %v, %v, want %v, %v", q, u, wantQ, wantU)
	}
}

func equal(a, b []Entry) bool {
	m := func(es []Entry) map[string]int64 {
		out := make(map[string]int64)
		for _, e := range es {
			out[e.Key] = e.N
		}
		return out
	}
	return len(a) == len(b) && maps.Equal(m(a), m(b))
}
