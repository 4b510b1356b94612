package proxy

import (
	"context"
	"errors"
	"io"
	"strings"
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
