package limits

import (
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// CheckPlan reports why the handler cannot apply p, or nil if it can. It
// uses the checks the handler makes on each request, so a plan it refuses
// is exactly a plan whose requests would be answered 500 (every request
// for a bad throttle or quota, those of one method for a bad per-method
// throttle). The admin API and the configuration refuse such plans before
// they reach a store.
//
// Throttles (the plan's and each per-method one) need a rate > 0 requests
// per second and a burst >= 0; a quota needs a limit > 0, a period of DAY,
// WEEK or MONTH (upper case, as stored), and an offset in that period's
// range (see QuotaWindow). Names and method keys are not checked: they
// cannot make a request fail. Every problem is reported, not only the
// first.
func CheckPlan(p store.Plan) error {
	var errs []error
	if p.Throttle != nil {
		if err := checkThrottle(*p.Throttle); err != nil {
			errs = append(errs, fmt.Errorf("throttle: %w", err))
		}
	}
	methods := make([]string, 0, len(p.Methods))
	for m := range p.Methods {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	for _, m := range methods {
		if err := checkThrottle(p.Methods[m]); err != nil {
			errs = append(errs, fmt.Errorf("methods[%q]: %w", m, err))
		}
	}
	if p.Quota != nil {
		if err := checkQuota(*p.Quota); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkThrottle rejects throttles that are not a positive number of
// requests per second with a burst of 0 or more (a burst below 1 counts
// as 1 in the stores). A rate of 0 is refused, as the configuration
// refuses it: a route closed for a plan is better expressed by keeping
// the plan's keys off it.
func checkThrottle(t store.Throttle) error {
	if math.IsNaN(t.Rate) || math.IsInf(t.Rate, 0) || t.Rate <= 0 {
		return fmt.Errorf("rate %v: must be a number of requests per second greater than 0", t.Rate)
	}
	if t.Burst < 0 {
		return fmt.Errorf("burst %d: must not be negative", t.Burst)
	}
	return nil
}
