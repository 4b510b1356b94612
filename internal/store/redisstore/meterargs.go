package redisstore

import (
	"sync"
	"sync/atomic"

	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/internal/gcra"
)

// A metering call's arguments are the same from one request to the next
// but for the day: the bucket keys and their timing follow from the plan,
// the usage and quota keys from the API key and its window. Building them
// anew cost a dozen allocations a request (string concatenations, numbers
// formatted, every value boxed into an interface), more than the rest of
// Meter together, so meterArgs keeps them, boxed and ready to go into an
// EVALSHA.

// maxMeterArgs bounds each cache. Past it the cache starts over, which
// costs one rebuild per entry in use: a gateway with more keys than this
// in use at once formats some arguments again, as it did before caching.
const maxMeterArgs = 1 << 16

// meterSHA is meterScript's hash, boxed once.
var meterSHA any = meterScript.Hash()

// bucketArgs are a bucket's key and its throttle's timing.
type bucketArgs struct {
	throttle      store.Throttle // what interval and tau were made from
	key           any
	interval, tau any
}

// keyArgs are an API key's usage hash and, for a quota window, its
// counter, limit and expiry.
type keyArgs struct {
	usage any
	// window is the quota window the rest was made for; a zero Start
	// means none yet.
	window                     store.Window
	quota, limit, quotaExpires any
}

// argCache is a bounded map from a name to its arguments.
type argCache[V any] struct {
	m atomic.Pointer[sync.Map]
	n atomic.Int64
}

func (c *argCache[V]) load(name string) (*V, bool) {
	m := c.m.Load()
	if m == nil {
		return nil, false
	}
	v, ok := m.Load(name)
	if !ok {
		return nil, false
	}
	return v.(*V), true
}

func (c *argCache[V]) store(name string, v *V) {
	m := c.m.Load()
	if m == nil || c.n.Load() >= maxMeterArgs {
		// Start over. Racing stores may each start a map; one wins and
		// the others' entries are rebuilt on their next use.
		m = new(sync.Map)
		c.m.Store(m)
		c.n.Store(0)
	}
	if _, loaded := m.Swap(name, v); !loaded {
		c.n.Add(1)
	}
}

// meterArgs caches the arguments of metering calls for one Store.
type meterArgs struct {
	s       *Store
	buckets argCache[bucketArgs]
	keys    argCache[keyArgs]
}

func (a *meterArgs) bucket(b store.BucketCheck) *bucketArgs {
	if v, ok := a.buckets.load(b.Bucket); ok && v.throttle == b.Throttle {
		return v
	}
	v := &bucketArgs{throttle: b.Throttle, key: a.s.bucketKey(b.Bucket)}
	if b.Throttle.Rate > 0 {
		interval, tau := gcra.Params(b.Throttle)
		v.interval, v.tau = micros(interval), micros(tau)
	} else {
		// A zero rate refuses everything and never refills.
		v.interval, v.tau = 0, 0
	}
	a.buckets.store(b.Bucket, v)
	return v
}

// key returns keyID's arguments; w may be nil, for a key without a quota.
func (a *meterArgs) key(keyID string, w *store.Window) *keyArgs {
	v, ok := a.keys.load(keyID)
	if ok && (w == nil || sameWindow(v.window, *w)) {
		return v
	}
	nv := &keyArgs{usage: a.s.usageKey(keyID)}
	if ok {
		nv.usage = v.usage
	}
	if w != nil {
		nv.window = *w
		nv.quota, nv.limit, nv.quotaExpires = a.s.quotaKey(keyID, w.Start), w.Limit, quotaExpiry(w)
	}
	a.keys.store(keyID, nv)
	return nv
}

func sameWindow(a, b store.Window) bool {
	return a.Limit == b.Limit && a.Start.Equal(b.Start) && a.End.Equal(b.End)
}
