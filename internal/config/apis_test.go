package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAPIRouteProblems covers every new route key and every error it can
// give.
func TestAPIRouteProblems(t *testing.T) {
	t.Parallel()
	route := func(extra string) string {
		return replace("    upstream: onprem\n", "    upstream: onprem\n"+extra)
	}
	mockRoute := func(extra string) string {
		return replace("    upstream: onprem\n", extra)
	}
	tests := []struct {
		desc, text, want string
	}{
		{"mock with upstream", route("    mock: {status: 200}\n"),
			`drawbridge.yaml:10: route "ANY /orders/{id}": a route with mock answers itself; remove upstream, or remove mock to forward`},
		{"mock status out of range", mockRoute("    mock: {status: 700}\n"),
			`drawbridge.yaml:10: route "ANY /orders/{id}": mock.status: 700 is not a final HTTP status; want 200 to 599`},
		{"mock bad header", mockRoute("    mock:\n      headers: {\"bad header\": x}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": mock.headers: "bad header" is not a valid header name`},
		{"mock informational status", mockRoute("    mock: {status: 101}\n"),
			`drawbridge.yaml:10: route "ANY /orders/{id}": mock.status: 101 is not a final HTTP status; want 200 to 599`},
		{"mock framing header", mockRoute("    mock:\n      headers: {Content-Length: \"2\"}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": mock.headers: Content-Length cannot be set: it frames the response on the connection, which the server does`},
		{"mock header value with a line break", mockRoute("    mock:\n      headers: {X-A: \"a\\r\\nX-B: b\"}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": mock.headers: X-A: value "a\r\nX-B: b" has control characters`},
		{"status_map informational status", route("    status_map: {default: 100}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": status_map "default": 100 is not a final HTTP status; want 200 to 599`},
		{"mock with upstream_path", mockRoute("    mock: {}\n    upstream_path: /x\n"),
			`drawbridge.yaml:9: route "ANY /orders/{id}": upstream_path has no effect on a mock route (there is no backend request)`},
		{"mock wrong type", mockRoute("    mock: yes\n"),
			`drawbridge.yaml:10: route "ANY /orders/{id}": mock: want a mapping of keys to values, got "yes"`},
		{"upstream_method", route("    upstream_method: FETCH\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": upstream_method "FETCH": want one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS`},
		{"request_parameters bad target", route("    request_parameters: {integration.request.body.x: \"'a'\"}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": request_parameters "integration.request.body.x": want integration.request.header.NAME or integration.request.querystring.NAME`},
		{"request_parameters path target", route("    request_parameters: {integration.request.path.x: method.request.path.id}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": request_parameters "integration.request.path.x": path parameters are mapped by upstream_path, e.g. upstream_path: /items/{id}`},
		{"request_parameters smuggling header", route("    request_parameters: {integration.request.header.Content-Length: \"'0'\"}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": request_parameters "integration.request.header.Content-Length": header Content-Length cannot be mapped (it belongs to the connection or the proxy, not the request)`},
		{"request_parameters bad header name", route("    request_parameters: {\"integration.request.header.X-A \": \"'a'\"}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": request_parameters "integration.request.header.X-A ": "X-A " is not a valid header name`},
		{"request_parameters literal with a line break", route("    request_parameters: {integration.request.header.X-A: \"'a\\r\\nX-B: b'\"}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": request_parameters "integration.request.header.X-A": value "a\r\nX-B: b" has control characters; a header cannot carry them`},
		{"request_parameters proxy header", route("    request_parameters: {integration.request.header.X-Forwarded-Proto: \"'http'\"}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": request_parameters "integration.request.header.X-Forwarded-Proto": header X-Forwarded-Proto cannot be mapped (it belongs to the connection or the proxy, not the request)`},
		{"request_parameters bad source", route("    request_parameters: {integration.request.header.X: context.authorizer.principalId}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": request_parameters "integration.request.header.X": source "context.authorizer.principalId": want method.request.header.NAME, method.request.querystring.NAME, method.request.path.NAME, context.requestId, context.identity.sourceIp or a 'static value'`},
		{"request_parameters unknown path param", route("    request_parameters: {integration.request.header.X: method.request.path.nope}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": request_parameters: method.request.path.nope is not a parameter of path "/orders/{id}"`},
		{"status_map bad pattern", route("    status_map: {\"4(\": 400}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": status_map "4(": not a regular expression: error parsing regexp: missing closing ): ` + "`^(?:4()$`"},
		{"status_map bad status", route("    status_map: {default: 1000}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": status_map "default": 1000 is not a final HTTP status; want 200 to 599`},
		{"status_map on a mock", mockRoute("    mock: {}\n    status_map: {default: 200}\n"),
			`drawbridge.yaml:9: route "ANY /orders/{id}": status_map has no effect on a mock route (there is no backend request)`},
		{"validate bad header name", route("    validate: {required_headers: [\"a b\"]}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": validate.required_headers: "a b" is not a valid name`},
		{"validate body_schema not JSON", route("    validate: {body_schema: \"{nope\"}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": validate.body_schema is not a JSON Schema: invalid character 'n' looking for beginning of object key string`},
		{"validate body_schema wrong type", route("    validate: {body_schema: '{\"type\": \"banana\"}'}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": validate.body_schema: unsupported 'type' value "banana"`},
		{"validate unknown key", route("    validate: {body: x}\n"),
			`drawbridge.yaml:11: route "ANY /orders/{id}": validate: unknown key "body"; valid keys here: required_headers, required_querystrings, body_schema`},
		{"gateway response unknown type", good + "gateway_responses:\n  SLOW_DOWN: {status: 429}\n",
			`drawbridge.yaml:12: gateway_responses: SLOW_DOWN: not an API Gateway response type; one of ACCESS_DENIED, API_CONFIGURATION_ERROR, AUTHORIZER_CONFIGURATION_ERROR, AUTHORIZER_FAILURE, BAD_REQUEST_PARAMETERS, BAD_REQUEST_BODY, DEFAULT_4XX, DEFAULT_5XX, EXPIRED_TOKEN, INTEGRATION_FAILURE, INTEGRATION_TIMEOUT, INVALID_API_KEY, INVALID_SIGNATURE, MISSING_AUTHENTICATION_TOKEN, QUOTA_EXCEEDED, REQUEST_TOO_LARGE, RESOURCE_NOT_FOUND, THROTTLED, UNAUTHORIZED, UNSUPPORTED_MEDIA_TYPE, WAF_FILTERED`},
		{"gateway response bad status", good + "gateway_responses:\n  THROTTLED: {status: 4290}\n",
			`drawbridge.yaml:12: gateway_responses: THROTTLED: status: 4290 is not a final HTTP status; want 200 to 599`},
		{"gateway response bad header", good + "gateway_responses:\n  THROTTLED:\n    headers: {\"a:b\": x}\n",
			`drawbridge.yaml:13: gateway_responses: THROTTLED: headers: "a:b" is not a valid header name`},
		{"gateway response unknown key", good + "gateway_responses:\n  THROTTLED: {template: x}\n",
			`drawbridge.yaml:12: gateway_responses."THROTTLED": unknown key "template"; valid keys here: status, headers, body`},
		{"apis without openapi", good + "apis:\n  - stage: prod\n",
			`drawbridge.yaml:12: apis[0]: openapi is required: the definition file, e.g. openapi: petstore.yaml`},
		{"apis missing file", good + "apis:\n  - openapi: nope.yaml\n",
			`drawbridge.yaml:12: apis[0]: openapi: cannot read "nope.yaml" (nope.yaml): no such file or directory`},
		{"apis unknown key", good + "apis:\n  - openapi: ca.pem\n    stage_variable: {}\n",
			`drawbridge.yaml:13: apis[0]: unknown key "stage_variable"; did you mean "stage_variables"?`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			path := writeConfig(t, tc.text)
			got := problems(t, path, noEnv)
			if !slices.Contains(got, tc.want) {
				t.Errorf("load(%s):\ngot  %q\nwant %q among them", tc.desc, got, tc.want)
			}
		})
	}
}

const petDefinition = `openapi: 3.0.3
info: {title: Pets, version: "1"}
x-amazon-apigateway-request-validators:
  all: {validateRequestBody: true, validateRequestParameters: true}
paths:
  /pets/{petId}:
    get:
      x-amazon-apigateway-integration:
        type: http_proxy
        httpMethod: GET
        uri: https://${stageVariables.host}/v1/pets/{id}
        requestParameters:
          integration.request.path.id: method.request.path.petId
          integration.request.header.X-Src: "'gw'"
        timeoutInMillis: 3000
        tlsConfig: {serverNameToVerify: pets.internal}
    post:
      x-amazon-apigateway-request-validator: all
      parameters: [{name: x-tenant, in: header, required: true, schema: {type: string}}]
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [name]}
      x-amazon-apigateway-integration:
        type: http_proxy
        httpMethod: PUT
        uri: https://${stageVariables.host}/v1/pets/{petId}
  /health:
    get:
      x-amazon-apigateway-integration:
        type: mock
        requestTemplates: {application/json: '{"statusCode": 200}'}
        responses: {default: {statusCode: "200", responseTemplates: {application/json: '{"ok": true}'}}}
      x-amazon-apigateway-unknown-thing: 1
`

func writeDefinition(t *testing.T, cfgPath, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(filepath.Dir(cfgPath), name), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAPIsImportRoutes(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, good+`apis:
  - openapi: pets.yaml
    stage: prod
    stage_variables: {host: pets.example.com}
    upstreams: {pets.example.com: onprem}
`)
	writeDefinition(t, path, "pets.yaml", petDefinition)
	cfg, err := load(path, noEnv)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	byName := map[string]*Route{}
	for _, r := range cfg.Routes {
		byName[r.Name] = r
	}
	get := byName["GET /pets/{petId}"]
	if get == nil {
		t.Fatalf("routes %v: want GET /pets/{petId} imported", slices.Collect(func(yield func(string) bool) {
			for n := range byName {
				yield(n)
			}
		}))
	}
	if get.Upstream != "onprem" || get.UpstreamPath != "/v1/pets/{petId}" || get.Timeout.D() != 3*time.Second || get.RequestParameters["integration.request.header.X-Src"] != "'gw'" || get.Line != 12 {
		t.Errorf("GET route = %+v; want upstream onprem, upstream_path /v1/pets/{petId}, timeout 3s, X-Src mapped, line 12", get)
	}
	post := byName["POST /pets/{petId}"]
	if post == nil || post.UpstreamMethod != "PUT" || post.Validate == nil || !slices.Equal(post.Validate.RequiredHeaders, []string{"x-tenant"}) || post.Validate.BodySchema == "" || post.Timeout.D() != DefaultRouteTimeout {
		t.Errorf("POST route = %+v; want upstream_method PUT, x-tenant required, a body schema, default timeout", post)
	}
	health := byName["GET /health"]
	if health == nil || health.Mock == nil || health.Mock.Status != 200 || health.Mock.Body != `{"ok": true}` || health.Upstream != "" {
		t.Errorf("health route = %+v; want a 200 mock", health)
	}
	if sn := cfg.Upstreams["onprem"].TLS.ServerName; sn != "pets.internal" {
		t.Errorf("onprem server_name = %q; want pets.internal from tlsConfig.serverNameToVerify", sn)
	}
	warnings := strings.Join(cfg.Warnings(), "\n")
	if want := "drawbridge.yaml:12: pets.yaml:29: GET /health: x-amazon-apigateway-unknown-thing is not supported; ignored"; !strings.Contains(warnings, want) {
		t.Errorf("warnings:\n%s\nwant %q", warnings, want)
	}
}

func TestAPIsProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, apis string
		want       []string
	}{
		{"stage variable missing and backend not mapped", "  - openapi: pets.yaml\n", []string{
			`drawbridge.yaml:12: pets.yaml:7: GET /pets/{petId}: uri uses stage variable "host", which is not set; give it (--stage-var host=VALUE, or stage_variables in config)`,
		}},
		{"backend not mapped", "  - openapi: pets.yaml\n    stage_variables: {host: pets.example.com}\n", []string{
			`drawbridge.yaml:12: apis[0] (pets.yaml): its backend "pets.example.com" (https://pets.example.com:443) is not mapped to an upstream: add upstreams: {"pets.example.com": NAME} naming an entry of upstreams: that says how to reach and verify it`,
		}},
		{"mapped to an undefined upstream", "  - openapi: pets.yaml\n    stage_variables: {host: pets.example.com}\n    upstreams: {pets.example.com: nowhere}\n", []string{
			`drawbridge.yaml:14: apis[0] (pets.yaml): upstreams: "pets.example.com" maps to upstream "nowhere", which is not defined under upstreams:`,
		}},
		{"bad base paths", "  - openapi: pets.yaml\n    stage_variables: {host: pets.example.com}\n    upstreams: {pets.example.com: onprem}\n    base_paths: [prod, /v1/, \"/{stage}\", /v1, /v1]\n", []string{
			`drawbridge.yaml:15: apis[0] (pets.yaml): base_paths: "prod" must start with "/", e.g. /prod`,
			`drawbridge.yaml:15: apis[0] (pets.yaml): base_paths: "/v1/" must not end with "/"`,
			`drawbridge.yaml:15: apis[0] (pets.yaml): base_paths: "/{stage}" must be literal segments, without {params}, ?, #, %, ; or \`,
			`drawbridge.yaml:15: apis[0] (pets.yaml): base_paths: "/v1" is listed twice`,
		}},
		{"bad throttle", "  - openapi: pets.yaml\n    stage_variables: {host: pets.example.com}\n    upstreams: {pets.example.com: onprem}\n    throttle: {rate: 0, burst: 1}\n", []string{
			`drawbridge.yaml:15: apis[0] (pets.yaml): throttle.rate must be a number of requests per second greater than 0, got 0`,
		}},
		{"route clash with a hand-written one", "  - openapi: pets.yaml\n    stage_variables: {host: pets.example.com}\n    upstreams: {pets.example.com: onprem}\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			text := good + "apis:\n" + tc.apis
			if tc.want == nil {
				text = replace("  - path: /orders/{id}\n", "  - path: /pets/{id}\n    methods: [GET]\n") + "apis:\n" + tc.apis
				tc.want = []string{`drawbridge.yaml:13: route "GET /pets/{petId}": duplicates route "GET /pets/{id}" at line 9 (same host, path shape and method); only one of them could ever match`}
			}
			path := writeConfig(t, text)
			writeDefinition(t, path, "pets.yaml", petDefinition)
			got := problems(t, path, noEnv)
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("load(%s):\ngot  %q\nwant %q among them", tc.desc, got, w)
				}
			}
		})
	}
}

func TestAPIsBasePathsAndThrottle(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, good+`apis:
  - openapi: pets.yaml
    stage: prod
    stage_variables: {host: pets.example.com}
    upstreams: {pets.example.com: onprem}
    base_paths: [/, /prod]
    throttle: {rate: 10, burst: 20}
`)
	writeDefinition(t, path, "pets.yaml", petDefinition)
	cfg, err := load(path, noEnv)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	var names []string
	for _, r := range cfg.Routes {
		names = append(names, r.Name)
		if r.Path != "/orders/{id}" && (r.Throttle == nil || r.Throttle.Rate != 10 || r.Throttle.Burst != 20) {
			t.Errorf("route %q throttle %+v; want the API's {10 20}", r.Name, r.Throttle)
		}
	}
	want := []string{"ANY /orders/{id}", "GET /health", "GET /pets/{petId}", "POST /pets/{petId}", "GET /prod/health", "GET /prod/pets/{petId}", "POST /prod/pets/{petId}"}
	if !slices.Equal(names, want) {
		t.Errorf("routes %q; want %q", names, want)
	}
}

func TestAPIsGatewayResponses(t *testing.T) {
	t.Parallel()
	def := petDefinition + `x-amazon-apigateway-gateway-responses:
  THROTTLED:
    statusCode: 503
    responseParameters: {gatewayresponse.header.Retry-After: "'1'"}
    responseTemplates: {application/json: '{"error": $context.error.messageString}'}
`
	apis := `apis:
  - openapi: pets.yaml
    stage_variables: {host: pets.example.com}
    upstreams: {pets.example.com: onprem}
`
	path := writeConfig(t, good+apis)
	writeDefinition(t, path, "pets.yaml", def)
	cfg, err := load(path, noEnv)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	g := cfg.GatewayResponses["THROTTLED"]
	if g == nil || g.Status != 503 || g.Headers["Retry-After"] != "1" || g.Body != `{"error": $context.error.messageString}` {
		t.Errorf("THROTTLED = %+v; want the definition's", g)
	}

	both := writeConfig(t, good+"gateway_responses:\n  THROTTLED: {status: 429}\n"+apis)
	writeDefinition(t, both, "pets.yaml", def)
	want := `drawbridge.yaml:14: apis[0] (pets.yaml): gateway response THROTTLED is also set under gateway_responses: at line 12, differently; gateway responses apply to the whole gateway: set it in one place`
	if got := problems(t, both, noEnv); !slices.Contains(got, want) {
		t.Errorf("problems %q; want %q", got, want)
	}

	// README's recipe: several stages are several apis: entries naming the
	// same file, which brings the same gateway responses each time.
	stages := writeConfig(t, good+`apis:
  - openapi: pets.yaml
    stage: prod
    stage_variables: {host: pets.example.com}
    upstreams: {pets.example.com: onprem}
    base_paths: [/prod]
  - openapi: pets.yaml
    stage: test
    stage_variables: {host: pets.example.com}
    upstreams: {pets.example.com: onprem}
    base_paths: [/test]
`)
	writeDefinition(t, stages, "pets.yaml", def)
	cfg, err = load(stages, noEnv)
	if err != nil {
		t.Fatalf("load of two stages of one definition: %v", err)
	}
	if g := cfg.GatewayResponses["THROTTLED"]; g == nil || g.Status != 503 {
		t.Errorf("THROTTLED = %+v; want the definition's", g)
	}
}
