package auth

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// maxCacheEntries bounds the key cache. A partner sending random keys
// fills it with misses; eviction prefers those (see evictOne).
const maxCacheEntries = 10_000

// evictSample is how many entries evictOne compares.
const evictSample = 8

// cacheEntry is one store lookup. Entries are never modified once in the
// cache; a refresh replaces the pointer.
type cacheEntry struct {
	fetched time.Time
	// id is nil when the store had no such key.
	id *Identity
	// key holds only the fields that decide validity.
	key store.Key
}

// keyCache maps SHA-256 digests of key values to lookups. It is safe for
// concurrent use.
type keyCache struct {
	mu  sync.RWMutex
	m   map[[sha256.Size]byte]*cacheEntry
	max int
}

func newKeyCache(max int) *keyCache {
	return &keyCache{m: make(map[[sha256.Size]byte]*cacheEntry), max: max}
}

func (c *keyCache) get(digest [sha256.Size]byte) *cacheEntry {
	c.mu.RLock()
	e := c.m[digest]
	c.mu.RUnlock()
	return e
}

func (c *keyCache) put(digest [sha256.Size]byte, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[digest]; !ok && len(c.m) >= c.max {
		c.evictOne()
	}
	c.m[digest] = e
}

// evictOne removes one entry, chosen among a few from Go's randomised map
// iteration: a miss (unknown key) first, else the oldest. Misses go first
// because a valid key's entry is what keeps a partner working through a
// store outage.
func (c *keyCache) evictOne() {
	var victim [sha256.Size]byte
	var worst *cacheEntry
	n := 0
	for d, e := range c.m {
		if worst == nil || worse(e, worst) {
			victim, worst = d, e
		}
		if n++; n == evictSample {
			break
		}
	}
	if worst != nil {
		delete(c.m, victim)
	}
}

// worse reports whether a should be evicted before b.
func worse(a, b *cacheEntry) bool {
	if (a.id == nil) != (b.id == nil) {
		return a.id == nil
	}
	return a.fetched.Before(b.fetched)
}

func (c *keyCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
