package observe

import (
	"context"
	"sync"
	"time"
)

// Record is what the access log and metrics learn about one request. The
// middleware owns it; stages below fill in their fields through the
// context. A Record is reused after the request, so stages must not keep it.
type Record struct {
	RequestID string
	Start     time.Time

	// Route is set by the matched route's handler; nil when nothing matched.
	Route *RouteMetrics

	// KeyID and Plan identify the partner's API key (never the key itself)
	// once the key check has passed; Partner names the partner when a
	// client certificate or key identified one.
	KeyID, Plan, Partner string

	// Upstream and Target name where the request went.
	Upstream string
	Target   string
	// UpstreamDuration is the time from sending to the backend until its
	// response headers arrived (or the attempt failed).
	UpstreamDuration time.Duration
	// UpstreamTLS is the TLS version negotiated with the backend.
	UpstreamTLS uint16
	// Error is a short reason when drawbridge itself answered an error,
	// e.g. "upstream tls: pin mismatch". Never holds secrets.
	Error string
}

func (r *Record) reset() { *r = Record{} }

var recordPool = sync.Pool{New: func() any { return new(Record) }}

type recordKey struct{}

// WithRecord returns ctx carrying rec.
func WithRecord(ctx context.Context, rec *Record) context.Context {
	return context.WithValue(ctx, recordKey{}, rec)
}

// RecordFrom returns the request's Record, or a throwaway one when the
// request did not come through Middleware (tests, admin), so callers need
// no nil checks.
func RecordFrom(ctx context.Context) *Record {
	if rec, ok := ctx.Value(recordKey{}).(*Record); ok {
		return rec
	}
	return &Record{}
}
