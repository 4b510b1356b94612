package gwresponse

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// outerWriter stands for a middleware's wrapper between the customs and
// the handler (CORS, access log).
type outerWriter struct{ http.ResponseWriter }

func (w outerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestCustoms(t *testing.T) {
	t.Parallel()
	customs := Customs{
		Throttled:  {Status: 503, Headers: map[string]string{"Retry-After": "1"}, Body: `{"error": $context.error.messageString, "raw": "$context.error.message", "type": "$context.error.responseType", "id": "$context.requestId"}`},
		Default4XX: {Headers: map[string]string{"Access-Control-Allow-Origin": "*"}},
		Default5XX: {Status: 500},
	}
	tests := []struct {
		desc       string
		customs    Customs
		write      func(http.ResponseWriter)
		status     int
		body       string
		header     string // Access-Control-Allow-Origin, or Retry-After for THROTTLED
		headerName string
	}{
		{desc: "customized type", customs: customs, write: func(w http.ResponseWriter) { Write(w, Throttled) },
			status: 503, body: `{"error": "Too Many Requests", "raw": "Too Many Requests", "type": "THROTTLED", "id": "req-1"}`, headerName: "Retry-After", header: "1"},
		{desc: "a 4xx inherits DEFAULT_4XX", customs: customs, write: func(w http.ResponseWriter) { Write(w, InvalidAPIKey) },
			status: 403, body: `{"message":"Forbidden"}`, headerName: "Access-Control-Allow-Origin", header: "*"},
		{desc: "a 5xx inherits DEFAULT_5XX", customs: customs, write: func(w http.ResponseWriter) { Write(w, BadGateway) },
			status: 500, body: `{"message": "Internal server error"}`, headerName: "Access-Control-Allow-Origin", header: ""},
		{desc: "a message of its own, customized", customs: customs, write: func(w http.ResponseWriter) {
			WriteMessage(w, BadRequestParameters, "Missing required request parameters: [a]")
		},
			status: 400, body: `{"message": "Missing required request parameters: [a]"}`, headerName: "Access-Control-Allow-Origin", header: "*"},
		{desc: "no customs: the default", write: func(w http.ResponseWriter) { Write(w, Throttled) },
			status: 429, body: `{"message":"Too Many Requests"}`, headerName: "Retry-After", header: ""},
		{desc: "no customs: a message of its own", write: func(w http.ResponseWriter) {
			WriteMessage(w, BadRequestParameters, "Missing required request parameters: [a, b]")
		},
			status: 400, body: `{"message": "Missing required request parameters: [a, b]"}`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			h := tc.customs.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tc.write(outerWriter{w})
			}))
			rec := httptest.NewRecorder()
			rec.Header().Set("X-Amzn-Requestid", "req-1")
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			if rec.Code != tc.status || rec.Body.String() != tc.body {
				t.Errorf("got %d %s, want %d %s", rec.Code, rec.Body, tc.status, tc.body)
			}
			if tc.headerName != "" && rec.Header().Get(tc.headerName) != tc.header {
				t.Errorf("%s = %q, want %q", tc.headerName, rec.Header().Get(tc.headerName), tc.header)
			}
			if rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Content-Length") != strconv.Itoa(len(tc.body)) {
				t.Errorf("headers %v", rec.Header())
			}
		})
	}
}

// TestCustomCannotBreakFraming: a customization cannot set how the
// response is framed, and a bodiless status gets no body.
func TestCustomCannotBreakFraming(t *testing.T) {
	t.Parallel()
	customs := Customs{
		Default4XX: {Headers: map[string]string{"Content-Length": "2", "Transfer-Encoding": "chunked", "Connection": "close", "X-Ok": "yes"}},
		Throttled:  {Status: 204, Body: `{"x": 1}`},
	}
	tests := []struct {
		desc   string
		typ    Type
		status int
		body   string
	}{
		{"framing headers are ignored", InvalidAPIKey, 403, `{"message":"Forbidden"}`},
		{"204 has no body", Throttled, 204, ""},
	}
	for _, tc := range tests {
		h := customs.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { Write(w, tc.typ) }))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Code != tc.status || rec.Body.String() != tc.body {
			t.Errorf("%s: got %d %q, want %d %q", tc.desc, rec.Code, rec.Body, tc.status, tc.body)
		}
		wantLen := strconv.Itoa(len(tc.body))
		if tc.body == "" {
			wantLen = ""
		}
		if got := rec.Header().Get("Content-Length"); got != wantLen {
			t.Errorf("%s: Content-Length %q, want %q", tc.desc, got, wantLen)
		}
		if rec.Header().Get("Transfer-Encoding") != "" || rec.Header().Get("Connection") != "" {
			t.Errorf("%s: framing headers written: %v", tc.desc, rec.Header())
		}
	}
}

func TestCheckHeaderAndStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"Access-Control-Allow-Origin", "*", true},
		{"content-length", "2", false},
		{"Transfer-Encoding", "chunked", false},
		{"Connection", "close", false},
		{"Trailer", "X", false},
		{"Upgrade", "h2c", false},
		{"X-A ", "a", false},
		{"X-A", "a\r\nX-B: b", false},
	} {
		if err := CheckHeader(tc.name, tc.value); (err == nil) != tc.ok {
			t.Errorf("CheckHeader(%q, %q) = %v, want ok %v", tc.name, tc.value, err, tc.ok)
		}
	}
	for status, ok := range map[int]bool{100: false, 101: false, 199: false, 200: true, 204: true, 599: true, 600: false} {
		if err := CheckStatus(status); (err == nil) != ok {
			t.Errorf("CheckStatus(%d) = %v, want ok %v", status, err, ok)
		}
	}
}

// TestTemplatePrepared: a body template is split once, when the
// middleware is built, and renders as the variables say; the longer
// $context.error.messageString is never read as ...message + "String".
func TestTemplatePrepared(t *testing.T) {
	t.Parallel()
	tests := []struct{ body, want string }{
		{`{"m": $context.error.messageString}`, `{"m": "Too \"Many\""}`},
		{`$context.error.message|$context.error.messageString`, `Too "Many"|"Too \"Many\""`},
		{`$context.requestId$context.error.responseType$`, `req-1THROTTLED$`},
		{`$context.unknown $ $$context.requestId`, `$context.unknown $ $req-1`},
		{`no variables`, `no variables`},
	}
	for _, tc := range tests {
		c := &Custom{Body: tc.body}
		h := Customs{Throttled: c}.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			WriteMessage(w, Throttled, `Too "Many"`)
		}))
		if c.body != nil {
			t.Errorf("%q: the middleware wrote into the Custom it was given; it may be shared", tc.body)
		}
		rec := httptest.NewRecorder()
		rec.Header().Set("X-Amzn-Requestid", "req-1")
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if rec.Body.String() != tc.want {
			t.Errorf("%q: got %q, want %q", tc.body, rec.Body, tc.want)
		}
	}
}
