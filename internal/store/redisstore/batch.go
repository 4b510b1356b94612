package redisstore

import (
	"context"
	"errors"
	"sync"

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
	// meterWorkers is how many pipelines may be out at once. More than one
	// keeps a slow reply from holding every request; few keep batches full.
	meterWorkers = 4
	// maxMeterBatch bounds one pipeline, so one batch cannot hold a very
	// large reply or starve the other workers.
	maxMeterBatch = 128
)

// meterCall is one Meter call waiting for its batch. done is closed once
// res or err is set; a caller that gave up (its context ended) never reads
// them, so the worker may write them at any time.
type meterCall struct {
	keys []string
	args []any
	res  []int64
	err  error
	done chan struct{}
}

// meterBatcher feeds Meter calls to meterWorkers goroutines, each of which
// sends whatever is queued as one pipeline of EVALSHAs.
type meterBatcher struct {
	s     *Store
	calls chan *meterCall
	quit  chan struct{}
	start sync.Once
	stop  sync.Once
	wg    sync.WaitGroup
}

func newMeterBatcher(s *Store) *meterBatcher {
	return &meterBatcher{s: s, calls: make(chan *meterCall, meterWorkers*maxMeterBatch), quit: make(chan struct{})}
}

// errStoreClosed answers calls made after Close.
var errStoreClosed = errors.New("redis store closed")

// run sends one call and waits for its result. The workers start on the
// first call, so a store that never meters runs no goroutine.
func (b *meterBatcher) run(ctx context.Context, keys []string, args []any) ([]int64, error) {
	b.start.Do(func() {
		for range meterWorkers {
			b.wg.Go(b.work)
		}
	})
	c := &meterCall{keys: keys, args: args, done: make(chan struct{})}
	select {
	case b.calls <- c:
	case <-b.quit:
		return nil, errStoreClosed
	case <-ctx.Done():
		return nil, ctx.Err()
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
	b.stop.Do(func() { close(b.quit) })
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

func (b *meterBatcher) work() {
	batch := make([]*meterCall, 0, maxMeterBatch)
	for {
		select {
		case <-b.quit:
			return
		case c := <-b.calls:
			batch = append(batch[:0], c)
		}
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

// send runs batch as one pipeline. Its deadline is the store's operation
// timeout, which every caller's own context also carries.
func (b *meterBatcher) send(batch []*meterCall) {
	ctx, cancel := context.WithTimeout(context.Background(), b.s.timeout)
	defer cancel()
	if len(batch) == 1 {
		// Script.Run loads the script itself when Redis has not cached it.
		c := batch[0]
		c.res, c.err = meterScript.Run(ctx, b.s.client, c.keys, c.args...).Int64Slice()
		close(c.done)
		return
	}
	pipe := b.s.client.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, c := range batch {
		cmds[i] = meterScript.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for i, c := range batch {
		c.res, c.err = cmds[i].Int64Slice()
		if c.err != nil && redis.HasErrorPrefix(c.err, "NOSCRIPT") {
			// Redis restarted or was flushed since the script was cached:
			// Run sends it again by EVAL, which also caches it.
			c.res, c.err = meterScript.Run(ctx, b.s.client, c.keys, c.args...).Int64Slice()
		}
		close(c.done)
	}
}
