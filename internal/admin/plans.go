package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/drawbridge-gw/drawbridge/internal/limits"
	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// methodKeyRE is a per-method throttle's key, "METHOD /path/{template}"
// as API Gateway writes it.
var methodKeyRE = regexp.MustCompile(`^[A-Z]+ /\S*$`)

// CheckPlan validates p, normalizing the quota period to upper case. The
// throttles and quota must pass limits.CheckPlan, so that the admin API
// refuses exactly the plans the limits stage could not apply (it would
// answer their requests 500); the name and method keys are checked here,
// since limits does not look at them.
func CheckPlan(p *store.Plan) error {
	if !nameRE.MatchString(p.Name) {
		return errorf(http.StatusBadRequest, "plan name %q: want 1 to 128 characters of A-Z a-z 0-9 . _ -", p.Name)
	}
	for _, m := range slices.Sorted(maps.Keys(p.Methods)) {
		if !methodKeyRE.MatchString(m) {
			return errorf(http.StatusBadRequest, "methods: key %q: want \"METHOD /path\", e.g. \"GET /orders/{id}\"", m)
		}
	}
	if p.Quota != nil {
		p.Quota.Period = strings.ToUpper(p.Quota.Period)
	}
	if err := limits.CheckPlan(*p); err != nil {
		return &Error{Status: http.StatusBadRequest, Err: fmt.Errorf("plan %q: %w", p.Name, err)}
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
