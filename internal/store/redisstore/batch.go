package redisstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Metering runs on every partner request, so under load many Meter calls
// are waiting on Redis at once. Sent one by one, each costs a write and a
// read system call on both sides and a wake-up of redis-server; sent as one
// pipeline they share them. The batcher forms batches without a timer:
// while a pipeline is out, the calls that arrive queue up and leave
// together as the next one, so a lone call waits for nothing and a busy
// gateway sends fewer, fuller pipelines. Each script still runs atomically
// on the server, so batching changes no count.
const (
	// meterWorkers is how many pipelines may be out at once. Two keep one
	// slow reply from holding every request; more split the same calls
	// into smaller batches (measured on the bench: 4 workers averaged 4.5
	// calls a pipeline, 2 workers 7, and 2 with the yield in work 9).
	meterWorkers = 2
	// maxMeterBatch bounds one pipeline, so one batch cannot hold a very
	// large reply or starve the other workers.
	maxMeterBatch = 128
)

// meterCall is one Meter call waiting for its batch. done is closed once
// res or err is set; a caller that gave up (its context ended) never reads
// them, so the worker may write them at any time.
//
// The store's timeout is a deadline on the call rather than a context of
// its own: a timer per request cost more than the rest of Meter's own
// work. The workers keep it instead (see send), so the caller only waits
// for done or for its own context.
type meterCall struct {
	ctx      context.Context // the caller's: a call it gave up on is not sent
	deadline time.Time       // the store's timeout, from when the call was made
	args     []any           // the EVALSHA command but for reps, with room for it
	n        int             // buckets checked, to split a group's reply
	res      []int64
	err      error
	done     chan struct{}
}

// meterBatcher feeds Meter calls to meterWorkers goroutines, each of which
// sends whatever is queued as one pipeline of EVALSHAs.
type meterBatcher struct {
	s      *Store
	client redis.UniversalClient
	calls  chan *meterCall
	quit   chan struct{}
	start  sync.Once
	wg     sync.WaitGroup

	// mu orders enqueueing (read-locked) against close (locked), so that
	// nothing is queued after close has drained the queue.
	mu     sync.RWMutex
	closed bool
}

// newMeterBatcher sends through client, which must not retry: go-redis
// resends a whole pipeline when a connection fails after some replies
// were read, and every script that had replied would count twice (see
// also noRetry, for Cluster clients).
func newMeterBatcher(s *Store, client redis.UniversalClient) *meterBatcher {
	return &meterBatcher{s: s, client: client, calls: make(chan *meterCall, meterWorkers*maxMeterBatch), quit: make(chan struct{})}
}

// errStoreClosed answers calls made after Close.
var errStoreClosed = errors.New("redis store closed")

// meterTimeout answers a call that could not be sent and answered within
// the store's timeout; it wraps context.DeadlineExceeded, so the store
// counts it as Redis being unavailable, as it does a timed-out command.
func (b *meterBatcher) meterTimeout() error {
	return fmt.Errorf("metering call not answered within the store timeout (%v): %w", b.s.timeout, context.DeadlineExceeded)
}

// run sends one call and waits for its result. The workers start on the
// first call, so a store that never meters runs no goroutine.
func (b *meterBatcher) run(ctx context.Context, args []any, n int) ([]int64, error) {
	c := &meterCall{ctx: ctx, deadline: time.Now().Add(b.s.timeout), args: args, n: n, done: make(chan struct{})}
	if err := b.enqueue(c); err != nil {
		return nil, err
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close stops the workers. Calls still queued are answered with
// errStoreClosed.
func (b *meterBatcher) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	close(b.quit)
	b.mu.Unlock()
	b.wg.Wait()
	for {
		select {
		case c := <-b.calls:
			c.err = errStoreClosed
			close(c.done)
		default:
			return
		}
	}
}

// enqueue queues c, starting the workers on the first call, unless the
// batcher is closed, or c's context or deadline ends first.
func (b *meterBatcher) enqueue(c *meterCall) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return errStoreClosed
	}
	b.start.Do(func() {
		for range meterWorkers {
			b.wg.Go(b.work)
		}
	})
	select {
	case b.calls <- c:
		return nil
	default:
	}
	// The queue is full: Redis is slow or the gateway is overloaded. Only
	// here does a call need a timer of its own.
	t := time.NewTimer(time.Until(c.deadline))
	defer t.Stop()
	select {
	case b.calls <- c:
		return nil
	case <-c.ctx.Done():
		return c.ctx.Err()
	case <-t.C:
		return b.meterTimeout()
	}
}

func (b *meterBatcher) work() {
	batch := make([]*meterCall, 0, maxMeterBatch)
	for {
		select {
		case <-b.quit:
			return
		case c := <-b.calls:
			batch = append(batch[:0], c)
		}
		// The call that woke this worker made it runnable next, ahead of
		// the request goroutines already runnable, which would queue
		// their own calls if they ran first. Yielding lets them: a busy
		// gateway fills the batch, an idle one loses a scheduler pass.
		runtime.Gosched()
	fill:
		for len(batch) < maxMeterBatch {
			select {
			case c := <-b.calls:
				batch = append(batch, c)
			default:
				break fill
			}
		}
		b.send(batch)
		clear(batch)
	}
}

// send runs batch as one pipeline. Calls whose caller gave up, or whose
// deadline passed, while they were queued are answered and left out: the
// caller has already applied (or is about to apply) the failure mode, and
// counting them now would count a request that was refused or let through
// uncounted.
//
// The pipeline's deadline is the earliest of its calls', so every call is
// answered by its deadline: calls leave the queue in order, all with the
// same timeout, so a worker still busy with an earlier batch frees up by
// the time a queued call's deadline comes, and a call found past it is
// answered at once. A call with less than a quarter of its time left
// (it queued behind a slow Redis) is answered as timed out too, rather
// than hold the fresh calls of its batch to its own short deadline.
func (b *meterBatcher) send(batch []*meterCall) {
	live := batch[:0:0]
	now := time.Now()
	minLeft := b.s.timeout / 4
	var deadline time.Time
	for _, c := range batch {
		err := c.ctx.Err()
		if err == nil && c.deadline.Sub(now) < minLeft {
			err = b.meterTimeout()
		}
		if err != nil {
			c.err = err
			close(c.done)
			continue
		}
		if deadline.IsZero() || c.deadline.Before(deadline) {
			deadline = c.deadline
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	groups := groupCalls(live)
	b.pipeline(ctx, groups)
	var again []*meterGroup
	for _, g := range groups {
		res, err := g.cmd.Result()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			again = append(again, g)
			continue
		}
		g.answer(res, err)
	}
	if len(again) > 0 {
		// Redis restarted or was flushed since the script was cached:
		// load it once (on every master of a Cluster), then send only
		// those groups again, still as one pipeline.
		if err := meterScript.Load(ctx, b.client).Err(); err != nil {
			for _, g := range again {
				g.answer(nil, err)
			}
		} else {
			b.pipeline(ctx, again)
			for _, g := range again {
				g.answer(g.cmd.Result())
			}
		}
	}
	for _, c := range live {
		close(c.done)
	}
}

// meterGroup is calls of one batch with the same arguments: the same
// buckets and limits, key, window and day, as a busy partner's requests
// are. They go as one run of meterScript that meters each in turn, which
// is what as many runs in a row would do, for one command's work on both
// sides.
type meterGroup struct {
	calls []*meterCall
	cmd   *redis.IntSliceCmd
}

// maxGroupScan bounds how many groups a call is compared with, so that a
// batch of many different keys costs little to group.
const maxGroupScan = 8

func groupCalls(live []*meterCall) []*meterGroup {
	groups := make([]*meterGroup, 0, len(live))
next:
	for _, c := range live {
		for _, g := range groups[max(0, len(groups)-maxGroupScan):] {
			if sameArgs(g.calls[0].args, c.args) {
				g.calls = append(g.calls, c)
				continue next
			}
		}
		groups = append(groups, &meterGroup{calls: []*meterCall{c}})
	}
	return groups
}

// sameArgs compares two calls' arguments: strings and numbers, which
// compare by value inside an interface.
func sameArgs(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// answer splits the group's reply into one result per call, each trimmed
// to the buckets its request checked, as meterResult reads them.
func (g *meterGroup) answer(res []int64, err error) {
	if err == nil {
		err = g.split(res)
	}
	if err != nil {
		for _, c := range g.calls {
			c.res, c.err = nil, err
		}
	}
}

func (g *meterGroup) split(res []int64) error {
	n := g.calls[0].n
	block := 4 + 4*n
	if len(res) != len(g.calls)*block {
		return fmt.Errorf("unexpected script result: %d values for %d requests of %d buckets", len(res), len(g.calls), n)
	}
	for i, c := range g.calls {
		r := res[i*block : (i+1)*block : (i+1)*block]
		checked := n
		if r[0] >= 0 {
			checked = int(r[0]) + 1
		}
		if r[0] < -1 || checked > n {
			return fmt.Errorf("unexpected script result: request %d refused by bucket %d of %d", i, r[0], n)
		}
		c.res = r[:4+4*checked]
	}
	return nil
}

// pipeline sends one EVALSHA per group in one round trip, with the
// group's size as the last argument; each command carries its own error.
// The replies are read straight into []int64 (IntSliceCmd), not through a
// []any of boxed numbers.
func (b *meterBatcher) pipeline(ctx context.Context, groups []*meterGroup) {
	pipe := b.client.Pipeline()
	for _, g := range groups {
		// The first call's args have room for reps; a retry appends it
		// again in the same place.
		args := append(g.calls[0].args, len(g.calls))
		g.cmd = redis.NewIntSliceCmd(ctx, args...)
		// The first key decides a Cluster's node; EVALSHA's is at 3.
		g.cmd.SetFirstKeyPos(3)
		_ = pipe.Process(ctx, noRetry{g.cmd})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		// A command left with neither a reply nor an error of its own
		// takes the pipeline's, so that it counts as Redis failing.
		for _, g := range groups {
			if res, cerr := g.cmd.Result(); res == nil && cerr == nil {
				g.cmd.SetErr(err)
			}
		}
	}
}

// noRetry marks a metering command as not to be sent again. The metering
// client already has retries off, but a Cluster client resends a node's
// whole pipeline after a connection fails mid-reply (MaxRetries does not
// cover that), and every script that had already run would count twice.
// Redirections (MOVED, ASK) are still followed: they mean the script did
// not run.
type noRetry struct{ *redis.IntSliceCmd }

func (noRetry) NoRetry() bool { return true }
