package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	op := fmt.Sprintf("throttling bucket %q", bucket)
	res, err := allowScript.Run(ctx, s.client, []string{s.prefix + "bucket:" + bucket},
		micros(interval), micros(tau)).Int64Slice()
	if err := s.check(ctx, op, err); err != nil {
		return store.Decision{}, err
	}
	if len(res) != 4 {
		return store.Decision{}, fmt.Errorf("%s: unexpected script result %v", op, res)
	}
	return store.Decision{
		Allowed:    res[0] == 1,
		Remaining:  int(res[1]),
		RetryAfter: time.Duration(res[2]) * time.Microsecond,
		Reset:      time.Duration(res[3]) * time.Microsecond,
	}, nil
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
	args := []any{now.UTC().Format(counters.DayFormat)}
	if w != nil {
		keys = append(keys, s.quotaKey(keyID, w.Start))
		args = append(args, w.Limit, w.End.Add(24*time.Hour).UnixMilli())
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	op := fmt.Sprintf("counting a request of key %s", keyID)
	res, err := consumeScript.Run(ctx, s.client, keys, args...).Int64Slice()
	if err := s.check(ctx, op, err); err != nil {
		return store.QuotaDecision{}, err
	}
	if len(res) != 2 {
		return store.QuotaDecision{}, fmt.Errorf("%s: unexpected script result %v", op, res)
	}
	return store.QuotaDecision{Allowed: res[0] == 1, Used: res[1]}, nil
}

// QuotaUsed is the count of keyID in window w so far.
func (s *Store) QuotaUsed(ctx context.Context, keyID string, w store.Window) (int64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	op := fmt.Sprintf("reading quota of key %s", keyID)
	n, err := s.client.Get(ctx, s.quotaKey(keyID, w.Start)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err := s.check(ctx, op, err); err != nil {
		return 0, err
	}
	return n, nil
}

// Usage returns keyID's counts per UTC day from from to to inclusive,
// omitting days without requests.
func (s *Store) Usage(ctx context.Context, keyID string, from, to time.Time) (map[string]int64, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	op := fmt.Sprintf("reading usage of key %s", keyID)
	// A key has one field per day it was used, a few hundred a year, so
	// reading them all is cheaper than asking for every day of a range that
	// may span years.
	all, err := s.client.HGetAll(ctx, s.usageKey(keyID)).Result()
	if err := s.check(ctx, op, err); err != nil {
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
			return nil, fmt.Errorf("%s: day %s: %w", op, day, err)
		}
		if n != 0 {
			out[day] = n
		}
	}
	return out, nil
}

func (s *Store) usageKey(keyID string) string {
	return s.prefix + "usage:" + keyID
}

func (s *Store) quotaKey(keyID string, start time.Time) string {
	return s.prefix + "quota:" + counters.QuotaKey(keyID, start)
}
