package gwresponse

import (
	"net/http"
	"strconv"
)

// Type is an API Gateway gateway response type, e.g. "THROTTLED".
type Type string

// API Gateway's gateway response types, with drawbridge's two additions at
// the end. See the AWS "Gateway response types" reference.
const (
	AccessDenied                 Type = "ACCESS_DENIED"
	APIConfigurationError        Type = "API_CONFIGURATION_ERROR"
	AuthorizerConfigurationError Type = "AUTHORIZER_CONFIGURATION_ERROR"
	AuthorizerFailure            Type = "AUTHORIZER_FAILURE"
	BadRequestParameters         Type = "BAD_REQUEST_PARAMETERS"
	BadRequestBody               Type = "BAD_REQUEST_BODY"
	Default4XX                   Type = "DEFAULT_4XX"
	Default5XX                   Type = "DEFAULT_5XX"
	ExpiredToken                 Type = "EXPIRED_TOKEN"
	IntegrationFailure           Type = "INTEGRATION_FAILURE"
	IntegrationTimeout           Type = "INTEGRATION_TIMEOUT"
	InvalidAPIKey                Type = "INVALID_API_KEY"
	InvalidSignature             Type = "INVALID_SIGNATURE"
	MissingAuthenticationToken   Type = "MISSING_AUTHENTICATION_TOKEN"
	QuotaExceeded                Type = "QUOTA_EXCEEDED"
	RequestTooLarge              Type = "REQUEST_TOO_LARGE"
	ResourceNotFound             Type = "RESOURCE_NOT_FOUND"
	Throttled                    Type = "THROTTLED"
	Unauthorized                 Type = "UNAUTHORIZED"
	UnsupportedMediaType         Type = "UNSUPPORTED_MEDIA_TYPE"
	WAFFiltered                  Type = "WAF_FILTERED"

	// BadGateway is drawbridge's: the backend refused the connection or
	// failed TLS verification. API Gateway answers 500 here; drawbridge
	// answers 502 because the backend, not the gateway, failed.
	BadGateway Type = "DRAWBRIDGE_BAD_GATEWAY"
	// ServiceUnavailable is drawbridge's: every target of the upstream is
	// down or ejected, so the request is refused at once instead of hanging.
	ServiceUnavailable Type = "DRAWBRIDGE_SERVICE_UNAVAILABLE"
)

// Response is a prepared gateway response: everything but the request ID
// is computed once, so writing one costs no formatting.
type Response struct {
	Status    int
	ErrorType string // x-amzn-ErrorType value; "" sends none
	Body      []byte
	length    string
	typ       Type   // for customization (see Customs)
	message   string // the message in Body, for $context.error.message
}

// A note on bodies: API Gateway's defaults are not uniform. Some put no
// space after the colon, others one space; AWS's own Content-Length values
// show it. Partners who compare bodies byte for byte see no difference.
var defaults = map[Type]*Response{
	AccessDenied:                 newResponse(403, "AccessDeniedException", `{"Message":"User: anonymous is not authorized to perform: execute-api:Invoke"}`),
	APIConfigurationError:        newResponse(500, "InternalServerErrorException", `{"message": "Internal server error"}`),
	AuthorizerConfigurationError: newResponse(500, "InternalServerErrorException", `{"message": "Internal server error"}`),
	AuthorizerFailure:            newResponse(500, "InternalServerErrorException", `{"message": "Internal server error"}`),
	BadRequestParameters:         newResponse(400, "BadRequestException", `{"message": "Missing required request parameters"}`),
	BadRequestBody:               newResponse(400, "BadRequestException", `{"message": "Invalid request body"}`),
	Default4XX:                   newResponse(400, "BadRequestException", `{"message":"Bad Request"}`),
	Default5XX:                   newResponse(500, "InternalServerErrorException", `{"message": "Internal server error"}`),
	ExpiredToken:                 newResponse(403, "ExpiredTokenException", `{"message":"The security token included in the request is expired"}`),
	IntegrationFailure:           newResponse(504, "InternalServerErrorException", `{"message": "Internal server error"}`),
	IntegrationTimeout:           newResponse(504, "InternalServerErrorException", `{"message": "Endpoint request timed out"}`),
	InvalidAPIKey:                newResponse(403, "ForbiddenException", `{"message":"Forbidden"}`),
	InvalidSignature:             newResponse(403, "InvalidSignatureException", `{"message":"Invalid signature"}`),
	MissingAuthenticationToken:   newResponse(403, "MissingAuthenticationTokenException", `{"message":"Missing Authentication Token"}`),
	QuotaExceeded:                newResponse(429, "LimitExceededException", `{"message":"Limit Exceeded"}`),
	RequestTooLarge:              newResponse(413, "RequestTooLargeException", `{"message":"Request Too Long"}`),
	ResourceNotFound:             newResponse(404, "", `{"message":"Not Found"}`),
	Throttled:                    newResponse(429, "TooManyRequestsException", `{"message":"Too Many Requests"}`),
	Unauthorized:                 newResponse(401, "UnauthorizedException", `{"message":"Unauthorized"}`),
	UnsupportedMediaType:         newResponse(415, "", `{"message":"Unsupported Media Type"}`),
	WAFFiltered:                  newResponse(403, "ForbiddenException", `{"message":"Forbidden"}`),

	BadGateway:         newResponse(502, "InternalServerErrorException", `{"message": "Internal server error"}`),
	ServiceUnavailable: newResponse(503, "InternalServerErrorException", `{"message": "Internal server error"}`),
}

func init() {
	for t, r := range defaults {
		r.typ, r.message = t, defaultMessage(r.Body)
	}
}

func newResponse(status int, errorType, body string) *Response {
	return &Response{Status: status, ErrorType: errorType, Body: []byte(body), length: strconv.Itoa(len(body))}
}

// Types lists every known type, API Gateway's first, for docs and tests.
func Types() []Type {
	return []Type{
		AccessDenied, APIConfigurationError, AuthorizerConfigurationError, AuthorizerFailure,
		BadRequestParameters, BadRequestBody, Default4XX, Default5XX, ExpiredToken,
		IntegrationFailure, IntegrationTimeout, InvalidAPIKey, InvalidSignature,
		MissingAuthenticationToken, QuotaExceeded, RequestTooLarge, ResourceNotFound,
		Throttled, Unauthorized, UnsupportedMediaType, WAFFiltered,
		BadGateway, ServiceUnavailable,
	}
}

// Default returns the default response for t, or DEFAULT_5XX's for an
// unknown type (a programming error must not leak as an empty answer).
func Default(t Type) *Response {
	if r, ok := defaults[t]; ok {
		return r
	}
	return defaults[Default5XX]
}

// Write sends the default response of type t.
func Write(w http.ResponseWriter, t Type) {
	Default(t).Write(w)
}

// Write sends r. Headers the handler already set (x-amzn-RequestId, set by
// the outermost middleware on every response) are kept.
func (r *Response) Write(w http.ResponseWriter) {
	if c := customFor(w, r.typ, r.Status); c != nil {
		writeCustom(w, r, c, r.message)
		return
	}
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Content-Length"] = []string{r.length}
	if r.ErrorType != "" {
		h["X-Amzn-Errortype"] = []string{r.ErrorType}
	}
	w.WriteHeader(r.Status)
	w.Write(r.Body)
}

var contentTypeJSON = []string{"application/json"}

// Handler returns an http.Handler that always answers with type t, e.g. the
// router's answer for unknown resources.
func Handler(t Type) http.Handler {
	r := Default(t)
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { r.Write(w) })
}
