package openapi

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// refDefinition is a definition whose body model is a $ref to ref.
func refDefinition(ref string) string {
	return `openapi: 3.0.3
info: {title: R, version: "1"}
x-amazon-apigateway-request-validators: {all: {validateRequestBody: true, validateRequestParameters: false}}
x-amazon-apigateway-request-validator: all
paths:
  /a:
    post:
      requestBody:
        content:
          application/json:
            schema: {$ref: "` + ref + `"}
      x-amazon-apigateway-integration: {type: http_proxy, httpMethod: POST, uri: "https://b.example.com/a"}
`
}

// TestRefsConfined: $refs reach regular files in the definition's
// directory only; a secret elsewhere on the host is never inlined.
func TestRefsConfined(t *testing.T) {
	t.Parallel()
	top := t.TempDir()
	secret := filepath.Join(top, "secret.json")
	writeFile(t, secret, `{"type": "object", "description": "TOPSECRET"}`)
	dir := filepath.Join(top, "api")
	if err := os.MkdirAll(filepath.Join(dir, "models"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "models", "ok.json"), `{"type": "object", "description": "fine"}`)
	if err := os.Symlink(secret, filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc, ref, want string
	}{
		{"a file below the definition", "models/ok.json", ""},
		{"an absolute path elsewhere", secret, "outside the definition's directory"},
		{"a relative path out", "../secret.json", "outside the definition's directory"},
		{"a symbolic link out", "link.json", "not a regular file"},
		{"a directory", "models", "not a regular file"},
	}
	for i, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			def := filepath.Join(dir, "def"+string(rune('a'+i))+".yaml")
			writeFile(t, def, refDefinition(tc.ref))
			api, err := Import(def, Options{})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Import($ref %s): %v", tc.ref, err)
				}
				if !strings.Contains(api.Routes[0].Validate.BodySchema, "fine") {
					t.Errorf("Import($ref %s): body schema %s", tc.ref, api.Routes[0].Validate.BodySchema)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Import($ref %s) = %v; want an error containing %q", tc.ref, err, tc.want)
			}
			if api != nil && len(api.Routes) > 0 && api.Routes[0].Validate != nil && strings.Contains(api.Routes[0].Validate.BodySchema, "TOPSECRET") {
				t.Errorf("Import($ref %s) inlined the secret", tc.ref)
			}
		})
	}
}

// TestNestingThroughAliases: anchors nesting each other count at their
// expanded depth, and many aliases of one anchor are checked once each.
func TestNestingThroughAliases(t *testing.T) {
	t.Parallel()
	nested := func(depth int, inner string) string {
		return strings.Repeat("[", depth) + inner + strings.Repeat("]", depth)
	}
	var deep strings.Builder
	deep.WriteString("openapi: 3.0.3\ninfo: {title: A, version: '1'}\nx-deep:\n")
	fmt.Fprintf(&deep, "  k0: &a0 %s\n", nested(40, "0"))
	for i := 1; i < 5; i++ {
		fmt.Fprintf(&deep, "  k%d: &a%d %s\n", i, i, nested(40, fmt.Sprintf("*a%d", i-1)))
	}
	deep.WriteString("paths: {/a: {get: {x-amazon-apigateway-integration: {type: mock}}}}\n")
	def := filepath.Join(t.TempDir(), "alias.yaml")
	writeFile(t, def, deep.String())
	if _, err := Import(def, Options{}); err == nil || !strings.Contains(err.Error(), "nested more than 64 levels deep (aliases expanded)") {
		t.Errorf("Import(anchors nesting anchors) = %v; want the nesting refused", err)
	}

	// Ten anchors each aliasing the previous one ten times: 10^10 nodes
	// expanded, 100 aliases to check.
	var wide strings.Builder
	wide.WriteString("a0: &a0 [x]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&wide, "a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", "))
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(wide.String()), &root); err != nil {
		t.Fatal(err)
	}
	if err := checkNesting(&root); err != nil {
		t.Errorf("checkNesting(wide aliases, 11 levels) = %v; want nil", err)
	}
}
