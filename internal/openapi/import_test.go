package openapi

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the current output")

// TestImportGolden imports each fixture and compares the whole mapping
// with its golden file.
func TestImportGolden(t *testing.T) {
	tests := []struct {
		desc, file string
		opts       Options
	}{
		{desc: "OAS 3.0 YAML PetStore: http, http_proxy, mock, validators, api key", file: "petstore-oas30.yaml"},
		{desc: "Swagger 2.0 JSON {proxy+} ANY over a VPC link", file: "proxy-swagger2.json",
			opts: Options{StageVariables: map[string]string{"vpcLinkId": "vl-abc"}, Upstreams: map[string]string{"vl-abc": "orders"}}},
		{desc: "OAS 3.1 with Lambda methods skipped", file: "lambda-oas31.yaml", opts: Options{SkipUnsupported: true}},
		{desc: "external $ref relative to the file", file: "external-ref.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			api, err := Import(filepath.Join("testdata", tt.file), tt.opts)
			if err != nil {
				t.Fatalf("Import(%s): %v", tt.file, err)
			}
			got, err := json.MarshalIndent(api, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "golden", strings.TrimSuffix(tt.file, filepath.Ext(tt.file))+".json")
			if *update {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if strings.TrimSpace(string(want)) != strings.TrimSpace(string(got)) {
				t.Errorf("Import(%s) differs from %s (go test -update rewrites it):\n%s", tt.file, golden, got)
			}
		})
	}
}

// TestImportErrors checks that broken definitions fail with every problem
// named by file, line where known, path and method.
func TestImportErrors(t *testing.T) {
	tests := []struct {
		desc, file string
		opts       Options
		want       []string
	}{
		{desc: "Lambda and authorizer methods are all listed", file: "lambda-oas31.yaml", want: []string{
			"testdata/lambda-oas31.yaml:14: POST /orders: integration type aws_proxy (Lambda or another AWS service) cannot run outside AWS",
			"testdata/lambda-oas31.yaml:35: GET /reports/{id}: integration type aws ",
			"testdata/lambda-oas31.yaml:44: GET /admin: security scheme \"lambda_auth\" is an API Gateway authorizer",
			"(--skip-unsupported, or skip_unsupported: true under apis:, imports the rest)",
		}},
		{desc: "broken $ref", file: "broken-ref.yaml", want: []string{"testdata/broken-ref.yaml: loading: ", "#/components/schemas/Missing"}},
		{desc: "duplicate operationIds", file: "duplicate-opid.yaml", want: []string{
			`testdata/duplicate-opid.yaml:9: GET /b: operationId "fetch" is also used by GET /a`}},
		{desc: "wrong types and insecureSkipVerification", file: "wrong-types.yaml", want: []string{
			`testdata/wrong-types.yaml:5: GET /a: x-amazon-apigateway-integration: timeoutInMillis: want a whole number, got "soon"`,
			"testdata/wrong-types.yaml:12: GET /b: tlsConfig.insecureSkipVerification is true",
			"drawbridge pin https://b.example.com:443",
			"testdata/wrong-types.yaml:20: GET /c: x-amazon-apigateway-integration: want a mapping, got array",
		}},
		{desc: "stage variable not given", file: "proxy-swagger2.json", want: []string{
			`testdata/proxy-swagger2.json: GET /: connectionId uses stage variable "vpcLinkId", which is not set; give it (--stage-var vpcLinkId=VALUE`,
			`ANY /{proxy+}: connectionId uses stage variable "vpcLinkId"`,
		}},
		{desc: "missing file", file: "nope.yaml", want: []string{"testdata/nope.yaml: open testdata/nope.yaml: no such file"}},
		{desc: "not a definition", file: "models/pet.yaml", want: []string{`no top-level "openapi" (3.x) or "swagger" (2.0) key`}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			api, err := Import(filepath.Join("testdata", tt.file), tt.opts)
			var ie *Error
			if !errors.As(err, &ie) {
				t.Fatalf("Import(%s) = %v, %v; want an *Error", tt.file, api, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Import(%s) error:\n%v\nwant it to contain %q", tt.file, err, w)
				}
			}
		})
	}
}

func TestImportWarnsAboutUnknownExtensions(t *testing.T) {
	api, err := Import("testdata/lambda-oas31.yaml", Options{SkipUnsupported: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range api.Warnings {
		got = append(got, w.String())
	}
	want := "testdata/lambda-oas31.yaml:35: GET /reports/{id}: x-amazon-apigateway-cors-magic is not supported; ignored"
	if !strings.Contains(strings.Join(got, "\n"), want) {
		t.Errorf("warnings %q; want one %q", got, want)
	}
	if len(api.Skipped) != 3 {
		t.Errorf("skipped %v; want 3 methods", api.Skipped)
	}
}

func TestAcceptSkipVerification(t *testing.T) {
	dir := t.TempDir()
	def := filepath.Join(dir, "api.yaml")
	writeFile(t, def, `openapi: 3.0.3
info: {title: T, version: "1"}
paths:
  /a:
    get:
      x-amazon-apigateway-integration:
        type: http_proxy
        httpMethod: GET
        uri: https://b.example.com:8443/a
        tlsConfig: {insecureSkipVerification: true, serverNameToVerify: b.internal}
`)
	api, err := Import(def, Options{AcceptSkipVerification: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(api.Upstreams) != 1 || api.Upstreams[0].Target != "https://b.example.com:8443" || api.Upstreams[0].ServerName != "b.internal" {
		t.Errorf("upstreams %+v; want one https://b.example.com:8443 verifying b.internal", api.Upstreams)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPathologicalDefinitions: a huge file and a deeply nested schema get
// a clear error, quickly, never a hang or a panic. No timing is asserted:
// a hang would hit the test timeout.
func TestPathologicalDefinitions(t *testing.T) {
	dir := t.TempDir()

	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(50 << 20); err != nil { // sparse: 50 MB without writing it
		t.Fatal(err)
	}
	f.Close()

	deep := filepath.Join(dir, "deep.yaml")
	var b strings.Builder
	b.WriteString("openapi: 3.0.3\ninfo: {title: Deep, version: \"1\"}\npaths: {}\ncomponents:\n  schemas:\n    Deep: ")
	for range 1000 {
		b.WriteString(`{"type":"object","properties":{"a":`)
	}
	b.WriteString(`{"type":"string"}`)
	for range 1000 {
		b.WriteString("}}")
	}
	b.WriteString("\n")
	writeFile(t, deep, b.String())

	deepRef := filepath.Join(dir, "deep-ref.yaml")
	writeFile(t, deepRef, `openapi: 3.0.3
info: {title: DeepRef, version: "1"}
paths:
  /a:
    post:
      requestBody:
        content:
          application/json:
            schema: {$ref: "deep.yaml#/components/schemas/Deep"}
      x-amazon-apigateway-integration: {type: http_proxy, httpMethod: POST, uri: "https://b.example.com/a"}
`)

	recursive := filepath.Join(dir, "recursive.yaml")
	writeFile(t, recursive, `openapi: 3.0.3
info: {title: Tree, version: "1"}
x-amazon-apigateway-request-validators: {all: {validateRequestBody: true, validateRequestParameters: true}}
x-amazon-apigateway-request-validator: all
paths:
  /tree:
    post:
      requestBody:
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Node"}
      x-amazon-apigateway-integration: {type: http_proxy, httpMethod: POST, uri: "https://b.example.com/tree"}
components:
  schemas:
    Node:
      type: object
      properties:
        children: {type: array, items: {$ref: "#/components/schemas/Node"}}
`)

	tests := []struct {
		desc, file, want string
	}{
		{"50 MB file", big, "file is larger than 20 MiB"},
		{"schema nested 1,000 levels", deep, "nested more than 64 levels deep"},
		{"$ref to a deeply nested file", deepRef, "nested more than 64 levels deep"},
		{"recursive model under a body validator", recursive, `POST /tree: request body model: schema "#/components/schemas/Node" refers to itself`},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			t.Parallel()
			done := make(chan error, 1)
			go func() {
				_, err := Import(tt.file, Options{})
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Import(%s) = %v; want an error containing %q", tt.desc, err, tt.want)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("Import(%s) still running after 30s", tt.desc)
			}
		})
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "a.yaml", Line: 3, Path: "/x", Method: "GET", Msg: "bad"}, "a.yaml:3: GET /x: bad"},
		{Problem{File: "a.yaml", Msg: "bad"}, "a.yaml: bad"},
		{Problem{File: "a.json", Path: "/x", Msg: "bad"}, "a.json: /x: bad"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%s: got %q, want %q", fmt.Sprint(tt.p), got, tt.want)
		}
	}
}

func TestStageVariablesInRequestParameters(t *testing.T) {
	dir := t.TempDir()
	def := filepath.Join(dir, "api.yaml")
	writeFile(t, def, `openapi: 3.0.3
info: {title: T, version: "1"}
paths:
  /a:
    get:
      x-amazon-apigateway-integration:
        type: http_proxy
        httpMethod: GET
        uri: https://b.example.com/a
        requestParameters:
          integration.request.header.X-Env: stageVariables.env
          integration.request.header.X-Whole: ${stageVariables.env}
          integration.request.header.X-Inside: "'app-${stageVariables.env}'"
          integration.request.header.X-Ctx: context.requestId
          integration.request.header.X-Client-Ip: context.identity.sourceIp
`)
	api, err := Import(def, Options{StageVariables: map[string]string{"env": "prod"}})
	if err != nil {
		t.Fatal(err)
	}
	got := api.Routes[0].RequestParameters
	want := map[string]string{
		"integration.request.header.X-Client-Ip": "context.identity.sourceIp",
		"integration.request.header.X-Ctx":       "context.requestId",
		"integration.request.header.X-Env":       "'prod'",
		"integration.request.header.X-Whole":     "'prod'",
		"integration.request.header.X-Inside":    "'app-prod'",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("request parameters %v; want %v", got, want)
	}
	if len(api.Warnings) != 0 {
		t.Errorf("warnings %v; want none", api.Warnings)
	}
	_, err = Import(def, Options{})
	if err == nil || !strings.Contains(err.Error(), `requestParameters integration.request.header.X-Env uses stage variable "env", which is not set`) {
		t.Errorf("without the variable: %v", err)
	}
}

// TestUnsupportedParameterSourceRefused: a header API Gateway set from a
// source drawbridge cannot compute must not be left to the partner.
func TestUnsupportedParameterSourceRefused(t *testing.T) {
	t.Parallel()
	def := filepath.Join(t.TempDir(), "api.yaml")
	writeFile(t, def, `openapi: 3.0.3
info: {title: T, version: "1"}
paths:
  /a:
    get:
      x-amazon-apigateway-integration:
        type: http
        httpMethod: GET
        uri: https://b.example.com/a
        requestParameters:
          integration.request.header.X-Principal: context.authorizer.principalId
`)
	_, err := Import(def, Options{})
	if err == nil || !strings.Contains(err.Error(), "GET /a: requestParameters integration.request.header.X-Principal = context.authorizer.principalId: only") {
		t.Errorf("Import = %v; want the mapping refused", err)
	}
}

// TestExportPolicyRefusesWhatIAMCannotSay: routes whose ip rules a
// resource policy cannot give them, since its resources match across
// routes, fail the export instead of being opened or closed.
func TestExportPolicyRefusesWhatIAMCannotSay(t *testing.T) {
	t.Parallel()
	ups := []Upstream{{Name: "b", Key: "b.example.com", Target: "https://b.example.com:443"}}
	api := &API{Upstreams: ups, Routes: []Route{
		{Method: "ANY", Path: "/{proxy+}", Upstream: "b"},
		{Method: "GET", Path: "/admin", Upstream: "b", IP: &IPRules{Allow: []string{"10.0.0.0/8"}}},
	}}
	if _, err := Export(api); err == nil || !strings.Contains(err.Error(), "the ip rules of GET /admin cannot be written as a resource policy") {
		t.Errorf("Export = %v; want the routes named", err)
	}
	api.Routes[0].IP = &IPRules{Allow: []string{"10.0.0.0/8"}}
	out, err := Export(api)
	if err != nil {
		t.Fatalf("Export with the same rules on both: %v", err)
	}
	if !strings.Contains(string(out), "x-amazon-apigateway-policy:") || !strings.Contains(string(out), "10.0.0.0/8") {
		t.Errorf("Export wrote no policy:\n%s", out)
	}
}

// TestExportRoundTrip: import → export → import gives the same routes and
// upstreams, for every fixture that imports.
func TestExportRoundTrip(t *testing.T) {
	tests := []struct {
		file string
		opts Options
	}{
		{"petstore-oas30.yaml", Options{}},
		{"proxy-swagger2.json", Options{StageVariables: map[string]string{"vpcLinkId": "vl-abc"}, Upstreams: map[string]string{"vl-abc": "orders"}}},
		{"lambda-oas31.yaml", Options{SkipUnsupported: true}},
		{"external-ref.yaml", Options{}},
		{"policy-oas30.yaml", Options{Stage: "prod"}},
		{"policy-proxy-deny.yaml", Options{Stage: "prod"}},
		{"policy-any-split.yaml", Options{Stage: "prod"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			first, err := Import(filepath.Join("testdata", tt.file), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Export(first)
			if err != nil {
				t.Fatalf("Export: %v", err)
			}
			exported := filepath.Join(t.TempDir(), "exported.yaml")
			writeFile(t, exported, string(out))
			second, err := Import(exported, Options{Upstreams: tt.opts.Upstreams})
			if err != nil {
				t.Fatalf("importing the export: %v\n%s", err, out)
			}
			a, _ := json.MarshalIndent(struct{ R, U, G any }{first.Routes, first.Upstreams, first.GatewayResponses}, "", " ")
			b, _ := json.MarshalIndent(struct{ R, U, G any }{second.Routes, second.Upstreams, second.GatewayResponses}, "", " ")
			if string(a) != string(b) {
				t.Errorf("import → export → import changed the API:\nfirst:  %s\nsecond: %s\nexport:\n%s", a, b, out)
			}
		})
	}
}

func TestResourcePolicy(t *testing.T) {
	t.Parallel()
	api, err := Import("testdata/policy-oas30.yaml", Options{Stage: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*IPRules{}
	for _, r := range api.Routes {
		got[r.Method+" "+r.Path] = r.IP
	}
	want := map[string]*IPRules{
		"GET /orders/{id}":    {Allow: []string{"198.51.100.7", "203.0.113.0/24"}},
		"DELETE /orders/{id}": {Deny: everyone},
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("ip rules %s; want %s", g, w)
	}
	if len(api.Warnings) != 0 {
		t.Errorf("warnings %v; want none (binary media types need no setting)", api.Warnings)
	}
}

func TestRouteIPRules(t *testing.T) {
	t.Parallel()
	allowAll := `{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:/*"}`
	tests := []struct {
		desc, statements, method, path string
		want                           string // fmt of *IPRules, or the error
	}{
		{"allow all", allowAll, "GET", "/a", "<nil>"},
		{"no statement: implicit deny", `{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:/*/POST/*"}`, "GET", "/a", "&{[] [0.0.0.0/0 ::/0]}"},
		{"allow from ranges", `{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:/*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8"]}}}`, "GET", "/a", "&{[10.0.0.0/8] []}"},
		{"deny some", allowAll + `,{"Effect":"Deny","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:/*","Condition":{"IpAddress":{"aws:SourceIp":"192.0.2.1"}}}`, "GET", "/a", "&{[] [192.0.2.1]}"},
		{"allow all but some", `{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:/*","Condition":{"NotIpAddress":{"aws:SourceIp":"192.0.2.1"}}}`, "GET", "/a", "&{[] [192.0.2.1]}"},
		{"ANY route, Deny on one method denies", allowAll + `,{"Effect":"Deny","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:/*/DELETE/*"}`, "ANY", "/{proxy+}", "&{[] [0.0.0.0/0 ::/0]}"},
		{"ANY route, Allow on one method does not allow", `{"Effect":"Allow","Principal":"*","Action":"execute-api:Invoke","Resource":"execute-api:/*/GET/*"}`, "ANY", "/{proxy+}", "&{[] [0.0.0.0/0 ::/0]}"},
		{"other statements are ignored", allowAll + `,{"Effect":"Deny","Principal":"*","Action":"execute-api:ManageConnections","Resource":"*"}`, "GET", "/a", "<nil>"},
		{"unsupported condition", allowAll + `,{"Effect":"Deny","Principal":"*","Action":"execute-api:Invoke","Resource":"*","Condition":{"StringNotEquals":{"aws:SourceVpce":"vpce-1"}}}`, "GET", "/a", "Statement[1]: Condition StringNotEquals aws:SourceVpce cannot be evaluated here"},
		{"IAM principal", `{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123:root"},"Action":"execute-api:Invoke","Resource":"*"}`, "GET", "/a", `Statement[0]: Principal map[AWS:arn:aws:iam::123:root]: only "*" can be evaluated here`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			var raw any
			if err := json.Unmarshal([]byte(`{"Statement":[`+tc.statements+`]}`), &raw); err != nil {
				t.Fatal(err)
			}
			got := ""
			sts, err := parsePolicy(raw)
			if err == nil {
				var rules *IPRules
				rules, err = routeIPRules(sts, "", tc.method, tc.path)
				got = fmt.Sprint(rules)
			}
			if err != nil {
				got = err.Error()
			}
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("%s %s under %s: got %s, want %s", tc.method, tc.path, tc.statements, got, tc.want)
			}
		})
	}
}

// TestPolicyResourceMatching: a resource glob against a route template,
// which stands for every request the route serves.
func TestPolicyResourceMatching(t *testing.T) {
	t.Parallel()
	tests := []struct {
		resource, stage, method, path string
		could, always                 bool
	}{
		{"execute-api:/*", "prod", "GET", "/a/b", true, true},
		{"execute-api:/prod/GET/pets/*", "prod", "GET", "/pets/{id}", true, true},
		{"execute-api:/prod/GET/pets/*", "prod", "GET", "/pets", false, false},
		{"execute-api:/*/GET/*", "prod", "POST", "/x", false, false},
		{"execute-api:/*/GET/orders/42", "prod", "GET", "/orders/{id}", true, false},
		{"execute-api:/*/GET/orders/4?", "prod", "GET", "/orders/{id}", true, false},
		{"execute-api:/*/GET/orders/42/items", "prod", "GET", "/orders/{id}", false, false},
		{"execute-api:/*/GET/orders/*", "prod", "GET", "/orders/{id}/items", true, true},
		{"execute-api:/*/*/admin/*", "prod", "GET", "/{proxy+}", true, false},
		{"execute-api:/*/*/admin/*", "prod", "GET", "/public/{proxy+}", true, false},
		{"execute-api:/*/*/admin/*", "prod", "GET", "/public/{id}", false, false},
		{"execute-api:/test/*", "prod", "GET", "/{proxy+}", false, false},
		{"execute-api:/test/*", "", "GET", "/{proxy+}", true, false},
		{"arn:aws:execute-api:*", "prod", "GET", "/secret", true, true},
		{"arn:aws:execute-api:*:*:*/prod/GET/*", "prod", "GET", "/secret", true, true},
		{"arn:aws:execute-api:eu-west-1:123:abc/prod/GET/*", "prod", "GET", "/secret", true, true},
		{"arn:aws:execute-api:eu-west-1:123:abc/test/GET/*", "prod", "GET", "/secret", false, false},
		{"*", "prod", "DELETE", "/{proxy+}", true, true},
		{"arn:aws:s3:::bucket/*", "prod", "GET", "/secret", false, false},
	}
	for _, tc := range tests {
		r := parseResource(tc.resource)
		toks := subject(r, tc.stage, tc.method, tc.path)
		if got := couldMatch(r.glob, toks); got != tc.could {
			t.Errorf("couldMatch(%q, stage %q, %s %s) = %v, want %v", tc.resource, tc.stage, tc.method, tc.path, got, tc.could)
		}
		if got := alwaysMatches(r.glob, toks); got != tc.always {
			t.Errorf("alwaysMatches(%q, stage %q, %s %s) = %v, want %v", tc.resource, tc.stage, tc.method, tc.path, got, tc.always)
		}
	}
}

// TestPolicyFixtures: the resource policies that once lost their Deny
// statements, and a policy naming several stages imported with none.
func TestPolicyFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file, stage string
		want        string // route → ip rules, or the error
	}{
		{"policy-proxy-deny.yaml", "prod", `{"ANY /{proxy+}":{"Allow":["10.0.0.0/8"],"Deny":null},"GET /status":null}`},
		// /{proxy+} could serve GET /orders/42 too: the Deny takes it whole.
		{"policy-param-deny.yaml", "prod", `{"ANY /{proxy+}":{"Allow":null,"Deny":["0.0.0.0/0","::/0"]},"GET /orders":null,"GET /orders/{id}":{"Allow":null,"Deny":["0.0.0.0/0","::/0"]}}`},
		{"policy-short-arn.yaml", "prod", `{"GET /secret":{"Allow":null,"Deny":["192.0.2.0/24"]}}`},
		{"policy-not-resource.yaml", "prod", `unknown field "NotResource"`},
		// An ANY route whose methods the policy treats differently is
		// split; the path's own PUT keeps its route.
		{"policy-any-split.yaml", "prod", `{"DELETE /{proxy+}":{"Allow":null,"Deny":["0.0.0.0/0","::/0"]},"GET /{proxy+}":null,"HEAD /{proxy+}":{"Allow":null,"Deny":["0.0.0.0/0","::/0"]},"OPTIONS /{proxy+}":{"Allow":null,"Deny":["0.0.0.0/0","::/0"]},"PATCH /{proxy+}":{"Allow":null,"Deny":["0.0.0.0/0","::/0"]},"POST /{proxy+}":{"Allow":["10.0.0.0/8"],"Deny":null},"PUT /{proxy+}":{"Allow":null,"Deny":["0.0.0.0/0","::/0"]}}`},
		{"policy-stages.yaml", "", "names stages prod, test; give the stage being imported"},
		{"policy-stages.yaml", "prod", `{"GET /orders":{"Allow":["10.0.0.0/8"],"Deny":null}}`},
		{"policy-stages.yaml", "test", `{"GET /orders":null}`},
	}
	for _, tc := range tests {
		t.Run(tc.file+"/"+tc.stage, func(t *testing.T) {
			t.Parallel()
			api, err := Import("testdata/"+tc.file, Options{Stage: tc.stage})
			var got string
			if err != nil {
				got = err.Error()
			} else {
				rules := map[string]*IPRules{}
				for _, r := range api.Routes {
					rules[r.Method+" "+r.Path] = r.IP
				}
				b, _ := json.Marshal(rules)
				got = string(b)
			}
			if !strings.Contains(got, tc.want) {
				t.Errorf("Import(%s, stage %q): got %s, want %s", tc.file, tc.stage, got, tc.want)
			}
		})
	}
}

// TestMalformedDefinitions: wrong shapes anywhere give an error naming
// the file, never a panic.
func TestMalformedDefinitions(t *testing.T) {
	t.Parallel()
	head := "openapi: 3.0.3\ninfo: {title: M, version: \"1\"}\n"
	tests := []struct{ desc, text, want string }{
		{"paths is a number", head + "paths: 5\n", "m.yaml: "},
		{"path item is a number", head + "paths: {/a: 5}\n", "m.yaml: "},
		{"any-method is a number", head + "paths: {/a: {x-amazon-apigateway-any-method: 5}}\n", "ANY /a: x-amazon-apigateway-any-method: "},
		{"requestParameters is a list", head + "paths: {/a: {get: {x-amazon-apigateway-integration: {type: http_proxy, httpMethod: GET, uri: 'https://b/a', requestParameters: [a]}}}}\n", "requestParameters: want a mapping"},
		{"responses status is text", head + "paths: {/a: {get: {x-amazon-apigateway-integration: {type: mock, responses: {default: {statusCode: ok}}}}}}\n", "statusCode: want a whole number"},
		{"validators is a string", head + "x-amazon-apigateway-request-validators: all\npaths: {/a: {get: {x-amazon-apigateway-integration: {type: mock}}}}\n", "x-amazon-apigateway-request-validators: want a mapping"},
		{"unknown validator", head + "paths: {/a: {get: {x-amazon-apigateway-request-validator: strict, x-amazon-apigateway-integration: {type: mock}}}}\n", `request validator "strict" is not defined`},
		{"policy is a number", head + "x-amazon-apigateway-policy: 5\npaths: {/a: {get: {x-amazon-apigateway-integration: {type: mock}}}}\n", "x-amazon-apigateway-policy: "},
		{"gateway response of an unknown type", head + "x-amazon-apigateway-gateway-responses: {SLOW: {statusCode: 429}}\npaths: {/a: {get: {x-amazon-apigateway-integration: {type: mock}}}}\n", `"SLOW" is not an API Gateway response type`},
		{"gateway response framing header", head + "x-amazon-apigateway-gateway-responses: {DEFAULT_4XX: {responseParameters: {gatewayresponse.header.Content-Length: \"'2'\"}}}\npaths: {/a: {get: {x-amazon-apigateway-integration: {type: mock}}}}\n", "Content-Length cannot be set"},
		{"gateway response informational status", head + "x-amazon-apigateway-gateway-responses: {THROTTLED: {statusCode: 101}}\npaths: {/a: {get: {x-amazon-apigateway-integration: {type: mock}}}}\n", "101 is not a final HTTP status"},
		{"mock framing header", head + "paths: {/a: {get: {x-amazon-apigateway-integration: {type: mock, responses: {default: {statusCode: 200, responseParameters: {method.response.header.Transfer-Encoding: \"'chunked'\"}}}}}}}\n", "Transfer-Encoding cannot be set"},
		{"status mapping to 100", head + "paths: {/a: {get: {x-amazon-apigateway-integration: {type: http, httpMethod: GET, uri: 'https://b/a', responses: {default: {statusCode: 100}}}}}}\n", "100 is not a final HTTP status"},
		{"requestParameters literal with a line break", head + "paths: {/a: {get: {x-amazon-apigateway-integration: {type: http_proxy, httpMethod: GET, uri: 'https://b/a', requestParameters: {integration.request.header.X-A: \"'a\\r\\nX-B: b'\"}}}}}\n", "has control characters"},
		{"requestParameters to Via", head + "paths: {/a: {get: {x-amazon-apigateway-integration: {type: http_proxy, httpMethod: GET, uri: 'https://b/a', requestParameters: {integration.request.header.Via: \"'x'\"}}}}}\n", "header Via cannot be mapped"},
		{"uri without a host", head + "paths: {/a: {get: {x-amazon-apigateway-integration: {type: http_proxy, httpMethod: GET, uri: 'https:///a'}}}}\n", "has no host"},
		{"uri with a query", head + "paths: {/a: {get: {x-amazon-apigateway-integration: {type: http_proxy, httpMethod: GET, uri: 'https://b/a?x=1'}}}}\n", "has a query string"},
		{"uri param not mapped", head + "paths: {/a: {get: {x-amazon-apigateway-integration: {type: http_proxy, httpMethod: GET, uri: 'https://b/{x}'}}}}\n", "has {x}, but requestParameters has no integration.request.path.x"},
		{"no integration", head + "paths: {/a: {get: {responses: {}}}}\n", "no x-amazon-apigateway-integration"},
		{"empty file", "", "not an OpenAPI definition"},
		{"not YAML", "{[", "not JSON or YAML"},
		{"OpenAPI 2.5", "openapi: 2.5.0\n", `openapi version "2.5.0" is not supported`},
		{"Swagger 1.2", "swagger: \"1.2\"\n", `swagger version "1.2" is not supported`},
	}
	dir := t.TempDir()
	for i, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			sub := filepath.Join(dir, fmt.Sprint(i))
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(sub, "m.yaml")
			writeFile(t, path, tc.text)
			_, err := Import(path, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "m.yaml") {
				t.Errorf("Import(%s) = %v; want an error naming m.yaml and containing %q", tc.desc, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "internal error") {
				t.Errorf("Import(%s) panicked: %v", tc.desc, err)
			}
		})
	}
}
