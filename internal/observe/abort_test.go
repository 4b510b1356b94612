package observe_test

import (
	"io"
	"net/http"
	"testing"
)

// TestPanicAfterHeadersAbortsResponse: a handler that fails midway must
// not leave the partner with a truncated answer that looks complete.
func TestPanicAfterHeadersAbortsResponse(t *testing.T) {
	t.Parallel()
	f := newFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		http.NewResponseController(w).Flush()
		panic("midway")
	}))
	resp, err := f.client.Get(f.srv.URL + "/x")
	if err != nil {
		return // the connection was dropped before headers: also not a silent success
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Errorf("response after a panic midway: got complete body %q, want a read error", body)
	}
}
