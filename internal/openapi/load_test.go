package openapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
