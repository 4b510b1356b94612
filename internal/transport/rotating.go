package transport

import (
	"net/http"
	"sync"
	"sync/atomic"
)

// Rotating is an [http.RoundTripper] whose connection pool can be replaced
// while requests run. When a host-name target moves to another address,
// closing idle connections is not enough: an HTTP/2 connection carrying a
// steady stream of requests is never idle, so every new request would
// keep going to the old address. Rotate starts a new pool for new
// requests; requests in flight finish on the old one, whose connections
// are then closed after [DefaultIdleConnTimeout] since nothing reuses
// them.
type Rotating struct {
	mu  sync.Mutex // serializes Rotate
	cur atomic.Pointer[http.Transport]
}

// NewRotating returns a Rotating that starts with t.
func NewRotating(t *http.Transport) *Rotating {
	r := &Rotating{}
	r.cur.Store(t)
	return r
}

// RoundTrip sends req through the current pool.
func (r *Rotating) RoundTrip(req *http.Request) (*http.Response, error) {
	return r.cur.Load().RoundTrip(req)
}

// Rotate replaces the pool by an empty one with the same settings and
// closes the old pool's idle connections.
func (r *Rotating) Rotate() {
	r.mu.Lock()
	old := r.cur.Load()
	// Clone copies the settings (dialers, TLS verification) and not the
	// connections, and sets up HTTP/2 afresh for the new pool.
	r.cur.Store(old.Clone())
	r.mu.Unlock()
	old.CloseIdleConnections()
}

// CloseIdleConnections closes the current pool's idle connections.
func (r *Rotating) CloseIdleConnections() {
	r.cur.Load().CloseIdleConnections()
}
