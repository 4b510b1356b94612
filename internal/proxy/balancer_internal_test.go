package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

// TestReleaseOnCloseAfterDeadline: a body that ends cleanly after the
// route timeout is reported as cut off, so ReverseProxy aborts the
// partner's response instead of ending it as complete. The race that
// produces it through a real backend is covered by TestTimeoutDuringBody,
// which only fails some of the time.
func TestReleaseOnCloseAfterDeadline(t *testing.T) {
	t.Parallel()
	pool, err := upstream.NewPool(upstream.PoolOptions{Name: "u", Targets: []string{"https://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	target := pool.Targets()[0]
	expired, cancel := context.WithDeadline(t.Context(), time.Unix(0, 0))
	defer cancel()
	tests := []struct {
		desc    string
		ctx     context.Context
		wantErr error
	}{
		{desc: "before the deadline", ctx: t.Context()},
		{desc: "after the deadline", ctx: expired, wantErr: context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			target.Acquire()
			body := releaseOnClose(tc.ctx, io.NopCloser(strings.NewReader("start")), target)
			got, err := io.ReadAll(body)
			body.Close()
			if string(got) != "start" || !errors.Is(err, tc.wantErr) {
				t.Errorf("ReadAll(body): got %q, %v, want %q, %v", got, err, "start", tc.wantErr)
			}
			if n := target.InFlight(); n != 0 {
				t.Errorf("InFlight() after Close: got %d, want 0", n)
			}
		})
	}
}

// TestClosedUnderWrite: only a write that found the connection gone
// (broken pipe, reset, closed under it) counts; reads, timeouts and other
// errors do not.
func TestClosedUnderWrite(t *testing.T) {
	wrap := func(op string, err error) error {
		return fmt.Errorf("upstream: %w", &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, err)})
	}
	tests := []struct {
		desc string
		err  error
		want bool
	}{
		{"write: broken pipe", wrap("write", syscall.EPIPE), true},
		{"write: connection reset", wrap("write", syscall.ECONNRESET), true},
		{"read: connection reset", wrap("read", syscall.ECONNRESET), false},
		{"write: timeout", wrap("write", os.ErrDeadlineExceeded), false},
		{"use of closed network connection", fmt.Errorf("upstream: %w", net.ErrClosed), true},
		{"EOF", io.EOF, false},
		{"context canceled", context.Canceled, false},
	}
	for _, tt := range tests {
		if got := closedUnderWrite(tt.err); got != tt.want {
			t.Errorf("closedUnderWrite(%s) = %v, want %v", tt.desc, got, tt.want)
		}
	}
}

func TestSafeToResend(t *testing.T) {
	body := io.NopCloser(strings.NewReader("x"))
	getBody := func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("x")), nil }
	tests := []struct {
		method  string
		body    io.ReadCloser
		getBody func() (io.ReadCloser, error)
		want    bool
	}{
		{"GET", nil, nil, true},
		{"HEAD", http.NoBody, nil, true},
		{"OPTIONS", nil, nil, true},
		{"GET", body, getBody, true},
		{"GET", body, nil, false},
		{"PUT", nil, nil, false},
		{"DELETE", nil, nil, false},
		{"POST", body, getBody, false},
	}
	for _, tt := range tests {
		req := &http.Request{Method: tt.method, Body: tt.body, GetBody: tt.getBody}
		if got := safeToResend(req); got != tt.want {
			t.Errorf("safeToResend(%s, body %v, GetBody %v) = %v, want %v", tt.method, tt.body != nil, tt.getBody != nil, got, tt.want)
		}
	}
}
