// Package store keeps drawbridge's state: API keys (hashed), usage plans,
// and the counters behind throttles, quotas and usage reports.
//
// Three backends implement Store: memory (one process, tests and the
// quickstart), bolt (embedded and durable, the default for serve), and
// redis (several gateway replicas sharing exact counters). Every backend
// passes the same conformance suite in storetest.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors every backend returns, wrapped with context; test with errors.Is.
var (
	// ErrNotFound: no key or plan by that name or hash.
	ErrNotFound = errors.New("not found")
	// ErrExists: a key with that name or value, or a plan with that name,
	// already exists.
	ErrExists = errors.New("already exists")
	// ErrUnavailable: the backend cannot be reached (Redis down). Callers
	// apply the configured failure mode (fail_open or fail_closed).
	ErrUnavailable = errors.New("store unavailable")
)

// Key is a partner's API key. The key's value is never stored: Hash is
// the lowercase hex SHA-256 of the value, and lookups go by hash.
type Key struct {
	// ID identifies the key in logs, metrics and usage reports; it is
	// safe to show. Assigned by the caller when creating ("key_" + 16
	// lowercase base32 characters).
	ID string `json:"id"`
	// Name is the operator's name for the key, unique (e.g. "acme").
	Name string `json:"name"`
	// Hash is hex(SHA-256(value)).
	Hash string `json:"hash"`
	// Plan is the usage plan the key belongs to; "" = none (no throttle or
	// quota beyond the gateway's and the route's).
	Plan        string `json:"plan,omitempty"`
	Description string `json:"description,omitempty"`
	// Enabled false refuses the key without deleting it (AWS's enabled flag).
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt zero means never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// RevokedAt zero means not revoked. Revoked keys are kept for audit and
	// usage reports, and refused forever.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Valid reports whether k may be used at now.
func (k Key) Valid(now time.Time) bool {
	return k.Enabled && k.RevokedAt.IsZero() && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt))
}

// Plan is a usage plan: a throttle and a quota for each key in it.
type Plan struct {
	Name     string    `json:"name"`
	Throttle *Throttle `json:"throttle,omitempty"`
	Quota    *Quota    `json:"quota,omitempty"`
	// Methods override Throttle for one route, keyed "METHOD /path/{template}"
	// as API Gateway's per-method throttling ("GET /orders/{id}").
	Methods map[string]Throttle `json:"methods,omitempty"`
}

// Throttle is a token bucket: Rate tokens per second, Burst capacity.
type Throttle struct {
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
}

// Quota is Limit requests per Period ("DAY", "WEEK" or "MONTH", UTC),
// shifted by Offset as API Gateway's usage plans do.
type Quota struct {
	Limit  int64  `json:"limit"`
	Period string `json:"period"`
	Offset int    `json:"offset,omitempty"`
}

// Decision is a throttle's answer for one request.
type Decision struct {
	Allowed bool
	// Remaining is how many more requests the bucket would allow now.
	Remaining int
	// RetryAfter is how long until one request would be allowed; 0 when
	// Allowed.
	RetryAfter time.Duration
	// Reset is how long until the bucket is full again.
	Reset time.Duration
}

// QuotaDecision is a quota's answer for one request.
type QuotaDecision struct {
	Allowed bool
	// Used is the count in the window after this request (not counting a
	// refused one).
	Used int64
}

// Window is one quota period of one key, e.g. key_x's MONTH starting
// 2026-11-01T00:00Z.
type Window struct {
	Start, End time.Time
	Limit      int64
}

// Store is where keys, plans and counters live. Implementations are safe
// for concurrent use. Every method may return ErrUnavailable.
type Store interface {
	// CreateKey stores k; ErrExists if its Name or Hash is taken.
	CreateKey(ctx context.Context, k Key) error
	// UpdateKey replaces the key with k.Name (enable, disable, revoke,
	// change plan); ErrNotFound if there is none. Name and Hash never change.
	UpdateKey(ctx context.Context, k Key) error
	// KeyByHash finds a key by hex SHA-256 of its value.
	KeyByHash(ctx context.Context, hash string) (Key, error)
	// KeyByName finds a key by name.
	KeyByName(ctx context.Context, name string) (Key, error)
	// ListKeys returns every key, revoked ones included, sorted by name.
	ListKeys(ctx context.Context) ([]Key, error)

	// PutPlan creates or replaces the plan p.Name.
	PutPlan(ctx context.Context, p Plan) error
	// Plan finds a plan by name.
	Plan(ctx context.Context, name string) (Plan, error)
	// ListPlans returns every plan, sorted by name.
	ListPlans(ctx context.Context) ([]Plan, error)
	// DeletePlan removes a plan; ErrNotFound if there is none.
	DeletePlan(ctx context.Context, name string) error

	// Allow takes one token from the bucket named bucket, refilled at rate
	// per second up to burst (GCRA). A refused request takes nothing.
	// Replicas sharing a redis store share the bucket exactly.
	Allow(ctx context.Context, bucket string, t Throttle) (Decision, error)
	// Consume counts one request of keyID: always in the key's usage for
	// the UTC day of now, and, if w is not nil, against the quota window w,
	// which refuses (and counts nothing) once Limit is reached.
	Consume(ctx context.Context, keyID string, w *Window, now time.Time) (QuotaDecision, error)
	// QuotaUsed is the count of keyID in window w so far.
	QuotaUsed(ctx context.Context, keyID string, w Window) (int64, error)
	// Usage returns keyID's request counts per UTC day ("2006-01-02") from
	// from to to inclusive, as API Gateway's get-usage; days without
	// requests are omitted.
	Usage(ctx context.Context, keyID string, from, to time.Time) (map[string]int64, error)

	// Close flushes what is buffered (bolt's counters) and releases the
	// backend. The store must not be used afterwards.
	Close() error
}

// BucketCheck is one token bucket for Meter to take a token from.
type BucketCheck struct {
	Bucket   string
	Throttle Throttle
}

// MeterResult is Meter's answer for one request.
type MeterResult struct {
	// Decisions has one entry per bucket checked, in order; checking
	// stops at the first refusal, whose decision is the last entry.
	Decisions []Decision
	// Refused is the index of the bucket that refused, or -1.
	Refused int
	// Quota is Consume's answer; valid only when Counted.
	Quota QuotaDecision
	// Counted reports that Consume ran: no bucket refused and a key ID
	// was given.
	Counted bool
}

// Meter is an optional capability of a Store: every limit of one request
// in one call, which for a networked backend is one round trip instead of
// one per bucket plus one for the quota.
type Meter interface {
	// Meter takes one token from each bucket in order (as Allow), stopping
	// at the first refusal; then, only if none refused and keyID is not
	// "", it does what Consume(ctx, keyID, w, now) does. The outcome is
	// that of those calls made one after another: a refused bucket takes
	// nothing, the buckets before it keep the tokens they gave, and a
	// refused request is never counted. The buckets' names are distinct
	// (the Redis store reads every bucket once, before any is taken from).
	Meter(ctx context.Context, buckets []BucketCheck, keyID string, w *Window, now time.Time) (MeterResult, error)
}

// MeterByParts does what Meter promises by calling s.Allow for each bucket
// and then s.Consume. Backends whose calls are in-process (memory, bolt)
// implement Meter with it: one round trip would buy them nothing.
func MeterByParts(ctx context.Context, s Store, buckets []BucketCheck, keyID string, w *Window, now time.Time) (MeterResult, error) {
	res := MeterResult{Refused: -1}
	if len(buckets) > 0 {
		res.Decisions = make([]Decision, 0, len(buckets))
	}
	for i, b := range buckets {
		d, err := s.Allow(ctx, b.Bucket, b.Throttle)
		if err != nil {
			return MeterResult{Refused: -1}, err
		}
		res.Decisions = append(res.Decisions, d)
		if !d.Allowed {
			res.Refused = i
			return res, nil
		}
	}
	if keyID == "" {
		return res, nil
	}
	q, err := s.Consume(ctx, keyID, w, now)
	if err != nil {
		return MeterResult{Refused: -1}, err
	}
	res.Quota, res.Counted = q, true
	return res, nil
}
