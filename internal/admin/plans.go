package admin

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// methodKeyRE is a per-method throttle's key, "METHOD /path/{template}"
// as API Gateway writes it.
var methodKeyRE = regexp.MustCompile(`^[A-Z]+ /\S*$`)

// CheckPlan validates p, normalizing the quota period to upper case.
func CheckPlan(p *store.Plan) error {
	if !nameRE.MatchString(p.Name) {
		return errorf(http.StatusBadRequest, "plan name %q: want 1 to 128 characters of A-Z a-z 0-9 . _ -", p.Name)
	}
	if p.Throttle != nil {
		if err := checkThrottle("throttle", *p.Throttle); err != nil {
			return err
		}
	}
	for _, m := range sortedKeys(p.Methods) {
		if !methodKeyRE.MatchString(m) {
			return errorf(http.StatusBadRequest, "methods: key %q: want \"METHOD /path\", e.g. \"GET /orders/{id}\"", m)
		}
		if err := checkThrottle(fmt.Sprintf("methods[%q]", m), p.Methods[m]); err != nil {
			return err
		}
	}
	if q := p.Quota; q != nil {
		if q.Limit <= 0 {
			return errorf(http.StatusBadRequest, "quota.limit must be greater than 0, got %d", q.Limit)
		}
		q.Period = strings.ToUpper(q.Period)
		maxOffset := math.MaxInt
		switch q.Period {
		case "DAY":
			maxOffset = 0
		case "WEEK":
			maxOffset = 6
		case "MONTH":
		default:
			return errorf(http.StatusBadRequest, "quota.period must be DAY, WEEK or MONTH, got %q", q.Period)
		}
		if q.Offset < 0 || q.Offset > maxOffset {
			return errorf(http.StatusBadRequest, "quota.offset %d is out of range for period %s", q.Offset, q.Period)
		}
	}
	return nil
}

func checkThrottle(field string, t store.Throttle) error {
	if t.Rate < 0 || math.IsNaN(t.Rate) || math.IsInf(t.Rate, 0) {
		return errorf(http.StatusBadRequest, "%s.rate must be a number of requests per second, at least 0, got %v", field, t.Rate)
	}
	if t.Burst < 0 {
		return errorf(http.StatusBadRequest, "%s.burst must not be negative, got %d", field, t.Burst)
	}
	return nil
}

// deletePlan removes a plan no key uses: removing one in use would leave
// its keys pointing at nothing.
func deletePlan(ctx context.Context, st store.Store, name string) error {
	if _, err := st.Plan(ctx, name); err != nil {
		return fmt.Errorf("plan %q: %w", name, err)
	}
	keys, err := st.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("listing keys in plan %q: %w", name, err)
	}
	var users []string
	for _, k := range keys {
		if k.Plan == name && k.RevokedAt.IsZero() {
			users = append(users, k.Name)
		}
	}
	if len(users) > 0 {
		return errorf(http.StatusConflict, "plan %q is used by %d key(s): %s; move or revoke them first", name, len(users), strings.Join(users, ", "))
	}
	if err := st.DeletePlan(ctx, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("plan %q: %w", name, err)
		}
		return fmt.Errorf("deleting plan %q: %w", name, err)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
