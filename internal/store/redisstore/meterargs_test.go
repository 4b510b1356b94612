package redisstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/redistest"
)

// TestMeterFollowsChangedLimits: the cached arguments follow a plan
// change (a reload) and a new quota window at once, against a real Redis.
func TestMeterFollowsChangedLimits(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, Options{Addrs: []string{srv.Addr()}})
	now := time.Now()
	wide := []store.BucketCheck{{Bucket: "key:key_c", Throttle: store.Throttle{Rate: 1e6, Burst: 1e6}}}
	closed := []store.BucketCheck{{Bucket: "key:key_c", Throttle: store.Throttle{Rate: 0, Burst: 0}}}
	hour := func(from, to int, limit int64) *store.Window {
		return &store.Window{Start: now.Add(time.Duration(from) * time.Hour), End: now.Add(time.Duration(to) * time.Hour), Limit: limit}
	}
	steps := []struct {
		name        string
		buckets     []store.BucketCheck
		w           *store.Window
		wantRefused int
		wantUsed    int64
		wantAllowed bool
	}{
		{"first call", wide, hour(-1, 1, 2), -1, 1, true},
		{"second call", wide, hour(-1, 1, 2), -1, 2, true},
		{"quota of 2 used up", wide, hour(-1, 1, 2), -1, 2, false},
		{"limit raised by a reload", wide, hour(-1, 1, 3), -1, 3, true},
		{"a new window counts from zero", wide, hour(1, 2, 3), -1, 1, true},
		{"rate set to zero by a reload", closed, hour(1, 2, 3), 0, 0, false},
		{"rate back", wide, hour(1, 2, 3), -1, 2, true},
	}
	for _, st := range steps {
		r, err := s.Meter(ctx, st.buckets, "key_c", st.w, now)
		if err != nil {
			t.Fatalf("%s: Meter(): %v", st.name, err)
		}
		if r.Refused != st.wantRefused {
			t.Fatalf("%s: refused bucket %d, want %d (%+v)", st.name, r.Refused, st.wantRefused, r)
		}
		if r.Refused == -1 && (r.Quota.Used != st.wantUsed || r.Quota.Allowed != st.wantAllowed) {
			t.Fatalf("%s: quota %+v, want used %d, allowed %v", st.name, r.Quota, st.wantUsed, st.wantAllowed)
		}
	}
}

// TestArgCacheBounded: past maxMeterArgs names the cache starts over, and
// every name still maps to its own arguments.
func TestArgCacheBounded(t *testing.T) {
	s, err := New(Options{Addrs: []string{"127.0.0.1:1"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	th := store.Throttle{Rate: 10, Burst: 5}
	for i := range maxMeterArgs + 10 {
		name := fmt.Sprintf("key:k%d", i)
		a := s.args.bucket(store.BucketCheck{Bucket: name, Throttle: th})
		if want := s.bucketKey(name); a.key != want {
			t.Fatalf("bucket %s: key %v, want %s", name, a.key, want)
		}
	}
	if n := s.args.buckets.n.Load(); n > maxMeterArgs || n < 10 {
		t.Errorf("entries after %d names: %d, want the cache started over (10 to %d)", maxMeterArgs+10, n, maxMeterArgs)
	}
	a := s.args.bucket(store.BucketCheck{Bucket: "key:k0", Throttle: th})
	if a.key != s.bucketKey("key:k0") || a.interval != micros(100*time.Millisecond) {
		t.Errorf("key:k0 after the start over: %+v", a)
	}
}
