package limits

import (
	"math"
	"strings"
	"testing"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// planCases are plans CheckPlan accepts (wantErr "") or refuses. Per-method
// throttles are all for "GET /x", the method the handler test's route has.
var planCases = []struct {
	desc    string
	p       store.Plan
	wantErr string
}{
	{desc: "empty plan", p: store.Plan{Name: "p"}},
	{desc: "throttle, burst 0", p: store.Plan{Name: "p", Throttle: throttle(0.5, 0)}},
	{desc: "method throttle", p: store.Plan{Name: "p", Methods: map[string]store.Throttle{"GET /x": {Rate: 1, Burst: 1}}}},
	{desc: "DAY", p: store.Plan{Name: "p", Quota: &store.Quota{Limit: 1, Period: "DAY"}}},
	{desc: "WEEK offset 6", p: store.Plan{Name: "p", Quota: &store.Quota{Limit: 1, Period: "WEEK", Offset: 6}}},
	{desc: "MONTH offset 27", p: store.Plan{Name: "p", Quota: &store.Quota{Limit: 1, Period: "MONTH", Offset: 27}}},

	{desc: "rate 0", p: store.Plan{Name: "p", Throttle: throttle(0, 1)}, wantErr: "throttle: rate 0"},
	{desc: "negative rate", p: store.Plan{Name: "p", Throttle: throttle(-1, 1)}, wantErr: "throttle: rate -1"},
	{desc: "NaN rate", p: store.Plan{Name: "p", Throttle: throttle(math.NaN(), 1)}, wantErr: "rate NaN"},
	{desc: "infinite rate", p: store.Plan{Name: "p", Throttle: throttle(math.Inf(1), 1)}, wantErr: "rate +Inf"},
	{desc: "negative burst", p: store.Plan{Name: "p", Throttle: throttle(1, -1)}, wantErr: "throttle: burst -1"},
	{desc: "method rate 0", p: store.Plan{Name: "p", Methods: map[string]store.Throttle{"GET /x": {Rate: 0, Burst: 1}}}, wantErr: `methods["GET /x"]: rate 0`},
	{desc: "method negative burst", p: store.Plan{Name: "p", Methods: map[string]store.Throttle{"GET /x": {Rate: 1, Burst: -2}}}, wantErr: `methods["GET /x"]: burst -2`},
	{desc: "limit 0", p: store.Plan{Name: "p", Quota: &store.Quota{Limit: 0, Period: "DAY"}}, wantErr: "quota.limit 0"},
	{desc: "negative limit", p: store.Plan{Name: "p", Quota: &store.Quota{Limit: -5, Period: "DAY"}}, wantErr: "quota.limit -5"},
	{desc: "lower-case period", p: store.Plan{Name: "p", Quota: &store.Quota{Limit: 1, Period: "day"}}, wantErr: `period "day"`},
	{desc: "YEAR", p: store.Plan{Name: "p", Quota: &store.Quota{Limit: 1, Period: "YEAR"}}, wantErr: `period "YEAR"`},
	{desc: "DAY offset 1", p: store.Plan{Name: "p", Quota: &store.Quota{Limit: 1, Period: "DAY", Offset: 1}}, wantErr: "offset 1 for period DAY"},
	{desc: "WEEK offset 7", p: store.Plan{Name: "p", Quota: &store.Quota{Limit: 1, Period: "WEEK", Offset: 7}}, wantErr: "offset 7 for period WEEK"},
	{desc: "MONTH offset 28", p: store.Plan{Name: "p", Quota: &store.Quota{Limit: 1, Period: "MONTH", Offset: 28}}, wantErr: "offset 28 for period MONTH"},
	{desc: "MONTH offset -1", p: store.Plan{Name: "p", Quota: &store.Quota{Limit: 1, Period: "MONTH", Offset: -1}}, wantErr: "offset -1 for period MONTH"},
}

func TestCheckPlan(t *testing.T) {
	t.Parallel()
	for _, tc := range planCases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			err := CheckPlan(tc.p)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("CheckPlan(%+v): got %v, want nil", tc.p, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("CheckPlan(%+v): got %v, want an error containing %q", tc.p, err, tc.wantErr)
			}
		})
	}
}

func TestCheckPlanReportsEveryProblem(t *testing.T) {
	t.Parallel()
	p := store.Plan{
		Name:     "p",
		Throttle: throttle(-1, 1),
		Methods:  map[string]store.Throttle{"GET /b": {Rate: 1, Burst: -1}, "GET /a": {Rate: 0, Burst: 1}},
		Quota:    &store.Quota{Limit: 1, Period: "MONTH", Offset: 28},
	}
	err := CheckPlan(p)
	if err == nil {
		t.Fatalf("CheckPlan(%+v): got nil, want four problems", p)
	}
	want := []string{"throttle: rate -1", `methods["GET /a"]: rate 0`, `methods["GET /b"]: burst -1`, "offset 28"}
	if got := strings.Split(err.Error(), "\n"); len(got) != len(want) {
		t.Fatalf("CheckPlan(%+v): got %q, want %d lines", p, got, len(want))
	} else {
		for i := range want {
			if !strings.Contains(got[i], want[i]) {
				t.Errorf("CheckPlan(%+v) line %d: got %q, want it to contain %q", p, i+1, got[i], want[i])
			}
		}
	}
}

// TestCheckPlanMatchesHandler checks the promise CheckPlan makes: the
// handler answers 500 for a request on a plan exactly when CheckPlan
// refuses the plan.
func TestCheckPlanMatchesHandler(t *testing.T) {
	t.Parallel()
	for _, tc := range planCases {
		for _, mode := range modes {
			t.Run(tc.desc+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				e := newEnvMode(t, mode, map[string]Options{"/x": {MethodKey: "GET /x"}}, tc.p)
				got := e.do("/x", "k1", tc.p.Name)
				refused := CheckPlan(tc.p) != nil
				if (got.status == 500) != refused {
					t.Errorf("GET /x on plan %+v: got %d %q; CheckPlan refuses it: %t", tc.p, got.status, got.body, refused)
				}
				if refused && got.recErr != "plan invalid" {
					t.Errorf("GET /x on plan %+v: record.Error got %q, want %q", tc.p, got.recErr, "plan invalid")
				}
			})
		}
	}
}
