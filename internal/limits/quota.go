package limits

import (
	"fmt"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// Quota offsets, as API Gateway reads QuotaSettings.offset. AWS documents
// the field two ways. The API reference and CloudFormation (2025) say "the
// number of requests subtracted from the given limit in the initial time
// period"; the service model shipped in the SDKs for a while (aws-sdk-ruby
// apigateway 1.73, aws-sdk-rust 0.4, the Dart client) says "The day that a
// time period starts. For example, with a time period of WEEK, an offset
// of 0 starts on Sunday, and an offset of 1 starts on Monday." drawbridge
// follows the second reading, which is what store.Quota promises ("shifted
// by Offset"):
//
//   - DAY: offset must be 0; the window is the UTC calendar day.
//   - WEEK: offset 0-6 picks the weekday the window starts on, 0 = Sunday
//     (time.Weekday numbering, which matches AWS's example).
//   - MONTH: offset 0-27 picks the day of the month the window starts on,
//     0 = the 1st. 27 (the 28th) is the last day every month has, so a
//     window never needs clamping. AWS states no range for MONTH; this one
//     is ours.
//
// All windows start at 00:00 UTC (AWS: quotas reset at midnight UTC).
const (
	maxWeekOffset  = 6
	maxMonthOffset = 27
)

// QuotaWindow returns the window containing now for q (API Gateway
// semantics, UTC): its start (inclusive), end (exclusive) and q.Limit.
// It returns checkQuota's error for a quota it cannot apply.
func QuotaWindow(q store.Quota, now time.Time) (store.Window, error) {
	if err := checkQuota(q); err != nil {
		return store.Window{}, err
	}
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	var start, end time.Time
	switch q.Period {
	case "DAY":
		start, end = day, day.AddDate(0, 0, 1)
	case "WEEK":
		back := (int(day.Weekday()) - q.Offset + 7) % 7
		start = day.AddDate(0, 0, -back)
		end = start.AddDate(0, 0, 7)
	case "MONTH":
		startDay := q.Offset + 1
		start = time.Date(now.Year(), now.Month(), startDay, 0, 0, 0, 0, time.UTC)
		if now.Day() < startDay {
			start = start.AddDate(0, -1, 0)
		}
		// AddDate cannot overflow into the next month: startDay <= 28.
		end = start.AddDate(0, 1, 0)
	}
	return store.Window{Start: start, End: end, Limit: q.Limit}, nil
}

// checkQuota reports why q cannot be applied: a limit below 1, an unknown
// period (upper case only, as stored), or an offset out of the period's
// range.
func checkQuota(q store.Quota) error {
	if q.Limit <= 0 {
		return fmt.Errorf("quota.limit %d: must be a number of requests greater than 0", q.Limit)
	}
	switch q.Period {
	case "DAY":
		if q.Offset != 0 {
			return fmt.Errorf("quota.offset %d for period DAY: must be 0", q.Offset)
		}
	case "WEEK":
		if q.Offset < 0 || q.Offset > maxWeekOffset {
			return fmt.Errorf("quota.offset %d for period WEEK: must be 0 (Sunday) to %d (Saturday)", q.Offset, maxWeekOffset)
		}
	case "MONTH":
		if q.Offset < 0 || q.Offset > maxMonthOffset {
			return fmt.Errorf("quota.offset %d for period MONTH: must be 0 (the 1st) to %d (the 28th)", q.Offset, maxMonthOffset)
		}
	default:
		return fmt.Errorf("quota.period %q: must be DAY, WEEK or MONTH", q.Period)
	}
	return nil
}
