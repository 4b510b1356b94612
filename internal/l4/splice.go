package l4

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// errIdle ends a connection that carried no bytes either way for the idle
// timeout.
var errIdle = errors.New("idle timeout")

// errAborted ends the direction that was cut off because the other one
// failed or idled out: it is never the cause.
var errAborted = errors.New("aborted: the other direction ended the connection")

// splicer copies bytes both ways between a client and a target until both
// directions are done, passing a half-close on: when one side finishes
// sending (EOF), the other side's writing half is shut, and the opposite
// direction goes on until it finishes too.
type splicer struct {
	client, target net.Conn
	idle           time.Duration
	// onCopy is called with bytes copied client to target (in) and target
	// to client (out), as they flow.
	onCopy func(in, out int64)

	lastActive atomic.Int64 // unix nanoseconds of the last byte either way
	in, out    atomic.Int64
	aborted    atomic.Bool
}

// run copies until both directions end, or one fails or idles out, and
// returns the first error (nil for a clean close both ways). It does not
// close the connections.
func (s *splicer) run() error {
	s.lastActive.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	abort := sync.OnceFunc(func() {
		s.aborted.Store(true)
		// Unblock the other direction: a failed or idle connection is
		// over both ways.
		s.client.SetDeadline(time.Unix(1, 0))
		s.target.SetDeadline(time.Unix(1, 0))
	})
	half := func(dst, src net.Conn, in bool) {
		err := s.copy(dst, src, in)
		if err != nil {
			abort()
		}
		errs <- err
	}
	wg.Go(func() { half(s.target, s.client, true) })
	wg.Go(func() { half(s.client, s.target, false) })
	wg.Wait()
	close(errs)
	var first error
	for err := range errs {
		if err != nil && (first == nil || errors.Is(first, errAborted)) {
			first = err // the cause, not the abort it led to
		}
	}
	return first
}

// copy is one direction. Reads wait at most the idle timeout; a read that
// times out while the other direction moved bytes recently waits again.
// count records n bytes copied client to target (in) or back.
func (s *splicer) count(n int64, in bool) {
	if in {
		s.in.Add(n)
		s.onCopy(n, 0)
	} else {
		s.out.Add(n)
		s.onCopy(0, n)
	}
}

func (s *splicer) copy(dst, src net.Conn, in bool) error {
	buf := make([]byte, copyBufferBytes)
	for {
		src.SetReadDeadline(time.Now().Add(s.idle))
		if s.aborted.Load() {
			// Checked after setting the deadline: abort's own deadline
			// may have come just before, and been overwritten.
			return errAborted
		}
		nr, rerr := src.Read(buf)
		if nr > 0 {
			now := time.Now()
			s.lastActive.Store(now.UnixNano())
			dst.SetWriteDeadline(now.Add(s.idle))
			nw, werr := dst.Write(buf[:nr])
			s.count(int64(nw), in)
			if werr != nil {
				if s.aborted.Load() && errors.Is(werr, os.ErrDeadlineExceeded) {
					return errAborted
				}
				return werr
			}
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF):
			closeWrite(dst)
			return nil
		case errors.Is(rerr, os.ErrDeadlineExceeded):
			if s.aborted.Load() {
				return errAborted
			}
			if since := time.Since(time.Unix(0, s.lastActive.Load())); since < s.idle {
				continue
			}
			return errIdle
		default:
			return rerr
		}
	}
}

// closeWrite shuts the writing half of c: for TLS, a close_notify alert
// and then the TCP half-close under it, so the peer reads EOF either way.
// A connection that cannot half-close is left open until both directions
// end.
func closeWrite(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		tc.CloseWrite()
		c = tc.NetConn()
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
