package limits

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// rateHeaders collects the RateLimit-Policy and RateLimit items for the
// limits one request met, in the shape of
// draft-ietf-httpapi-ratelimit-headers-10 (structured-field lists):
//
//	RateLimit-Policy: "key";q=200;w=2, "quota";q=100000;w=2592000
//	RateLimit: "key";r=199;t=1, "quota";r=99990;t=86400
//
// For a token bucket, q is its burst and w the seconds it takes to refill
// from empty (burst/rate, rounded up); r is the requests left now and t the
// seconds until it is full again. For a quota, q is the limit and w the
// window length; r is what is left and t the seconds until the window
// ends. Only limits actually checked appear: a request refused by its key
// bucket never learns the route's state. Policy names are "key", "route",
// "gateway" and "quota".
type rateHeaders struct {
	policy, state []string
}

func (h *rateHeaders) addThrottle(name string, t store.Throttle, d store.Decision) {
	var fill int64
	if t.Rate > 0 {
		fill = int64(math.Ceil(float64(t.Burst) / t.Rate))
	}
	h.policy = append(h.policy, item(name, "q", int64(t.Burst), "w", fill))
	h.state = append(h.state, item(name, "r", int64(max(d.Remaining, 0)), "t", secs(d.Reset)))
}

func (h *rateHeaders) addQuota(w store.Window, d store.QuotaDecision, now time.Time) {
	left := w.Limit - d.Used
	if !d.Allowed || left < 0 {
		left = 0
	}
	h.policy = append(h.policy, item("quota", "q", w.Limit, "w", secs(w.End.Sub(w.Start))))
	h.state = append(h.state, item("quota", "r", left, "t", secs(w.End.Sub(now))))
}

func (h *rateHeaders) write(hd http.Header) {
	if len(h.policy) == 0 {
		return
	}
	hd.Set("RateLimit-Policy", strings.Join(h.policy, ", "))
	hd.Set("RateLimit", strings.Join(h.state, ", "))
}

func item(name, k1 string, v1 int64, k2 string, v2 int64) string {
	return `"` + name + `";` + k1 + "=" + strconv.FormatInt(v1, 10) + ";" + k2 + "=" + strconv.FormatInt(v2, 10)
}

// secs rounds d up to whole seconds, never below 0.
func secs(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// ceilSeconds formats a Retry-After value: d rounded up to whole seconds,
// at least 1, since "Retry-After: 0" invites an immediate retry that the
// bucket would refuse again.
func ceilSeconds(d time.Duration) string {
	return strconv.FormatInt(max(secs(d), 1), 10)
}
