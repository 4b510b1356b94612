package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

// balancer is the RoundTripper under ReverseProxy: it picks a target,
// sends the request through the verified transport, reports connect
// failures to the target (passive health), and retries on another target
// when that is safe.
type balancer struct {
	pool    *upstream.Pool
	next    http.RoundTripper
	metrics *observe.UpstreamMetrics
}

// maxAttempts bounds retries so a large pool of dead targets cannot hold a
// request for many dial timeouts.
const maxAttempts = 3

// RoundTrip modifies req.URL.Host: req is ReverseProxy's own outbound copy,
// never the partner's request, and nothing else holds it.
func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := observe.RecordFrom(req.Context())
	var triedBuf [maxAttempts]*upstream.Target
	tried := triedBuf[:0]
	var lastErr error
	var again *upstream.Target // resend on this target, over a new connection
	for len(tried) < maxAttempts {
		t := again
		if t == nil {
			t = b.pool.Select(tried)
		}
		if t == nil {
			break
		}
		if lastErr != nil && req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
			// The transport closed the body after the failed attempt.
			body, err := req.GetBody()
			if err != nil {
				return nil, lastErr
			}
			req.Body = body
		}
		if again == nil {
			tried = append(tried, t)
		}
		again = nil
		req.URL.Scheme, req.URL.Host = t.URL().Scheme, t.URL().Host
		rec.Target = t.String()

		t.Acquire()
		start := time.Now()
		resp, err := b.next.RoundTrip(req)
		rec.UpstreamDuration = time.Since(start)
		if err == nil {
			t.ReportSuccess()
			if b.metrics != nil {
				b.metrics.ObserveDuration(rec.UpstreamDuration)
			}
			if resp.TLS != nil {
				rec.UpstreamTLS = resp.TLS.Version
			}
			resp.Body = releaseOnClose(req.Context(), resp.Body, t)
			return resp, nil
		}
		t.Release()
		if !isConnectFailure(err) {
			// A backend that closes a kept-alive connection as a request
			// is written to it (an nginx reload closes its idle ones)
			// fails the write. A safe request is sent once more, on a new
			// connection to the same target; anything else may have been
			// acted on and is the partner's to retry.
			if lastErr == nil && closedUnderWrite(err) && safeToResend(req) && req.Context().Err() == nil {
				lastErr, again = err, t
				continue
			}
			return nil, err
		}
		lastErr = err
		t.ReportFailure()
		if b.metrics != nil {
			b.metrics.Error(connectReason(err))
		}
		if !retryable(req) || req.Context().Err() != nil {
			return nil, err
		}
	}
	if lastErr == nil {
		return nil, errNoTarget
	}
	return nil, lastErr
}

// closedUnderWrite reports whether err is the backend's end of the
// connection going away while the request was being written: a broken
// pipe or a reset, or the transport having closed the connection on
// reading the backend's close while the write was under way.
func closedUnderWrite(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "write" &&
		(errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET))
}

// safeToResend reports whether req is safe (RFC 9110, section 9.2.1: GET,
// HEAD, OPTIONS) and its body, if any, can be sent again.
func safeToResend(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return retryable(req)
	}
	return false
}

// retryable reports whether req may be sent again after a connect failure.
// Only idempotent methods are (RFC 9110, section 9.2.2), and only because a
// connect failure means no byte of the request reached a backend.
func retryable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	}
	return false
}

// releaseOnClose ends the target's in-flight count when ReverseProxy has
// copied the whole response, so least_requests sees streaming responses
// as busy for as long as they stream. The body of a 101 Switching
// Protocols response is writable, and ReverseProxy needs it to stay so.
//
// It also turns an end of body after ctx (the route timeout) is done into
// ctx's error. When the deadline closes the backend connection, a backend
// that ends its response on noticing (it gets our TLS close_notify before
// the close) can get its last chunk through, and net/http then reports a
// clean EOF: ReverseProxy would end the partner's truncated response as if
// it were complete instead of aborting it.
func releaseOnClose(ctx context.Context, body io.ReadCloser, t *upstream.Target) io.ReadCloser {
	r := &releasingBody{ReadCloser: body, target: t, ctx: ctx}
	if rw, ok := body.(io.ReadWriteCloser); ok {
		return &releasingRWBody{releasingBody: r, w: rw}
	}
	return r
}

type releasingBody struct {
	io.ReadCloser
	target *upstream.Target
	ctx    context.Context
	once   sync.Once
}

func (r *releasingBody) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err == io.EOF {
		if cerr := r.ctx.Err(); cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

func (r *releasingBody) Close() error {
	r.once.Do(r.target.Release)
	return r.ReadCloser.Close()
}

type releasingRWBody struct {
	*releasingBody
	w io.Writer
}

// Read passes the upgraded connection's EOF on as is: ReverseProxy ends
// the switched connection itself when ctx is done, and would answer an
// error from here with an error response on a hijacked connection.
func (r *releasingRWBody) Read(p []byte) (int, error) { return r.ReadCloser.Read(p) }

func (r *releasingRWBody) Write(p []byte) (int, error) { return r.w.Write(p) }
