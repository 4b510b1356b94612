package redisstore

import (
	"sync/atomic"
	"time"
)

// timeName formats times with one layout and remembers the last result,
// for the names that go into every metering call (the UTC day a request
// is counted on, the start of its quota window) and change once a day or
// once a period: formatting them anew cost more per request than building
// the rest of the call.
type timeName struct {
	layout string
	// per is how many seconds share one name, counted from the Unix
	// epoch: 86400 for a UTC day, 1 for a layout down to the second.
	per  int64
	last atomic.Pointer[formatted]
}

type formatted struct {
	slot int64
	name string
}

func (n *timeName) of(t time.Time) string {
	sec := t.Unix()
	if sec < 0 {
		return t.UTC().Format(n.layout)
	}
	slot := sec / n.per
	if f := n.last.Load(); f != nil && f.slot == slot {
		return f.name
	}
	name := t.UTC().Format(n.layout)
	n.last.Store(&formatted{slot: slot, name: name})
	return name
}
