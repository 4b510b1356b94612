package transport

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestRotatingNewPool: after Rotate, requests go over a new connection
// (HTTP/2, which would otherwise multiplex everything on the old one),
// verified as before, while a request already in flight finishes on the
// old connection.
func TestRotatingNewPool(t *testing.T) {
	f := newFixture(t)
	var conns atomic.Int64
	inSlow, release := make(chan struct{}), make(chan struct{})
	srv := backend(t, f.selfIP.TLS, func(s *httptest.Server) {
		s.EnableHTTP2 = true
		s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		}
		s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				close(inSlow)
				<-release
			}
			io.WriteString(w, r.Proto)
		})
	})
	tr, err := New(Options{Upstream: "test", Pins: []string{SPKIPin(f.selfIP.Cert)}})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRotating(tr)
	defer r.CloseIdleConnections()
	client := &http.Client{Transport: r}
	fetch := func(path string) (string, error) {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	if got, err := fetch("/"); err != nil || got != "HTTP/2.0" {
		t.Fatalf("first request: got %q, %v, want HTTP/2.0", got, err)
	}
	slow := make(chan error, 1)
	go func() {
		got, err := fetch("/slow")
		if err == nil && got != "HTTP/2.0" {
			err = io.ErrUnexpectedEOF
		}
		slow <- err
	}()
	<-inSlow
	if n := conns.Load(); n != 1 {
		t.Fatalf("connections before Rotate: got %d, want 1 (HTTP/2 multiplexes)", n)
	}

	r.Rotate()
	if got, err := fetch("/"); err != nil || got != "HTTP/2.0" {
		t.Fatalf("request after Rotate: got %q, %v, want HTTP/2.0", got, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("connections after Rotate and one request: got %d, want 2 (a new pool)", n)
	}
	close(release)
	if err := <-slow; err != nil {
		t.Errorf("request in flight during Rotate: %v", err)
	}
}
