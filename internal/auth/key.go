package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"
	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// Defaults of KeyOptions.
const (
	DefaultCacheTTL = 500 * time.Millisecond
	DefaultStaleFor = 5 * time.Minute
)

// Bounds of a key value, API Gateway's: every key exported from it
// imports unchanged. ValidKeyValue applies them.
const (
	MinKeyValueLen = 20
	MaxKeyValueLen = 128
)

// maxKeyLen bounds the x-api-key value a request may send. It is wider
// than MaxKeyValueLen because a value no key can have is refused as
// unknown anyway; the bound only keeps the cost of hashing small.
const maxKeyLen = 256

// headerAPIKey is x-api-key in the canonical form net/http stores it in.
const headerAPIKey = "X-Api-Key"

// Reasons passed to KeyOptions.OnReject and ClientCertOptions.OnReject.
const (
	ReasonMissing     = "missing"
	ReasonInvalid     = "invalid"
	ReasonDisabled    = "disabled"
	ReasonExpired     = "expired"
	ReasonRevoked     = "revoked"
	ReasonUnavailable = "unavailable"
	// ReasonMismatch: the key and the client certificate name different
	// partners.
	ReasonMismatch = "mismatch"
)

// KeyStore is what the key check needs; any store.Store satisfies it.
type KeyStore interface {
	// KeyByHash finds a key by the lowercase hex SHA-256 of its value,
	// returning an error wrapping store.ErrNotFound when there is none and
	// store.ErrUnavailable when the backend cannot be reached.
	KeyByHash(ctx context.Context, hash string) (store.Key, error)
}

var _ KeyStore = store.Store(nil)

// KeyOptions configures NewKeyCheck.
type KeyOptions struct {
	// Cache, if not nil, is the lookup cache to share with other key
	// checks; Store, CacheTTL, StaleFor and Now then come from it and the
	// fields here are ignored. The gateway makes one per process and hands
	// it to every route and method's check, across reloads, so that a key
	// costs one store lookup per CacheTTL however many routes it calls and
	// a reload does not start cold. If nil, the check gets a cache of its
	// own made from the fields below.
	Cache *KeyCache
	// Store finds keys by hash. Required unless Cache is set.
	Store KeyStore
	// CacheTTL bounds how long a lookup (found or not) is reused: a revoked
	// or new key takes effect within it. Zero means DefaultCacheTTL (500ms).
	CacheTTL time.Duration
	// StaleFor: while the store is unavailable, a cached lookup up to this
	// old is still used. Zero means DefaultStaleFor (5m). With nothing
	// usable cached the request gets 503: the key check always fails
	// closed, and an unknown key is never let through.
	StaleFor time.Duration
	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
	// OnReject, if not nil, is called once per refused request with one of
	// the Reason constants (for metrics). It must be safe for concurrent
	// use and must not block.
	OnReject func(reason string)
}

// KeyCacheOptions configures NewKeyCache; the fields mean what
// KeyOptions' fields of the same names do.
type KeyCacheOptions struct {
	// Store finds keys by hash. Required.
	Store KeyStore
	// TTL is KeyOptions.CacheTTL: zero means DefaultCacheTTL.
	TTL time.Duration
	// StaleFor is KeyOptions.StaleFor: zero means DefaultStaleFor.
	StaleFor time.Duration
	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
}

// KeyCache is the store lookups of API keys, shareable by any number of
// key checks (KeyOptions.Cache). It holds at most 10,000 lookups, about
// 2.5 MB, preferring to drop lookups of unknown keys. It is safe for
// concurrent use.
type KeyCache struct {
	store    KeyStore
	ttl      time.Duration
	staleFor time.Duration
	now      func() time.Time
	// err is why the options are unusable; NewKeyCheck reports it, since
	// NewKeyCache returns no error.
	err     error
	entries *keyCache
}

// NewKeyCache returns an empty cache over o.Store. Invalid options (no
// store, a negative duration) are reported by NewKeyCheck when the cache
// is used.
func NewKeyCache(o KeyCacheOptions) *KeyCache {
	c := &KeyCache{
		store:    o.Store,
		ttl:      o.TTL,
		staleFor: o.StaleFor,
		now:      o.Now,
		entries:  newKeyCache(maxCacheEntries),
	}
	switch {
	case o.Store == nil:
		c.err = errors.New("no key store")
	case o.TTL < 0:
		c.err = fmt.Errorf("negative cache ttl %v", o.TTL)
	case o.StaleFor < 0:
		c.err = fmt.Errorf("negative stale_for %v", o.StaleFor)
	}
	if c.ttl <= 0 {
		c.ttl = DefaultCacheTTL
	}
	if c.staleFor <= 0 {
		c.staleFor = DefaultStaleFor
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// keyCheck is the handler NewKeyCheck returns.
type keyCheck struct {
	cache    *KeyCache
	onReject func(string)
	next     http.Handler
}

// NewKeyCheck returns a handler that lets a request through to next only
// with a valid x-api-key, as API Gateway's apiKeyRequired does, and puts
// the key's Identity in the request context and observe.Record.
//
// Every refusal answers 403 {"message":"Forbidden"}
// (gwresponse.InvalidAPIKey), whether the key is missing, malformed,
// unknown, disabled, expired or revoked, so a caller cannot tell them
// apart; only a store outage with nothing usable cached answers 503.
func NewKeyCheck(o KeyOptions, next http.Handler) (http.Handler, error) {
	if next == nil {
		return nil, errors.New("key check: next handler is nil")
	}
	cache := o.Cache
	if cache == nil {
		cache = NewKeyCache(KeyCacheOptions{Store: o.Store, TTL: o.CacheTTL, StaleFor: o.StaleFor, Now: o.Now})
	}
	if cache.err != nil {
		return nil, fmt.Errorf("key check: %w", cache.err)
	}
	c := &keyCheck{cache: cache, onReject: o.OnReject, next: next}
	if c.onReject == nil {
		c.onReject = func(string) {}
	}
	return c, nil
}

// HashKey returns the lowercase hex SHA-256 of an API key value, the form
// in which stores keep keys (store.Key.Hash).
func HashKey(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:])
}

func (c *keyCheck) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	vals := r.Header[headerAPIKey]
	switch {
	case len(vals) == 0 || (len(vals) == 1 && vals[0] == ""):
		c.reject(w, r, ReasonMissing, "api key: missing")
		return
	case len(vals) > 1:
		c.reject(w, r, ReasonInvalid, "api key: repeated header")
		return
	case !wellFormedKey(vals[0]):
		c.reject(w, r, ReasonInvalid, "api key: malformed")
		return
	}
	// Copying into a fixed buffer keeps the hit path free of allocations.
	var buf [maxKeyLen]byte
	digest := sha256.Sum256(buf[:copy(buf[:], vals[0])])

	ctx := r.Context()
	kc := c.cache
	now := kc.now()
	e := kc.entries.get(digest)
	if e == nil || now.Sub(e.fetched) >= kc.ttl {
		fresh, err := kc.fetch(ctx, digest, now)
		switch {
		case err == nil:
			e = fresh
		case e != nil && now.Sub(e.fetched) < kc.staleFor:
			// The store is down: a recent answer beats refusing every
			// partner. Unknown keys stay refused, as they were cached.
		default:
			c.onReject(ReasonUnavailable)
			observe.RecordFrom(ctx).Error = "api key: store unavailable"
			gwresponse.Write(w, gwresponse.ServiceUnavailable)
			return
		}
	}
	if e.id == nil {
		c.reject(w, r, ReasonInvalid, "api key: unknown")
		return
	}
	if reason := refusal(&e.key, now); reason != "" {
		c.reject(w, r, reason, "api key: "+reason)
		return
	}

	id := e.id
	if prev := identityFrom(ctx); prev != nil {
		if prev.Partner != "" && prev.Partner != id.Partner {
			c.reject(w, r, ReasonMismatch, "api key: partner differs from client certificate's")
			return
		}
		merged := *prev
		merged.KeyID, merged.KeyName, merged.Plan, merged.Partner = id.KeyID, id.KeyName, id.Plan, id.Partner
		id = &merged
	}
	rec := observe.RecordFrom(ctx)
	rec.KeyID, rec.Plan, rec.Partner = id.KeyID, id.Plan, id.Partner
	c.next.ServeHTTP(w, r.WithContext(withIdentity(ctx, id)))
}

// reject answers API Gateway's INVALID_API_KEY. detail goes to the access
// log and must never contain the key's value.
func (c *keyCheck) reject(w http.ResponseWriter, r *http.Request, reason, detail string) {
	c.onReject(reason)
	observe.RecordFrom(r.Context()).Error = detail
	gwresponse.Write(w, gwresponse.InvalidAPIKey)
}

// fetch looks the key up in the store and caches the answer. A key that
// is not there is cached too, so guessing keys costs the store little.
func (c *KeyCache) fetch(ctx context.Context, digest [sha256.Size]byte, now time.Time) (*cacheEntry, error) {
	hash := hex.EncodeToString(digest[:])
	k, err := c.store.KeyByHash(ctx, hash)
	e := &cacheEntry{fetched: now}
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		// Any other failure is treated as the store being unavailable:
		// the check fails closed either way.
		return nil, err
	case subtle.ConstantTimeCompare([]byte(k.Hash), []byte(hash)) != 1:
		// A store must only return the key whose hash was asked for;
		// anything else is not that key.
	default:
		e.key = store.Key{Enabled: k.Enabled, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt}
		e.id = &Identity{KeyID: k.ID, KeyName: k.Name, Plan: k.Plan, Partner: k.Name}
	}
	c.entries.put(digest, e)
	return e, nil
}

// refusal returns why k may not be used at now, or "" if it may.
func refusal(k *store.Key, now time.Time) string {
	switch {
	case !k.RevokedAt.IsZero():
		return ReasonRevoked
	case !k.Enabled:
		return ReasonDisabled
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return ReasonExpired
	}
	return ""
}

// ValidKeyValue reports why v cannot be an API key's value, or nil if it
// can: MinKeyValueLen to MaxKeyValueLen bytes, each printable ASCII other
// than space (0x21-0x7e). A space anywhere is refused, not only at the
// ends, because the key check refuses such a header value: a key stored
// with one would answer 403 forever. The error names what is wrong and
// never contains v, which is a secret.
func ValidKeyValue(v string) error {
	if len(v) < MinKeyValueLen || len(v) > MaxKeyValueLen {
		return fmt.Errorf("key value: want %d to %d characters, got %d", MinKeyValueLen, MaxKeyValueLen, len(v))
	}
	if i := badKeyByte(v); i >= 0 {
		if v[i] == ' ' {
			return fmt.Errorf("key value: character %d is a space; want printable ASCII without spaces", i+1)
		}
		return fmt.Errorf("key value: character %d is not printable ASCII; want printable ASCII without spaces", i+1)
	}
	return nil
}

// wellFormedKey reports whether a request's x-api-key can be looked up:
// the bytes ValidKeyValue allows, 1 to maxKeyLen of them. Every value
// ValidKeyValue accepts is well-formed.
func wellFormedKey(v string) bool {
	return len(v) > 0 && len(v) <= maxKeyLen && badKeyByte(v) < 0
}

// badKeyByte returns the index of the first byte of v outside 0x21-0x7e,
// or -1 if there is none.
func badKeyByte(v string) int {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return i
		}
	}
	return -1
}
