package openapi

import (
	"fmt"
	"strings"
	"time"
)

// API is what a definition maps to: routes, the upstreams they call, and
// what the import noticed on the way.
type API struct {
	// File is the definition's path as given.
	File string
	// Title is info.title, for comments in generated config.
	Title string
	// Routes are in the definition's path order, then method order.
	Routes []Route
	// Upstreams are the backends the routes name, sorted by Name.
	Upstreams []Upstream
	// GatewayResponses are x-amazon-apigateway-gateway-responses, by
	// response type (THROTTLED, DEFAULT_4XX, ...).
	GatewayResponses map[string]GatewayResponse
	// Warnings are extensions or settings the import ignored or could
	// only approximate; each names file, path and method.
	Warnings []Problem
	// Skipped are the methods left out because Options.SkipUnsupported
	// was set (aws and aws_proxy integrations, authorizers).
	Skipped []Problem
}

// Route is one method of one path.
type Route struct {
	// Method is an HTTP method or ANY (x-amazon-apigateway-any-method).
	Method string
	// Path is the API Gateway resource path, e.g. /pets/{petId} or /{proxy+}.
	Path string
	// Upstream is the name of an entry of API.Upstreams; "" for a mock.
	Upstream string
	// UpstreamPath is the backend path template built from the
	// integration uri, with the method's {params} substituted.
	UpstreamPath string
	// UpstreamMethod is the integration's httpMethod when it differs from
	// Method; "" sends the request's own method.
	UpstreamMethod string
	// Timeout is timeoutInMillis; 0 keeps drawbridge's default (29 s).
	Timeout time.Duration
	// APIKeyRequired is set by an api_key security requirement.
	APIKeyRequired bool
	// RequestParameters are the integration's header and query string
	// mappings, in AWS's own syntax: "integration.request.header.X" →
	// "method.request.querystring.y" or "'literal'". Path mappings are
	// folded into UpstreamPath instead.
	RequestParameters map[string]string
	// StatusMap is a type http integration's responses: selection
	// pattern (or "default") → the status the partner gets.
	StatusMap map[string]int
	// Validate is set when a request validator applies to the method.
	Validate *Validate
	// Mock is set for a mock integration: the gateway answers itself.
	Mock *Mock
	// IP is what x-amazon-apigateway-policy lets call the route (its
	// aws:SourceIp conditions); nil when anyone may.
	IP *IPRules
	// Passthrough is the integration's passthroughBehavior, recorded for
	// the operator; drawbridge always passes the body through unchanged.
	Passthrough string
}

// Validate is what API Gateway's request validator checks for one method.
type Validate struct {
	// RequiredHeaders and RequiredQuery are the names of required
	// parameters, when validateRequestParameters is on. Path parameters
	// need no check: a request without them matches no route.
	RequiredHeaders []string
	RequiredQuery   []string
	// BodySchema is the application/json request model as a
	// self-contained JSON Schema document (every $ref inlined), when
	// validateRequestBody is on; "" checks no body.
	BodySchema string
}

// Mock is a static answer.
type Mock struct {
	Status  int
	Body    string
	Headers map[string]string
}

// Upstream is one backend the definition calls.
type Upstream struct {
	// Name is how routes refer to it: the name Options.Upstreams maps its
	// key to, or else the key itself.
	Name string
	// Key is the connectionId of a VPC_LINK integration, or the host[:port]
	// of an INTERNET integration's uri.
	Key string
	// Target is scheme://host:port from the integration uri; for a
	// VPC_LINK it is the address the uri names behind the link, which the
	// operator usually replaces (Options.Targets).
	Target string
	// ServerName is tlsConfig.serverNameToVerify.
	ServerName string
	// VPCLink reports that Key is a connectionId: Target is then the
	// address behind the link, as AWS saw it, not one drawbridge can reach.
	VPCLink bool
	// Mapped reports that Options.Upstreams named this upstream.
	Mapped bool
}

// Problem is one finding, located in the definition.
type Problem struct {
	File   string
	Line   int // 0 when unknown (Swagger 2.0 after conversion)
	Path   string
	Method string
	Msg    string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Path != "" {
		if p.Method != "" {
			b.WriteString(p.Method + " ")
		}
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem that stopped an import.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// JoinBasePath is path served under base path base ("/" or "/prod"), as
// API Gateway serves a stage at /{stage}/... and a custom domain's base
// path mapping at /{basePath}/....
func JoinBasePath(base, path string) string {
	base = strings.TrimSuffix(base, "/")
	if base == "" {
		return path
	}
	if path == "/" {
		return base
	}
	return base + path
}

// CheckBasePath says what is wrong with a base path, if anything: it is
// "/" or "/" followed by literal segments, such as "/prod" or "/v1/orders".
func CheckBasePath(base string) error {
	switch {
	case base == "/":
		return nil
	case !strings.HasPrefix(base, "/"):
		return fmt.Errorf("%q must start with \"/\", e.g. /prod", base)
	case strings.HasSuffix(base, "/"):
		return fmt.Errorf("%q must not end with \"/\"", base)
	case strings.Contains(base, "//"):
		return fmt.Errorf("%q has an empty segment", base)
	case strings.ContainsAny(base, "{}?#%;\\"):
		return fmt.Errorf("%q must be literal segments, without {params}, ?, #, %%, ; or \\", base)
	}
	return nil
}

// GatewayResponse is one customized gateway response type.
type GatewayResponse struct {
	Status  int               // 0 keeps the type's default
	Headers map[string]string // static gatewayresponse.header.* values
	Body    string            // the application/json template; "" keeps the default
}
