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
	mu      sync.Mutex // serializes Rotate and guards retired
	cur     atomic.Pointer[http.Transport]
	retired []*http.Transport // newest last, at most maxRetired
}

// maxRetired bounds the old pools kept to have their idle connections
// closed; an older one is let go after a last close, its connections
// still busy then expiring idle on their own.
const maxRetired = 4

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
	defer r.mu.Unlock()
	old := r.cur.Load()
	// Clone copies the settings (dialers, TLS verification) and not the
	// connections, and sets up HTTP/2 afresh for the new pool.
	r.cur.Store(old.Clone())
	r.retired = append(r.retired, old)
	if len(r.retired) > maxRetired {
		r.retired[0].CloseIdleConnections()
		r.retired = r.retired[1:]
	}
	// Connections of older pools that finished their requests since the
	// last rotation are idle now; close them too.
	for _, t := range r.retired {
		t.CloseIdleConnections()
	}
}

// CloseIdleConnections closes the idle connections of the current pool
// and of the retired ones.
func (r *Rotating) CloseIdleConnections() {
	r.cur.Load().CloseIdleConnections()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.retired {
		t.CloseIdleConnections()
	}
}
