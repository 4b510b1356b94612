package integration

import (
	"net/http"
	"strconv"
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
		h.Set(k, v)
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(m.Body)))
	body := []byte(m.Body)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	})
}
