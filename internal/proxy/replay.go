package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
)

// maxReplayBody is the largest request body kept so that a request can be
// sent again. Bodies are small in the APIs drawbridge fronts; a bigger one
// (or one of unknown length) is simply never resent.
const maxReplayBody = 64 << 10

// A backend that closes a kept-alive connection (a reload of the on-prem
// nginx does, and so does any idle timeout) races with the next request
// written to it: the write fails before the backend read anything. net/http
// resends such a request on a new connection by itself, but only when it
// can rewind the body, through Request.GetBody, which a proxied request has
// not got. makeReplayable gives it one for bodies up to maxReplayBody: the
// bytes are recorded as the transport first reads them, so nothing is read
// ahead or buffered before the request is sent. net/http still decides
// whether a resend is safe (nothing written, or an idempotent method on a
// connection the server closed).
//
// Only idempotent methods get one: net/http also resends a POST or PATCH
// that has GetBody and an Idempotency-Key header, after the backend may
// have acted on it, and that is the partner's call, not the gateway's.
func makeReplayable(out *http.Request) {
	if out.Body == nil || out.Body == http.NoBody || out.GetBody != nil ||
		out.ContentLength <= 0 || out.ContentLength > maxReplayBody {
		return
	}
	switch out.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
	default:
		return
	}
	rb := &replayBody{src: out.Body, seen: make([]byte, 0, out.ContentLength)}
	out.Body = rb
	out.GetBody = rb.replay
}

// replayBody reads the partner's body once, keeping what it read, so that
// replay can hand the transport a fresh reader over the same bytes.
type replayBody struct {
	mu   sync.Mutex
	src  io.ReadCloser
	seen []byte
	err  error // the source's final error (io.EOF when it is all read)
}

func (b *replayBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.src.Read(p)
	if len(b.seen)+n > maxReplayBody {
		// The length was declared; a body longer than that is the
		// server's to refuse. Do not keep more than the limit.
		b.err = errBodyTooLong
		return n, b.err
	}
	b.seen = append(b.seen, p[:n]...)
	if err != nil {
		b.err = err
	}
	return n, err
}

// Close does not close the partner's body: the transport closes a body
// before it asks GetBody for the next one, and the rest of the body must
// still be readable then. The server closes it when the handler returns.
func (b *replayBody) Close() error { return nil }

// replay returns a reader over the bytes read so far followed by the rest
// of the body, recorded in turn.
func (b *replayBody) replay() (io.ReadCloser, error) {
	b.mu.Lock()
	seen := bytes.Clone(b.seen)
	b.mu.Unlock()
	return &replayReader{prefix: bytes.NewReader(seen), rest: b}, nil
}

type replayReader struct {
	prefix *bytes.Reader
	rest   *replayBody
}

func (r *replayReader) Read(p []byte) (int, error) {
	if r.prefix.Len() > 0 {
		return r.prefix.Read(p)
	}
	return r.rest.Read(p)
}

func (r *replayReader) Close() error { return r.rest.Close() }

var errBodyTooLong = errors.New("request body longer than its Content-Length")
