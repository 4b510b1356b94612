package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestEchoHandler(t *testing.T) {
	srv := httptest.NewTLSServer(echoHandler("app7"))
	defer srv.Close()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/orders/42?x=1&y=2", strings.NewReader(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Marker", "m-1")
	req.Header.Set("X-Lb-Addr", "10.201.2.2")
	req.Header.Set("X-Api-Key", "secret") // must not be echoed
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got Echo
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatalf("decoding the echo: %v", err)
	}
	want := Echo{App: "app7", Method: "POST", Path: "/orders/42", Query: "x=1&y=2", Body: `{"n":1}`,
		Headers: map[string]string{"X-Marker": "m-1", "X-Lb-Addr": "10.201.2.2"}}
	if got.App != want.App || got.Method != want.Method || got.Path != want.Path || got.Query != want.Query || got.Body != want.Body {
		t.Errorf("echo: got %+v, want %+v", got, want)
	}
	if len(got.Headers) != len(want.Headers) || got.Headers["X-Marker"] != "m-1" || got.Headers["X-Lb-Addr"] != "10.201.2.2" {
		t.Errorf("echoed headers: got %v, want %v", got.Headers, want.Headers)
	}
}
