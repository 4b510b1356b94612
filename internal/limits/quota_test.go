package limits

import (
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

func date(y int, m time.Month, d, hh, mm, ss, ns int) time.Time {
	return time.Date(y, m, d, hh, mm, ss, ns, time.UTC)
}

func day(y int, m time.Month, d int) time.Time { return date(y, m, d, 0, 0, 0, 0) }

func TestQuotaWindow(t *testing.T) {
	t.Parallel()
	// 2026-03-10 is a Tuesday.
	tokyo := time.FixedZone("JST", 9*60*60)
	tests := []struct {
		desc       string
		q          store.Quota
		now        time.Time
		start, end time.Time
	}{
		{desc: "day, midday", q: store.Quota{Limit: 7, Period: "DAY"}, now: date(2026, 3, 10, 12, 0, 0, 0), start: day(2026, 3, 10), end: day(2026, 3, 11)},
		{desc: "day, at midnight", q: store.Quota{Limit: 7, Period: "DAY"}, now: day(2026, 3, 11), start: day(2026, 3, 11), end: day(2026, 3, 12)},
		{desc: "day, last nanosecond", q: store.Quota{Limit: 7, Period: "DAY"}, now: date(2026, 3, 10, 23, 59, 59, 999999999), start: day(2026, 3, 10), end: day(2026, 3, 11)},
		{desc: "day, now in another zone is read as UTC", q: store.Quota{Limit: 7, Period: "DAY"}, now: time.Date(2026, 3, 11, 8, 0, 0, 0, tokyo), start: day(2026, 3, 10), end: day(2026, 3, 11)},
		{desc: "day, leap day", q: store.Quota{Limit: 7, Period: "DAY"}, now: date(2028, 2, 29, 10, 0, 0, 0), start: day(2028, 2, 29), end: day(2028, 3, 1)},
		{desc: "week offset 0 starts Sunday", q: store.Quota{Limit: 7, Period: "WEEK"}, now: date(2026, 3, 10, 12, 0, 0, 0), start: day(2026, 3, 8), end: day(2026, 3, 15)},
		{desc: "week offset 1 starts Monday", q: store.Quota{Limit: 7, Period: "WEEK", Offset: 1}, now: date(2026, 3, 10, 12, 0, 0, 0), start: day(2026, 3, 9), end: day(2026, 3, 16)},
		{desc: "week offset on today's weekday starts today", q: store.Quota{Limit: 7, Period: "WEEK", Offset: 2}, now: date(2026, 3, 10, 0, 0, 0, 0), start: day(2026, 3, 10), end: day(2026, 3, 17)},
		{desc: "week offset on tomorrow's weekday started 6 days ago", q: store.Quota{Limit: 7, Period: "WEEK", Offset: 3}, now: date(2026, 3, 10, 23, 59, 59, 0), start: day(2026, 3, 4), end: day(2026, 3, 11)},
		{desc: "week offset 6 starts Saturday", q: store.Quota{Limit: 7, Period: "WEEK", Offset: 6}, now: date(2026, 3, 10, 12, 0, 0, 0), start: day(2026, 3, 7), end: day(2026, 3, 14)},
		{desc: "week, last second before Sunday", q: store.Quota{Limit: 7, Period: "WEEK"}, now: date(2026, 3, 14, 23, 59, 59, 0), start: day(2026, 3, 8), end: day(2026, 3, 15)},
		{desc: "week, Sunday midnight", q: store.Quota{Limit: 7, Period: "WEEK"}, now: day(2026, 3, 15), start: day(2026, 3, 15), end: day(2026, 3, 22)},
		{desc: "week across new year", q: store.Quota{Limit: 7, Period: "WEEK"}, now: date(2026, 1, 1, 9, 0, 0, 0), start: day(2025, 12, 28), end: day(2026, 1, 4)},
		{desc: "month, last second of January", q: store.Quota{Limit: 7, Period: "MONTH"}, now: date(2026, 1, 31, 23, 59, 59, 0), start: day(2026, 1, 1), end: day(2026, 2, 1)},
		{desc: "month, first instant of February", q: store.Quota{Limit: 7, Period: "MONTH"}, now: day(2026, 2, 1), start: day(2026, 2, 1), end: day(2026, 3, 1)},
		{desc: "month, end of year", q: store.Quota{Limit: 7, Period: "MONTH"}, now: date(2026, 12, 31, 23, 59, 59, 0), start: day(2026, 12, 1), end: day(2027, 1, 1)},
		{desc: "month, leap February", q: store.Quota{Limit: 7, Period: "MONTH"}, now: date(2028, 2, 29, 12, 0, 0, 0), start: day(2028, 2, 1), end: day(2028, 3, 1)},
		{desc: "month offset 27 (the 28th), on leap day", q: store.Quota{Limit: 7, Period: "MONTH", Offset: 27}, now: date(2028, 2, 29, 12, 0, 0, 0), start: day(2028, 2, 28), end: day(2028, 3, 28)},
		{desc: "month offset 27, the day before", q: store.Quota{Limit: 7, Period: "MONTH", Offset: 27}, now: date(2028, 2, 27, 23, 59, 59, 0), start: day(2028, 1, 28), end: day(2028, 2, 28)},
		{desc: "month offset 27, non-leap February", q: store.Quota{Limit: 7, Period: "MONTH", Offset: 27}, now: day(2026, 2, 28), start: day(2026, 2, 28), end: day(2026, 3, 28)},
		{desc: "month offset 14 (the 15th), back across new year", q: store.Quota{Limit: 7, Period: "MONTH", Offset: 14}, now: date(2026, 1, 10, 0, 0, 0, 0), start: day(2025, 12, 15), end: day(2026, 1, 15)},
		{desc: "month offset 27, on the 31st", q: store.Quota{Limit: 7, Period: "MONTH", Offset: 27}, now: date(2026, 1, 31, 12, 0, 0, 0), start: day(2026, 1, 28), end: day(2026, 2, 28)},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			got, err := QuotaWindow(tc.q, tc.now)
			if err != nil {
				t.Fatalf("QuotaWindow(%+v, %v): %v", tc.q, tc.now, err)
			}
			want := store.Window{Start: tc.start, End: tc.end, Limit: tc.q.Limit}
			if !got.Start.Equal(want.Start) || !got.End.Equal(want.End) || got.Limit != want.Limit {
				t.Errorf("QuotaWindow(%+v, %v): got [%v, %v) limit %d, want [%v, %v) limit %d",
					tc.q, tc.now, got.Start, got.End, got.Limit, want.Start, want.End, want.Limit)
			}
			if got.Start.Location() != time.UTC || got.End.Location() != time.UTC {
				t.Errorf("QuotaWindow(%+v, %v): got zones %v, %v, want UTC", tc.q, tc.now, got.Start.Location(), got.End.Location())
			}
			if tc.now.Before(got.Start) || !tc.now.Before(got.End) {
				t.Errorf("QuotaWindow(%+v, %v): [%v, %v) does not contain now", tc.q, tc.now, got.Start, got.End)
			}
		})
	}
}

func TestQuotaWindowErrors(t *testing.T) {
	t.Parallel()
	now := date(2026, 3, 10, 12, 0, 0, 0)
	tests := []struct {
		desc    string
		q       store.Quota
		wantErr string
	}{
		{desc: "day with offset", q: store.Quota{Limit: 1, Period: "DAY", Offset: 1}, wantErr: "must be 0"},
		{desc: "week offset 7", q: store.Quota{Limit: 1, Period: "WEEK", Offset: 7}, wantErr: "offset 7 for period WEEK"},
		{desc: "week offset -1", q: store.Quota{Limit: 1, Period: "WEEK", Offset: -1}, wantErr: "offset -1 for period WEEK"},
		{desc: "month offset 28", q: store.Quota{Limit: 1, Period: "MONTH", Offset: 28}, wantErr: "offset 28 for period MONTH"},
		{desc: "month offset -1", q: store.Quota{Limit: 1, Period: "MONTH", Offset: -1}, wantErr: "offset -1 for period MONTH"},
		{desc: "unknown period", q: store.Quota{Limit: 1, Period: "YEAR"}, wantErr: `period "YEAR"`},
		{desc: "lowercase period", q: store.Quota{Limit: 1, Period: "month"}, wantErr: `period "month"`},
		{desc: "empty period", q: store.Quota{Limit: 1}, wantErr: `period ""`},
		{desc: "negative limit", q: store.Quota{Limit: -1, Period: "DAY"}, wantErr: "limit -1"},
		{desc: "zero limit", q: store.Quota{Limit: 0, Period: "DAY"}, wantErr: "limit 0"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, err := QuotaWindow(tc.q, now)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("QuotaWindow(%+v): got error %v, want one containing %q", tc.q, err, tc.wantErr)
			}
		})
	}
}
