package upstream

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

// ipPool builds a pool of n IP targets that are never dialed.
func ipPool(t *testing.T, balance string, n int) *Pool {
	t.Helper()
	targets := make([]string, n)
	for i := range targets {
		targets[i] = "https://127.0.0.1:" + strconv.Itoa(10001+i)
	}
	p, err := NewPool(PoolOptions{Name: "test", Logger: quiet, Targets: targets, Balance: balance})
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	return p
}

func TestSelectSpreadsEvenly(t *testing.T) {
	for _, balance := range []string{BalanceRoundRobin, BalanceLeastRequests} {
		t.Run(balance, func(t *testing.T) {
			t.Parallel()
			p := ipPool(t, balance, 3)
			counts := map[*Target]int{}
			for range 300 {
				tg := p.Select(nil)
				if tg == nil {
					t.Fatalf("Select(nil): got nil, want a target")
				}
				counts[tg]++
			}
			for _, tg := range p.Targets() {
				if got := counts[tg]; got != 100 {
					t.Errorf("selections of %s: got %d, want 100", tg, got)
				}
			}
		})
	}
}

func TestRoundRobinConcurrent(t *testing.T) {
	p := ipPool(t, BalanceRoundRobin, 4)
	var mu sync.Mutex
	counts := map[*Target]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			local := map[*Target]int{}
			for range 1000 {
				local[p.Select(nil)]++
			}
			mu.Lock()
			for k, v := range local {
				counts[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	// One atomic counter hands out every slot exactly once.
	for _, tg := range p.Targets() {
		if got := counts[tg]; got != 2000 {
			t.Errorf("selections of %s: got %d, want 2000", tg, got)
		}
	}
}

func TestLeastRequestsPrefersIdle(t *testing.T) {
	p := ipPool(t, BalanceLeastRequests, 3)
	ts := p.Targets()
	ts[0].Acquire()
	ts[0].Acquire()
	ts[1].Acquire()
	for range 10 {
		if got := p.Select(nil); got != ts[2] {
			t.Fatalf("Select(nil) with in-flight 2,1,0: got %v, want %v", got, ts[2])
		}
	}
	ts[2].Acquire()
	ts[2].Acquire()
	if got := p.Select(nil); got != ts[1] {
		t.Errorf("Select(nil) with in-flight 2,1,2: got %v, want %v", got, ts[1])
	}
	ts[0].Release()
	ts[0].Release()
	if got, want := ts[0].InFlight(), int64(0); got != want {
		t.Errorf("InFlight() after two Release: got %d, want %d", got, want)
	}
	if got := p.Select(nil); got != ts[0] {
		t.Errorf("Select(nil) with in-flight 0,1,2: got %v, want %v", got, ts[0])
	}
}

func TestSelectSkipsUnavailable(t *testing.T) {
	tests := []struct {
		desc    string
		balance string
		down    []int // targets set unhealthy
		ejected []int // targets ejected
		tried   []int
		want    []int // targets Select may return; empty = nil
	}{
		{desc: "round robin skips unhealthy", balance: BalanceRoundRobin, down: []int{1}, want: []int{0, 2}},
		{desc: "round robin skips ejected", balance: BalanceRoundRobin, ejected: []int{0}, want: []int{1, 2}},
		{desc: "round robin skips tried", balance: BalanceRoundRobin, tried: []int{0, 2}, want: []int{1}},
		{desc: "round robin all down", balance: BalanceRoundRobin, down: []int{0, 1}, ejected: []int{2}},
		{desc: "round robin rest tried", balance: BalanceRoundRobin, down: []int{0}, tried: []int{1, 2}},
		{desc: "least requests skips unhealthy", balance: BalanceLeastRequests, down: []int{1}, want: []int{0, 2}},
		{desc: "least requests skips ejected", balance: BalanceLeastRequests, ejected: []int{0}, want: []int{1, 2}},
		{desc: "least requests skips tried", balance: BalanceLeastRequests, tried: []int{0, 2}, want: []int{1}},
		{desc: "least requests all down", balance: BalanceLeastRequests, down: []int{0, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			p, err := NewPool(PoolOptions{
				Name:    "test",
				Logger:  quiet,
				Targets: []string{"https://127.0.0.1:1", "https://127.0.0.2:1", "https://127.0.0.3:1"},
				Balance: tc.balance,
				Passive: PassiveOptions{MaxFails: 1, EjectFor: time.Hour},
			})
			if err != nil {
				t.Fatalf("NewPool: %v", err)
			}
			ts := p.Targets()
			for _, i := range tc.down {
				ts[i].SetHealthy(false)
			}
			for _, i := range tc.ejected {
				ts[i].ReportFailure()
			}
			var tried []*Target
			for _, i := range tc.tried {
				tried = append(tried, ts[i])
			}
			allowed := map[*Target]bool{}
			for _, i := range tc.want {
				allowed[ts[i]] = true
			}
			seen := map[*Target]bool{}
			for range 12 {
				got := p.Select(tried)
				if len(tc.want) == 0 {
					if got != nil {
						t.Fatalf("Select(%v): got %v, want nil", tried, got)
					}
					continue
				}
				if !allowed[got] {
					t.Fatalf("Select(%v): got %v, want one of %v", tried, got, tc.want)
				}
				seen[got] = true
			}
			if len(seen) != len(tc.want) {
				t.Errorf("Select(%v) over 12 calls: got %d distinct targets, want %d", tried, len(seen), len(tc.want))
			}
		})
	}
}

func TestSelectDoesNotAllocate(t *testing.T) {
	for _, balance := range []string{BalanceRoundRobin, BalanceLeastRequests} {
		p := ipPool(t, balance, 3)
		tried := []*Target{p.Targets()[0]}
		if n := testing.AllocsPerRun(200, func() { p.Select(tried) }); n != 0 {
			t.Errorf("%s: allocations per Select: got %v, want 0", balance, n)
		}
	}
}

func TestSelectorFunc(t *testing.T) {
	p := ipPool(t, "", 2)
	var s Selector = SelectorFunc(func(ts, _ []*Target) *Target { return ts[1] })
	if got, want := s.Select(p.Targets(), nil), p.Targets()[1]; got != want {
		t.Errorf("SelectorFunc.Select: got %v, want %v", got, want)
	}
}
