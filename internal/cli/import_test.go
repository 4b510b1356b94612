package cli

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

var updateImport = flag.Bool("update", false, "rewrite testdata/import/*.golden from the current output")

func definition(name string) string {
	return filepath.Join("..", "openapi", "testdata", name)
}

// TestImportOpenAPIGolden runs the import command on each fixture and
// checks its fragment against a golden file, then that the fragment, with
// a listener and each upstream's CA added as an operator would, is a
// config drawbridge validate accepts.
func TestImportOpenAPIGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"petstore", []string{definition("petstore-oas30.yaml")}},
		{"proxy-vpclink", []string{definition("proxy-swagger2.json"), "--stage", "prod", "--stage-var", "vpcLinkId=vl-abc", "--upstream", "vl-abc=https://10.0.0.5:8443", "--base-path", "/", "--base-path", "/prod"}},
		{"lambda-skipped", []string{definition("lambda-oas31.yaml"), "--skip-unsupported"}},
		{"policy", []string{definition("policy-oas30.yaml"), "--stage", "prod"}},
		{"external-ref", []string{definition("external-ref.yaml"), "--upstream", "petstore.example.com=https://pets.corp.internal"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := run(t, append([]string{"import", "openapi"}, tc.args...)...)
			if res.code != 0 {
				t.Fatalf("import openapi %v: exit %d\n%s", tc.args, res.code, res.stderr)
			}
			golden := filepath.Join("testdata", "import", tc.name+".golden")
			if *updateImport {
				if err := os.WriteFile(golden, []byte(res.stdout), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -update creates it)", err)
			}
			if res.stdout != string(want) {
				t.Errorf("import openapi %v differs from %s (go test -update rewrites it):\n%s", tc.args, golden, res.stdout)
			}
			cfg := completeConfig(t, res.stdout)
			if v := run(t, "validate", "-c", cfg); v.code != 0 {
				t.Errorf("validate of the imported fragment: exit %d\n%s", v.code, v.stderr)
			}
		})
	}
}

// completeConfig adds what an operator adds to a fragment (a listener,
// each upstream's CA) and writes it as a config file.
func completeConfig(t *testing.T, fragment string) string {
	t.Helper()
	dir := t.TempDir()
	front := certs.SelfSigned(t, certs.Options{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	certFile, keyFile := front.WriteFiles(t, dir)
	backendCA := certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}})
	caFile, _ := backendCA.WriteFiles(t, dir)

	var doc map[string]any
	if err := yaml.Unmarshal([]byte(fragment), &doc); err != nil {
		t.Fatalf("the fragment is not YAML: %v", err)
	}
	if ups, ok := doc["upstreams"].(map[string]any); ok {
		for _, u := range ups {
			um := u.(map[string]any)
			tls, _ := um["tls"].(map[string]any)
			if tls == nil {
				tls = map[string]any{}
			}
			tls["ca"] = caFile
			um["tls"] = tls
		}
	}
	doc["listeners"] = []any{map[string]any{"addr": "127.0.0.1:0", "tls": map[string]any{"cert": certFile, "key": keyFile}}}
	doc["store"] = map[string]any{"type": "memory"}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "drawbridge.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImportOpenAPIErrors(t *testing.T) {
	tests := []struct {
		desc string
		args []string
		want []string
	}{
		{"Lambda methods, all listed", []string{definition("lambda-oas31.yaml")}, []string{
			"lambda-oas31.yaml:14: POST /orders: integration type aws_proxy",
			"lambda-oas31.yaml:35: GET /reports/{id}: integration type aws ",
			`lambda-oas31.yaml:44: GET /admin: security scheme "lambda_auth" is an API Gateway authorizer`,
			"drawbridge: 3 problem(s) in ../openapi/testdata/lambda-oas31.yaml; nothing written",
		}},
		{"VPC link without an address", []string{definition("proxy-swagger2.json"), "--stage-var", "vpcLinkId=vl-abc"}, []string{
			`backend "vl-abc" (a VPC link) has no address here: give it with --upstream vl-abc=https://HOST:PORT`}},
		{"stage variable not given", []string{definition("proxy-swagger2.json")}, []string{
			`proxy-swagger2.json: GET /: connectionId uses stage variable "vpcLinkId", which is not set; give it (--stage-var vpcLinkId=VALUE`}},
		{"plaintext upstream URL", []string{definition("petstore-oas30.yaml"), "--upstream", "petstore.example.com=http://10.0.0.5"}, []string{
			`--upstream "petstore.example.com=http://10.0.0.5": drawbridge speaks HTTPS to backends`}},
		{"insecureSkipVerification", []string{definition("wrong-types.yaml")}, []string{
			"wrong-types.yaml:12: GET /b: tlsConfig.insecureSkipVerification is true", "--accept-skip-verification"}},
		{"bad base path", []string{definition("petstore-oas30.yaml"), "--base-path", "prod"}, []string{`--base-path: "prod" must start with "/"`}},
		{"no file", []string{"nope.yaml"}, []string{"nope.yaml: open nope.yaml: no such file or directory"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			res := run(t, append([]string{"import", "openapi"}, tc.args...)...)
			if res.code != 1 || res.stdout != "" {
				t.Errorf("import openapi %v: exit %d, stdout %q; want 1 and nothing", tc.args, res.code, res.stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("import openapi %v: stderr\n%s\nwant it to contain %q", tc.args, res.stderr, w)
				}
			}
		})
	}
}

func TestImportOpenAPIOutputFile(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "routes.yaml")
	res := run(t, "import", "openapi", definition("lambda-oas31.yaml"), "--skip-unsupported", "-o", out)
	if res.code != 0 || res.stdout != "" {
		t.Fatalf("import -o: exit %d, stdout %q, stderr %s", res.code, res.stdout, res.stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"# skipped: ../openapi/testdata/lambda-oas31.yaml:14: POST /orders", "path: /orders"} {
		if !strings.Contains(string(data), w) {
			t.Errorf("%s lacks %q:\n%s", out, w, data)
		}
	}
	for _, w := range []string{"skipped: ../openapi/testdata/lambda-oas31.yaml:14: POST /orders", fmt.Sprintf("wrote %s: 2 routes, 1 upstreams", out)} {
		if !strings.Contains(res.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, res.stderr)
		}
	}
}

// TestImportOpenAPIFragmentInjection: a definition's text cannot end a
// comment of the fragment and add config of its own.
func TestImportOpenAPIFragmentInjection(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	def := filepath.Join(dir, "evil.yaml")
	if err := os.WriteFile(def, []byte(`openapi: 3.0.1
info: {title: t, version: "1"}
paths:
  /a:
    get:
      "x-amazon-apigateway-evil\nlisteners: [{name: evil}]\r\n#": 1
      x-amazon-apigateway-integration: {type: http_proxy, httpMethod: GET, uri: "https://b.example.com/a"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	res := run(t, "import", "openapi", def)
	if res.code != 0 {
		t.Fatalf("import openapi: exit %d\n%s", res.code, res.stderr)
	}
	var got map[string]any
	if err := yaml.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatalf("the fragment is not YAML: %v\n%s", err, res.stdout)
	}
	if _, ok := got["listeners"]; ok {
		t.Errorf("the definition added listeners: to the fragment:\n%s", res.stdout)
	}
	if !strings.Contains(res.stdout, `x-amazon-apigateway-evil\nlisteners`) {
		t.Errorf("the warning does not show the escaped name:\n%s", res.stdout)
	}

	sni := filepath.Join(dir, "sni.yaml")
	if err := os.WriteFile(sni, []byte(`openapi: 3.0.1
info: {title: t, version: "1"}
paths:
  /a:
    get:
      x-amazon-apigateway-integration:
        type: http_proxy
        httpMethod: GET
        uri: "https://b.example.com/a"
        tlsConfig: {serverNameToVerify: "b.internal\nlisteners: []"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := run(t, "import", "openapi", sni); res.code != 1 || !strings.Contains(res.stderr, "serverNameToVerify \"b.internal\\nlisteners: []\" has spaces or control characters") {
		t.Errorf("import of a multi-line server name: exit %d\n%s", res.code, res.stderr)
	}
}

// TestYAMLScalarNested: a scalar written inside nesting stays valid YAML
// whatever it holds.
func TestYAMLScalarNested(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"plain", "two\nlines", "cr\rhere", "tab\tand: colon", "# hash", "'quote\"", "nul\x00"} {
		doc := "a:\n  b:\n    c: " + yamlScalar(s) + "\n"
		var got struct {
			A struct{ B struct{ C string } }
		}
		if err := yaml.Unmarshal([]byte(doc), &got); err != nil {
			t.Errorf("yamlScalar(%q) nested: %v\n%s", s, err, doc)
			continue
		}
		if got.A.B.C != s {
			t.Errorf("yamlScalar(%q) nested reads back %q", s, got.A.B.C)
		}
	}
}
