package gwresponse

import (
	"net/http/httptest"
	"testing"
)

func TestWriteMatchesAPIGateway(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc      string
		typ       Type
		status    int
		body      string
		errorType string
	}{
		{"unknown resource", MissingAuthenticationToken, 403, `{"message":"Missing Authentication Token"}`, "MissingAuthenticationTokenException"},
		{"bad key", InvalidAPIKey, 403, `{"message":"Forbidden"}`, "ForbiddenException"},
		{"throttled", Throttled, 429, `{"message":"Too Many Requests"}`, "TooManyRequestsException"},
		{"quota", QuotaExceeded, 429, `{"message":"Limit Exceeded"}`, "LimitExceededException"},
		{"timeout keeps AWS's space after the colon", IntegrationTimeout, 504, `{"message": "Endpoint request timed out"}`, "InternalServerErrorException"},
		{"invalid body", BadRequestBody, 400, `{"message": "Invalid request body"}`, "BadRequestException"},
		{"unauthorized", Unauthorized, 401, `{"message":"Unauthorized"}`, "UnauthorizedException"},
		{"not found has no error type", ResourceNotFound, 404, `{"message":"Not Found"}`, ""},
		{"drawbridge bad gateway", BadGateway, 502, `{"message": "Internal server error"}`, "InternalServerErrorException"},
		{"drawbridge no target", ServiceUnavailable, 503, `{"message": "Internal server error"}`, "InternalServerErrorException"},
		{"unknown type falls back to 5XX", Type("NOPE"), 500, `{"message": "Internal server error"}`, "InternalServerErrorException"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			rec.Header().Set("x-amzn-RequestId", "id-1")
			Write(rec, tc.typ)
			if rec.Code != tc.status {
				t.Errorf("Write(%s) status: got %d, want %d", tc.typ, rec.Code, tc.status)
			}
			if got := rec.Body.String(); got != tc.body {
				t.Errorf("Write(%s) body: got %s, want %s", tc.typ, got, tc.body)
			}
			if got := rec.Header().Get("x-amzn-ErrorType"); got != tc.errorType {
				t.Errorf("Write(%s) x-amzn-ErrorType: got %q, want %q", tc.typ, got, tc.errorType)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Write(%s) Content-Type: got %q", tc.typ, got)
			}
			if got := rec.Header().Get("x-amzn-RequestId"); got != "id-1" {
				t.Errorf("Write(%s) dropped x-amzn-RequestId: got %q", tc.typ, got)
			}
		})
	}
}

func TestEveryTypeHasADefault(t *testing.T) {
	t.Parallel()
	for _, typ := range Types() {
		if _, ok := defaults[typ]; !ok {
			t.Errorf("Types() lists %s but it has no default", typ)
		}
	}
	if len(Types()) != len(defaults) {
		t.Errorf("Types() has %d entries, defaults %d", len(Types()), len(defaults))
	}
}
