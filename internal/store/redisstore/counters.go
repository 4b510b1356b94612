package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/internal/counters"
	"github.com/drawbridge-gw/drawbridge/internal/store/internal/gcra"
)

// Allow takes one token from bucket (GCRA, see internal/gcra for the
// semantics shared with the other stores). Every replica's request goes
// through one script on the server's clock, so the bucket is exact across
// replicas whatever their clocks say.
func (s *Store) Allow(ctx context.Context, bucket string, t store.Throttle) (store.Decision, error) {
	if !(t.Rate > 0) {
		// A zero rate refuses everything and never refills.
		return store.Decision{}, nil
	}
	interval, tau := gcra.Params(t)
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	res, err := allowScript.Run(ctx, s.client, []string{s.bucketKey(bucket)},
		micros(interval), micros(tau)).Int64Slice()
	if err := s.checkOp(ctx, err, "throttling bucket %q", bucket); err != nil {
		return store.Decision{}, err
	}
	if len(res) != 4 {
		return store.Decision{}, fmt.Errorf("throttling bucket %q: unexpected script result %v", bucket, res)
	}
	return decision(res), nil
}

// decision reads one bucket's {allowed, remaining, retry after µs, reset
// µs} from a script's result.
func decision(r []int64) store.Decision {
	return store.Decision{
		Allowed:    r[0] == 1,
		Remaining:  int(r[1]),
		RetryAfter: time.Duration(r[2]) * time.Microsecond,
		Reset:      time.Duration(r[3]) * time.Microsecond,
	}
}

// micros formats d in microseconds for the scripts, keeping fractions so
// that rates above a million per second still work.
func micros(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'g', -1, 64)
}

// Consume counts one request of keyID in its usage for the UTC day of now
// and, if w is not nil, against w, refusing (and counting nothing) once
// w.Limit is reached. The check and the increments are one script, so
// replicas together never exceed the limit.
func (s *Store) Consume(ctx context.Context, keyID string, w *store.Window, now time.Time) (store.QuotaDecision, error) {
	keys := []string{s.usageKey(keyID)}
	args := []any{s.days.of(now)}
	if w != nil {
		keys = append(keys, s.quotaKey(keyID, w.Start))
		args = append(args, w.Limit, quotaExpiry(w))
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	res, err := consumeScript.Run(ctx, s.client, keys, args...).Int64Slice()
	if err := s.checkOp(ctx, err, "counting a request of key %s", keyID); err != nil {
		return store.QuotaDecision{}, err
	}
	if len(res) != 2 {
		return store.QuotaDecision{}, fmt.Errorf("counting a request of key %s: unexpected script result %v", keyID, res)
	}
	return store.QuotaDecision{Allowed: res[0] == 1, Used: res[1]}, nil
}

// quotaExpiry is when w's counter may go (Unix ms): a day after the window
// ends, so a late replica's count still lands in it.
func quotaExpiry(w *store.Window) int64 {
	return w.End.Add(24 * time.Hour).UnixMilli()
}

// Meter implements store.Meter: every bucket and the count in one script
// (shared with the same key's other requests in its batch; see
// meterGroup), so one round trip per request. The script applies the
// buckets as Allow does, one after another on the server's clock, and
// counts as Consume does; nothing else runs between them, which only
// narrows what Allow and Consume called in turn allow.
func (s *Store) Meter(ctx context.Context, buckets []store.BucketCheck, keyID string, w *store.Window, now time.Time) (store.MeterResult, error) {
	if len(buckets) == 0 && keyID == "" {
		return store.MeterResult{Refused: -1}, nil
	}
	args := s.meterCommand(buckets, keyID, w, now)
	n := len(buckets)
	// No opContext here: the batcher holds the call to the store's
	// timeout itself, without a timer per request.
	res, err := s.meter.run(ctx, args, n)
	if err != nil {
		return store.MeterResult{Refused: -1}, s.fail(ctx, meterOp(buckets, keyID), err)
	}
	s.up()
	out, ok := meterResult(res, n, keyID != "")
	if !ok {
		return store.MeterResult{Refused: -1}, fmt.Errorf("%s: unexpected script result %v", meterOp(buckets, keyID), res)
	}
	return out, nil
}

// meterCommand is the EVALSHA of meterScript for one request, but for its
// last argument (reps), which the batcher adds for the calls it sends
// together: sha, numkeys, KEYS, ARGV, as meterScript documents. It is
// built here rather than by Script.EvalSha so that every value is one
// boxed already (see meterArgs).
func (s *Store) meterCommand(buckets []store.BucketCheck, keyID string, w *store.Window, now time.Time) []any {
	n := len(buckets)
	var ka *keyArgs
	nkeys := n
	if keyID != "" {
		ka = s.args.key(keyID, w)
		nkeys++
		if w != nil {
			nkeys++
		}
	}
	var bucketArr [4]*bucketArgs
	ba := bucketArr[:0]
	for _, b := range buckets {
		ba = append(ba, s.args.bucket(b))
	}
	// One more for the batcher's reps.
	args := make([]any, 0, 3+nkeys+1+2*n+3+1)
	args = append(args, "evalsha", meterSHA, nkeys)
	for _, b := range ba {
		args = append(args, b.key)
	}
	if ka != nil {
		args = append(args, ka.usage)
		if w != nil {
			args = append(args, ka.quota)
		}
	}
	args = append(args, n)
	for _, b := range ba {
		args = append(args, b.interval, b.tau)
	}
	if ka != nil {
		args = append(args, s.days.arg(now))
		if w != nil {
			args = append(args, ka.limit, ka.quotaExpires)
		}
	}
	return args
}

// meterResult reads meterScript's result for n buckets; ok is false when
// it is not the shape the script returns.
func meterResult(res []int64, n int, withKey bool) (store.MeterResult, bool) {
	if len(res) < 4 || len(res)%4 != 0 {
		return store.MeterResult{}, false
	}
	checked := len(res)/4 - 1
	out := store.MeterResult{Refused: int(res[0]), Counted: res[1] == 1}
	switch {
	case out.Refused == -1 && checked == n && out.Counted == withKey:
	case out.Refused >= 0 && out.Refused == checked-1 && checked <= n && !out.Counted:
	default:
		return store.MeterResult{}, false
	}
	if out.Counted {
		out.Quota = store.QuotaDecision{Allowed: res[2] == 1, Used: res[3]}
	}
	if checked > 0 {
		out.Decisions = make([]store.Decision, checked)
		for i := range out.Decisions {
			out.Decisions[i] = decision(res[4+4*i : 8+4*i])
		}
	}
	return out, true
}

func meterOp(buckets []store.BucketCheck, keyID string) string {
	names := make([]string, len(buckets))
	for i, b := range buckets {
		names[i] = strconv.Quote(b.Bucket)
	}
	if keyID == "" {
		return fmt.Sprintf("throttling buckets %s", strings.Join(names, ", "))
	}
	return fmt.Sprintf("throttling buckets [%s] and counting a request of key %s", strings.Join(names, ", "), keyID)
}

// QuotaUsed is the count of keyID in window w so far.
func (s *Store) QuotaUsed(ctx context.Context, keyID string, w store.Window) (int64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	n, err := s.client.Get(ctx, s.quotaKey(keyID, w.Start)).Int64()
	if errors.Is(err, redis.Nil) {
		s.up()
		return 0, nil
	}
	if err := s.checkOp(ctx, err, "reading quota of key %s", keyID); err != nil {
		return 0, err
	}
	return n, nil
}

// Usage returns keyID's counts per UTC day from from to to inclusive,
// omitting days without requests.
func (s *Store) Usage(ctx context.Context, keyID string, from, to time.Time) (map[string]int64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	// A key has one field per day it was used, a few hundred a year, so
	// reading them all is cheaper than asking for every day of a range that
	// may span years.
	all, err := s.client.HGetAll(ctx, s.usageKey(keyID)).Result()
	if err := s.checkOp(ctx, err, "reading usage of key %s", keyID); err != nil {
		return nil, err
	}
	lo, hi := from.UTC().Format(counters.DayFormat), to.UTC().Format(counters.DayFormat)
	out := make(map[string]int64)
	for day, v := range all {
		// DayFormat sorts as a string, so the range test needs no parsing.
		if day < lo || day > hi {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("reading usage of key %s: day %s: %w", keyID, day, err)
		}
		if n != 0 {
			out[day] = n
		}
	}
	return out, nil
}

func (s *Store) bucketKey(bucket string) string {
	return s.prefix + "bucket:" + bucket
}

func (s *Store) usageKey(keyID string) string {
	return s.prefix + "usage:" + keyID
}

func (s *Store) quotaKey(keyID string, start time.Time) string {
	return s.prefix + "quota:" + counters.QuotaKey(keyID, start)
}
