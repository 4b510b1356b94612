package upstream

import (
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond until it holds or a generous deadline passes.

func passiveTarget(t *testing.T, o PassiveOptions) *Target {
	t.Helper()
	p, err := NewPool(PoolOptions{Name: "test", Logger: quiet, Targets: []string{"https://127.0.0.1:1"}, Passive: o})
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	return p.Targets()[0]
}

func TestPassiveEjection(t *testing.T) {
	tg := passiveTarget(t, PassiveOptions{MaxFails: 3, FailWindow: time.Minute, EjectFor: 50 * time.Millisecond})
	tg.ReportFailure()
	tg.ReportFailure()
	if tg.Ejected() || !tg.Available() {
		t.Fatalf("after 2 of 3 failures: Ejected()=%v Available()=%v, want false, true", tg.Ejected(), tg.Available())
	}
	tg.ReportFailure()
	if !tg.Ejected() || tg.Available() {
		t.Fatalf("after 3 of 3 failures: Ejected()=%v Available()=%v, want true, false", tg.Ejected(), tg.Available())
	}
	if !tg.Healthy() {
		t.Errorf("Healthy() after ejection: got false, want true (ejection is not health)")
	}
	waitFor(t, "ejection to expire", func() bool { return !tg.Ejected() })
	if !tg.Available() {
		t.Errorf("Available() after ejection expired: got false, want true")
	}
	// The count restarted at ejection: one more failure must not eject again.
	tg.ReportFailure()
	if tg.Ejected() {
		t.Errorf("Ejected() after 1 failure following an expired ejection: got true, want false")
	}
}

func TestPassiveReportSuccessResets(t *testing.T) {
	tg := passiveTarget(t, PassiveOptions{MaxFails: 3, FailWindow: time.Minute, EjectFor: time.Minute})
	tg.ReportFailure()
	tg.ReportFailure()
	tg.ReportSuccess()
	tg.ReportFailure()
	tg.ReportFailure()
	if tg.Ejected() {
		t.Fatalf("Ejected() after 2 failures, success, 2 failures: got true, want false")
	}
	tg.ReportFailure()
	if !tg.Ejected() {
		t.Errorf("Ejected() after 3 consecutive failures: got false, want true")
	}
	// Success does not cut an ejection short.
	tg.ReportSuccess()
	if !tg.Ejected() {
		t.Errorf("Ejected() after ReportSuccess during ejection: got false, want true")
	}
}

func TestPassiveFailWindow(t *testing.T) {
	tg := passiveTarget(t, PassiveOptions{MaxFails: 2, FailWindow: 20 * time.Millisecond, EjectFor: time.Minute})
	tg.ReportFailure()
	time.Sleep(40 * time.Millisecond) // longer only makes the first failure older
	tg.ReportFailure()
	if tg.Ejected() {
		t.Errorf("Ejected() with failures further apart than FailWindow: got true, want false")
	}
}

func TestPassiveDisabled(t *testing.T) {
	tg := passiveTarget(t, PassiveOptions{})
	for range 100 {
		tg.ReportFailure()
	}
	if tg.Ejected() {
		t.Errorf("Ejected() with MaxFails 0: got true, want false")
	}
}

func TestHealthy(t *testing.T) {
	tg := passiveTarget(t, PassiveOptions{})
	if !tg.Healthy() || !tg.Available() {
		t.Fatalf("new target: Healthy()=%v Available()=%v, want true, true", tg.Healthy(), tg.Available())
	}
	tg.SetHealthy(false)
	if tg.Healthy() || tg.Available() {
		t.Errorf("after SetHealthy(false): Healthy()=%v Available()=%v, want false, false", tg.Healthy(), tg.Available())
	}
	tg.SetHealthy(true)
	if !tg.Available() {
		t.Errorf("after SetHealthy(true): Available()=false, want true")
	}
}

func TestTargetAddressing(t *testing.T) {
	tests := []struct {
		desc      string
		raw       string
		wantURL   string
		wantStr   string
		wantAddrs []string
	}{
		{desc: "ipv4", raw: "https://10.0.0.5:8443", wantURL: "https://10.0.0.5:8443", wantStr: "10.0.0.5:8443", wantAddrs: []string{"10.0.0.5:8443"}},
		{desc: "ipv6", raw: "https://[::1]:443", wantURL: "https://[::1]:443", wantStr: "[::1]:443", wantAddrs: []string{"[::1]:443"}},
		{desc: "default https port", raw: "https://10.0.0.5", wantURL: "https://10.0.0.5:443", wantStr: "10.0.0.5:443", wantAddrs: []string{"10.0.0.5:443"}},
		{desc: "default http port", raw: "http://10.0.0.5/", wantURL: "http://10.0.0.5:80", wantStr: "10.0.0.5:80", wantAddrs: []string{"10.0.0.5:80"}},
		{desc: "host name unresolved", raw: "https://LB.corp.internal:443", wantURL: "https://lb.corp.internal:443", wantStr: "lb.corp.internal:443"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			p, err := NewPool(PoolOptions{Name: "test", Logger: quiet, Targets: []string{tc.raw}})
			if err != nil {
				t.Fatalf("NewPool(%q): %v", tc.raw, err)
			}
			tg := p.Targets()[0]
			if got := tg.URL().String(); got != tc.wantURL {
				t.Errorf("URL(): got %q, want %q", got, tc.wantURL)
			}
			if got := tg.String(); got != tc.wantStr {
				t.Errorf("String(): got %q, want %q", got, tc.wantStr)
			}
			if got := tg.Addrs(); !slices.Equal(got, tc.wantAddrs) {
				t.Errorf("Addrs(): got %q, want %q", got, tc.wantAddrs)
			}
		})
	}
}

var waitFor = testutil.WaitFor

// TestTryAcquire: concurrent callers never pass the limit together, and
// a limit of 0 means none.
func TestTryAcquire(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		limit, callers, want int64
	}{
		{limit: 3, callers: 50, want: 3},
		{limit: 1, callers: 50, want: 1},
		{limit: 0, callers: 50, want: 50},
	} {
		tg := passiveTarget(t, PassiveOptions{})
		var wg sync.WaitGroup
		var got atomic.Int64
		for range tc.callers {
			wg.Go(func() {
				if tg.TryAcquire(tc.limit) {
					got.Add(1)
				}
			})
		}
		wg.Wait()
		if got.Load() != tc.want || tg.InFlight() != tc.want {
			t.Errorf("limit %d, %d callers: %d acquired, %d in flight; want %d", tc.limit, tc.callers, got.Load(), tg.InFlight(), tc.want)
		}
	}
}
