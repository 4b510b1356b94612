package redisstore

import (
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store/internal/counters"
)

// TestTimeNameMatchesFormat: the remembered names are the ones formatting
// anew gives, across day boundaries, in other zones, and back and forth
// (two replicas' clocks, or a window start then a day).
func TestTimeNameMatchesFormat(t *testing.T) {
	paris := time.FixedZone("UTC+1", 60*60)
	base := time.Date(2026, 11, 26, 23, 59, 59, 900e6, time.UTC)
	times := []time.Time{
		base,
		base.Add(50 * time.Millisecond),
		base.Add(100 * time.Millisecond), // the next UTC day
		base.Add(-24 * time.Hour),
		base.In(paris), // already the 27th in Paris, still the 26th in UTC
		base.Add(time.Second).In(paris),
		time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC),
		time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 12, 0, 0, 0, time.UTC), // before the epoch
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	days := timeName{layout: counters.DayFormat, per: 24 * 60 * 60}
	starts := timeName{layout: time.RFC3339, per: 1}
	for range 2 {
		for _, tm := range times {
			if got, want := days.of(tm), tm.UTC().Format(counters.DayFormat); got != want {
				t.Errorf("day of %v: got %q, want %q", tm, got, want)
			}
			if got, want := "k|"+starts.of(tm), counters.QuotaKey("k", tm); got != want {
				t.Errorf("window start %v: got %q, want %q", tm, got, want)
			}
		}
	}
}
