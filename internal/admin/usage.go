package admin

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// maxUsageDays is the longest range one usage report covers, as API
// Gateway's get-usage.
const maxUsageDays = 90

const dateLayout = "2006-01-02"

// UsageReport is a key's requests per UTC day, as API Gateway's get-usage
// reports them; days without requests are left out of Items.
type UsageReport struct {
	KeyID     string           `json:"keyId"`
	StartDate string           `json:"startDate"`
	EndDate   string           `json:"endDate"`
	Items     map[string]int64 `json:"items"`
	Total     int64            `json:"total"`
}

// parseRange reads start and end as dates (YYYY-MM-DD, UTC), both
// inclusive, at most maxUsageDays days.
func parseRange(start, end string) (from, to time.Time, err error) {
	if start == "" || end == "" {
		return from, to, errorf(http.StatusBadRequest, "start and end are required, as dates: ?start=2026-11-01&end=2026-11-30")
	}
	if from, err = time.Parse(dateLayout, start); err != nil {
		return from, to, errorf(http.StatusBadRequest, "start %q: want a date as YYYY-MM-DD", start)
	}
	if to, err = time.Parse(dateLayout, end); err != nil {
		return from, to, errorf(http.StatusBadRequest, "end %q: want a date as YYYY-MM-DD", end)
	}
	if to.Before(from) {
		return from, to, errorf(http.StatusBadRequest, "end %s is before start %s", end, start)
	}
	if days := int(to.Sub(from).Hours()/24) + 1; days > maxUsageDays {
		return from, to, errorf(http.StatusBadRequest, "%s to %s is %d days; a report covers at most %d", start, end, days, maxUsageDays)
	}
	return from, to, nil
}

// KeyUsage reports the usage of the key called name from start to end
// (YYYY-MM-DD, inclusive).
func KeyUsage(ctx context.Context, st store.Store, name, start, end string) (UsageReport, error) {
	from, to, err := parseRange(start, end)
	if err != nil {
		return UsageReport{}, err
	}
	k, err := GetKey(ctx, st, name)
	if err != nil {
		return UsageReport{}, err
	}
	items, err := st.Usage(ctx, k.ID, from, to)
	if err != nil {
		return UsageReport{}, fmt.Errorf("reading usage of key %q: %w", name, err)
	}
	rep := UsageReport{KeyID: k.ID, StartDate: start, EndDate: end, Items: map[string]int64{}}
	for day, n := range items {
		rep.Items[day] = n
		rep.Total += n
	}
	return rep, nil
}
