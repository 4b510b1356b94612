package redisstore

import (
	"sync/atomic"
	"time"
)

// timeName formats times with one layout and remembers the last result,
// for a name that goes into every metering call and changes once a day
// (the UTC day a request is counted on): formatting it anew cost more per
// request than building the rest of the call. Quota keys need no such
// cache: meterArgs keeps them per key and window.
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
	arg  any // name, boxed for a command's arguments
}

func (n *timeName) of(t time.Time) string {
	return n.lookup(t).name
}

// arg is of(t) as a command argument, without boxing it again.
func (n *timeName) arg(t time.Time) any {
	return n.lookup(t).arg
}

func (n *timeName) lookup(t time.Time) *formatted {
	sec := t.Unix()
	if sec < 0 {
		name := t.UTC().Format(n.layout)
		return &formatted{name: name, arg: name}
	}
	slot := sec / n.per
	if f := n.last.Load(); f != nil && f.slot == slot {
		return f
	}
	name := t.UTC().Format(n.layout)
	f := &formatted{slot: slot, name: name, arg: name}
	n.last.Store(f)
	return f
}
