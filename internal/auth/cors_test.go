package auth

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCORSPreflight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc   string
		o      CORSOptions
		origin string
		want   map[string]string // header -> value; "" means absent
	}{
		{
			desc:   "allowed origin",
			o:      CORSOptions{AllowOrigins: []string{"https://app.example"}, AllowMethods: []string{"GET", "POST"}, AllowHeaders: []string{"x-api-key", "content-type"}, MaxAge: 10 * time.Minute, AllowCredentials: true},
			origin: "https://app.example",
			want: map[string]string{
				"Access-Control-Allow-Origin":      "https://app.example",
				"Access-Control-Allow-Methods":     "GET, POST",
				"Access-Control-Allow-Headers":     "x-api-key, content-type",
				"Access-Control-Max-Age":           "600",
				"Access-Control-Allow-Credentials": "true",
				"Vary":                             "Origin",
			},
		},
		{
			desc:   "origin case differs",
			o:      CORSOptions{AllowOrigins: []string{"https://App.Example:8443"}},
			origin: "https://app.example:8443",
			want:   map[string]string{"Access-Control-Allow-Origin": "https://app.example:8443", "Vary": "Origin"},
		},
		{
			desc:   "defaults",
			o:      CORSOptions{AllowOrigins: []string{"https://app.example"}},
			origin: "https://app.example",
			want: map[string]string{
				"Access-Control-Allow-Origin":      "https://app.example",
				"Access-Control-Allow-Methods":     "GET, HEAD, POST",
				"Access-Control-Allow-Headers":     "Content-Type, X-Amz-Date, Authorization, X-Api-Key, X-Amz-Security-Token",
				"Access-Control-Max-Age":           "",
				"Access-Control-Allow-Credentials": "",
			},
		},
		{
			desc:   "any origin",
			o:      CORSOptions{AllowOrigins: []string{"*"}},
			origin: "https://anything.example",
			want:   map[string]string{"Access-Control-Allow-Origin": "*", "Vary": "Origin"},
		},
		{
			desc:   "disallowed origin",
			o:      CORSOptions{AllowOrigins: []string{"https://app.example"}, AllowCredentials: true},
			origin: "https://evil.example",
			want: map[string]string{
				"Access-Control-Allow-Origin":      "",
				"Access-Control-Allow-Methods":     "",
				"Access-Control-Allow-Headers":     "",
				"Access-Control-Allow-Credentials": "",
				"Vary":                             "Origin",
			},
		},
		{
			desc:   "origin with another port",
			o:      CORSOptions{AllowOrigins: []string{"https://app.example"}},
			origin: "https://app.example:8443",
			want:   map[string]string{"Access-Control-Allow-Origin": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			var reached atomic.Bool
			next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Store(true) })
			h, err := NewCORS(tt.o, next)
			if err != nil {
				t.Fatalf("NewCORS(%+v): %v", tt.o, err)
			}
			srv := newServer(t, h)
			req, err := http.NewRequest(http.MethodOptions, srv.URL+"/orders/1", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Origin", tt.origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "x-api-key, content-type")
			got := do(t, srv.Client(), req)
			if got.status != http.StatusNoContent || got.body != "" {
				t.Errorf("preflight from %s: got %d %q, want 204 and no body", tt.origin, got.status, got.body)
			}
			for name, want := range tt.want {
				if v := strings.Join(got.header.Values(name), ","); v != want {
					t.Errorf("preflight from %s: header %s: got %q, want %q", tt.origin, name, v, want)
				}
			}
			if reached.Load() {
				t.Errorf("preflight from %s reached next, want it answered by the gateway", tt.origin)
			}
		})
	}
}

func TestCORSActualRequest(t *testing.T) {
	t.Parallel()
	// The backend does CORS of its own; the gateway's headers replace its.
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Access-Control-Allow-Origin", "*")
		w.Header().Add("Access-Control-Allow-Methods", "DELETE")
		w.Header().Add("Vary", "Accept-Encoding")
		w.Header().Set("X-Request-Cost", "3")
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte("made"))
	})
	tests := []struct {
		desc       string
		o          CORSOptions
		origin     string
		wantStatus int
		want       map[string]string
	}{
		{
			desc:       "allowed origin",
			o:          CORSOptions{AllowOrigins: []string{"https://app.example", "https://other.example"}, ExposeHeaders: []string{"X-Request-Cost"}, AllowCredentials: true},
			origin:     "https://other.example",
			wantStatus: 201,
			want: map[string]string{
				"Access-Control-Allow-Origin":      "https://other.example",
				"Access-Control-Expose-Headers":    "X-Request-Cost",
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods":     "",
				"Vary":                             "Origin,Accept-Encoding",
			},
		},
		{
			desc:       "any origin",
			o:          CORSOptions{AllowOrigins: []string{"*"}},
			origin:     "https://app.example",
			wantStatus: 201,
			want:       map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": ""},
		},
		{
			desc:       "disallowed origin passes untouched",
			o:          CORSOptions{AllowOrigins: []string{"https://app.example"}},
			origin:     "https://evil.example",
			wantStatus: 201,
			want:       map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "DELETE", "Vary": "Origin,Accept-Encoding"},
		},
		{
			desc:       "no origin",
			o:          CORSOptions{AllowOrigins: []string{"https://app.example"}},
			wantStatus: 201,
			want:       map[string]string{"Access-Control-Allow-Origin": "*", "Vary": "Accept-Encoding"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			h, err := NewCORS(tt.o, backend)
			if err != nil {
				t.Fatalf("NewCORS(%+v): %v", tt.o, err)
			}
			srv := newServer(t, h)
			header := http.Header{}
			if tt.origin != "" {
				header.Set("Origin", tt.origin)
			}
			got := get(t, srv.Client(), srv.URL+"/orders/1", header)
			if got.status != tt.wantStatus || got.body != "made" {
				t.Errorf("GET from %q: got %d %q, want %d %q", tt.origin, got.status, got.body, tt.wantStatus, "made")
			}
			for name, want := range tt.want {
				if v := strings.Join(got.header.Values(name), ","); v != want {
					t.Errorf("GET from %q: header %s: got %q, want %q", tt.origin, name, v, want)
				}
			}
		})
	}
}

// TestCORSBeforeKeyCheck checks the order the package doc prescribes:
// preflights need no key, and refusals still carry the CORS headers so
// the page can read them.
func TestCORSBeforeKeyCheck(t *testing.T) {
	t.Parallel()
	keys, err := NewKeyCheck(KeyOptions{Store: newKeyStore(t, time.Now())}, identityEcho)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewCORS(CORSOptions{AllowOrigins: []string{"https://app.example"}}, keys)
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, h)

	req, err := http.NewRequest(http.MethodOptions, srv.URL+"/orders/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", "https://app.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	if got := do(t, srv.Client(), req); got.status != 204 || got.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("preflight without key: got %d, Access-Control-Allow-Origin %q; want 204 and the origin", got.status, got.header.Get("Access-Control-Allow-Origin"))
	}

	// OPTIONS without Access-Control-Request-Method is no preflight.
	req.Header.Del("Access-Control-Request-Method")
	if got := do(t, srv.Client(), req); got.status != 403 {
		t.Errorf("plain OPTIONS without key: got %d, want 403", got.status)
	}

	got := get(t, srv.Client(), srv.URL+"/orders/1", http.Header{"Origin": {"https://app.example"}})
	if got.status != 403 || got.body != `{"message":"Forbidden"}` || got.header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("GET without key: got %d %q, Access-Control-Allow-Origin %q; want 403 Forbidden with the origin", got.status, got.body, got.header.Get("Access-Control-Allow-Origin"))
	}
}

func TestNewCORSErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc    string
		o       CORSOptions
		wantErr string
	}{
		{desc: "credentials with any origin", o: CORSOptions{AllowOrigins: []string{"*"}, AllowCredentials: true}, wantErr: "cannot be combined with allow_credentials"},
		{desc: "no origins", o: CORSOptions{}, wantErr: "no allowed origins"},
		{desc: "star among origins", o: CORSOptions{AllowOrigins: []string{"*", "https://app.example"}}, wantErr: `"*" listed with other origins`},
		{desc: "origin with path", o: CORSOptions{AllowOrigins: []string{"https://app.example/login"}}, wantErr: `origin "https://app.example/login"`},
		{desc: "origin with trailing slash", o: CORSOptions{AllowOrigins: []string{"https://app.example/"}}, wantErr: `origin "https://app.example/"`},
		{desc: "origin without scheme", o: CORSOptions{AllowOrigins: []string{"app.example"}}, wantErr: `origin "app.example"`},
		{desc: "null origin", o: CORSOptions{AllowOrigins: []string{"null"}}, wantErr: `origin "null"`},
		{desc: "bad method", o: CORSOptions{AllowOrigins: []string{"*"}, AllowMethods: []string{"GET POST"}}, wantErr: `method "GET POST"`},
		{desc: "bad header", o: CORSOptions{AllowOrigins: []string{"*"}, AllowHeaders: []string{"x api key"}}, wantErr: `allow header "x api key"`},
		{desc: "bad expose header", o: CORSOptions{AllowOrigins: []string{"*"}, ExposeHeaders: []string{"a:b"}}, wantErr: `expose header "a:b"`},
		{desc: "negative max age", o: CORSOptions{AllowOrigins: []string{"*"}, MaxAge: -time.Second}, wantErr: "negative max_age"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			_, err := NewCORS(tt.o, identityEcho)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewCORS(%+v): got %v, want an error containing %q", tt.o, err, tt.wantErr)
			}
		})
	}
	if _, err := NewCORS(CORSOptions{AllowOrigins: []string{"https://app.example"}}, nil); err == nil {
		t.Errorf("NewCORS(nil next): got nil error, want one")
	}
}
