// Package counters holds the quota and usage counts behind Consume for the
// memory and bolt stores, and tracks which counts changed since the bolt
// store's last flush.
package counters

import (
	"strings"
	"sync"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// DayFormat is the layout of usage days, as API Gateway's get-usage.
const DayFormat = "2006-01-02"

// QuotaKey identifies the counter of keyID's quota window starting at
// start: "keyID|2026-11-01T00:00:00Z". Every backend uses the same identity.
func QuotaKey(keyID string, start time.Time) string {
	return keyID + "|" + start.UTC().Format(time.RFC3339)
}

// UsageKey identifies keyID's usage counter for day (DayFormat).
func UsageKey(keyID, day string) string {
	return keyID + "|" + day
}

// SplitKey splits a QuotaKey or UsageKey into the key ID and the rest. The
// separator is searched from the end because neither a day nor an RFC 3339
// time contains "|".
func SplitKey(k string) (keyID, rest string, ok bool) {
	i := strings.LastIndexByte(k, '|')
	if i < 0 {
		return "", "", false
	}
	return k[:i], k[i+1:], true
}

// Counters is a set of quota and usage counts, safe for concurrent use.
type Counters struct {
	mu    sync.Mutex
	quota map[string]int64
	// usage is by key ID then day, so Usage reads one key's days only.
	usage map[string]map[string]int64

	track      bool
	dirtyQuota map[string]struct{}
	dirtyUsage map[string]struct{}
}

// New returns empty counters; if track is set they remember which counts
// changed, for TakeDirty.
func New(track bool) *Counters {
	c := &Counters{
		quota: make(map[string]int64),
		usage: make(map[string]map[string]int64),
		track: track,
	}
	if track {
		c.dirtyQuota = make(map[string]struct{})
		c.dirtyUsage = make(map[string]struct{})
	}
	return c
}

// Consume implements store.Store.Consume: the check of the window and both
// increments happen under one lock, so concurrent callers never exceed
// w.Limit.
func (c *Counters) Consume(keyID string, w *store.Window, now time.Time) store.QuotaDecision {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d store.QuotaDecision
	if w != nil {
		qk := QuotaKey(keyID, w.Start)
		used := c.quota[qk]
		if used >= w.Limit {
			return store.QuotaDecision{Used: used}
		}
		c.quota[qk] = used + 1
		if c.track {
			c.dirtyQuota[qk] = struct{}{}
		}
		d.Used = used + 1
	}
	day := now.UTC().Format(DayFormat)
	days := c.usage[keyID]
	if days == nil {
		days = make(map[string]int64)
		c.usage[keyID] = days
	}
	days[day]++
	if c.track {
		c.dirtyUsage[UsageKey(keyID, day)] = struct{}{}
	}
	d.Allowed = true
	return d
}

// QuotaUsed returns keyID's count in w.
func (c *Counters) QuotaUsed(keyID string, w store.Window) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.quota[QuotaKey(keyID, w.Start)]
}

// Usage returns keyID's counts per UTC day from from to to inclusive,
// omitting days without requests.
func (c *Counters) Usage(keyID string, from, to time.Time) map[string]int64 {
	lo, hi := from.UTC().Format(DayFormat), to.UTC().Format(DayFormat)
	out := make(map[string]int64)
	c.mu.Lock()
	defer c.mu.Unlock()
	// DayFormat sorts as a string, so the range test needs no parsing.
	for day, n := range c.usage[keyID] {
		if n != 0 && day >= lo && day <= hi {
			out[day] = n
		}
	}
	return out
}

// SetQuota sets the count of a QuotaKey without marking it dirty; the bolt
// store loads its counters with it.
func (c *Counters) SetQuota(quotaKey string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.quota[quotaKey] = n
}

// SetUsage sets keyID's count for day without marking it dirty.
func (c *Counters) SetUsage(keyID, day string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	days := c.usage[keyID]
	if days == nil {
		days = make(map[string]int64)
		c.usage[keyID] = days
	}
	days[day] = n
}

// Entry is one counter's current value: Key is a QuotaKey or a UsageKey.
type Entry struct {
	Key string
	N   int64
}

// TakeDirty returns the current values of the counters changed since the
// last TakeDirty and forgets that they changed. Values are absolute, so
// writing them twice is harmless; a caller that cannot write them hands
// them back with MarkDirty.
func (c *Counters) TakeDirty() (quota, usage []Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.dirtyQuota {
		quota = append(quota, Entry{Key: k, N: c.quota[k]})
	}
	for k := range c.dirtyUsage {
		id, day, _ := SplitKey(k)
		usage = append(usage, Entry{Key: k, N: c.usage[id][day]})
	}
	clear(c.dirtyQuota)
	clear(c.dirtyUsage)
	return quota, usage
}

// MarkDirty marks the counters of entries as changed again, so that the
// next TakeDirty returns their then-current values.
func (c *Counters) MarkDirty(quota, usage []Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.track {
		return
	}
	for _, e := range quota {
		c.dirtyQuota[e.Key] = struct{}{}
	}
	for _, e := range usage {
		c.dirtyUsage[e.Key] = struct{}{}
	}
}
