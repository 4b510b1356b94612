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
