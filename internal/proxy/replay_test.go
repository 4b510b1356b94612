package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestResendOnClosedKeptAliveConnection: a backend that drops a kept-alive
// connection as the next request arrives on it (what a reload of the
// on-prem nginx does) costs the partner nothing when the request may be
// sent again: a GET, also with a small body, is resent on a new
// connection with the same body. A POST is not: it may have been acted on.
func TestResendOnClosedKeptAliveConnection(t *testing.T) {
	tests := []struct {
		method     string
		body       string
		wantStatus int
		wantHits   int64 // requests the backend saw after the first
		idemKey    string
	}{
		{"GET", "", 200, 2, ""},
		{"GET", `{"filter": "open"}`, 200, 2, ""},
		{"PUT", `{"state": "done"}`, 502, 1, ""},
		{"POST", `{"order": 1}`, 502, 1, ""},
		// net/http resends a POST with GetBody and an Idempotency-Key
		// itself; the gateway must not give it the means.
		{"POST", `{"order": 2}`, 502, 1, "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.body+" "+tt.idemKey, func(t *testing.T) {
			t.Parallel()
			cert := newCert(t)
			var mu sync.Mutex
			perConn := map[string]int{}
			var bodies []string
			b := newBackend(t, cert, false, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				mu.Lock()
				perConn[r.RemoteAddr]++
				n := perConn[r.RemoteAddr]
				if r.URL.Path == "/second" {
					bodies = append(bodies, string(body))
				}
				mu.Unlock()
				if n == 2 { // the second request on a connection: drop it
					if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
						conn.Close()
					}
					return
				}
				io.WriteString(w, "ok")
			})
			e := newEnv(t, envOptions{targets: []string{b.srv.URL}, pin: cert})
			client := e.front.Client()

			resp, err := client.Get(e.front.URL + "/first")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()

			before := b.hits.Load()
			req, _ := http.NewRequest(tt.method, e.front.URL+"/second", strings.NewReader(tt.body))
			if tt.body == "" {
				req.Body = nil
			}
			if tt.idemKey != "" {
				req.Header.Set("Idempotency-Key", tt.idemKey)
			}
			resp, err = client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("%s on a connection the backend drops: got %d, want %d", tt.method, resp.StatusCode, tt.wantStatus)
			}
			if got := b.hits.Load() - before; got != tt.wantHits {
				t.Errorf("backend saw %d requests for it, want %d", got, tt.wantHits)
			}
			mu.Lock()
			defer mu.Unlock()
			for i, got := range bodies {
				if got != tt.body {
					t.Errorf("attempt %d: backend got body %q, want %q", i+1, got, tt.body)
				}
			}
		})
	}
}
