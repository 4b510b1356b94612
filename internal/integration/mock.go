package integration

import (
	"net/http"
	"strconv"

	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"
)

// Mock is a static answer: API Gateway's mock integration.
type Mock struct {
	Status  int // 0 = 200
	Body    string
	Headers map[string]string
}

// NewMock returns a handler that answers every request with m. Headers
// and body are prepared once.
func NewMock(m Mock) http.Handler {
	status := m.Status
	if status == 0 {
		status = http.StatusOK
	}
	h := http.Header{}
	for k, v := range m.Headers {
		// Config refuses framing headers (gwresponse.CheckHeader); the
		// server frames the answer in any case.
		if gwresponse.CheckHeader(k, v) == nil {
			h.Set(k, v)
		}
	}
	body := []byte(m.Body)
	if gwresponse.Bodiless(status) {
		body = nil
	} else {
		if h.Get("Content-Type") == "" {
			h.Set("Content-Type", "application/json")
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		if r.Method != http.MethodHead && len(body) > 0 {
			w.Write(body)
		}
	})
}
