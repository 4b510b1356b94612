package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

// TestExportOpenAPIRoundTrip: a config serving a definition is exported;
// a config serving the export validates and exports the same definition.
func TestExportOpenAPIRoundTrip(t *testing.T) {
	t.Parallel()
	def, err := filepath.Abs(definition("petstore-oas30.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(apis string) string {
		dir := t.TempDir()
		front := certs.SelfSigned(t, certs.Options{DNSNames: []string{"localhost"}})
		certFile, keyFile := front.WriteFiles(t, dir)
		path := filepath.Join(dir, "drawbridge.yaml")
		cfg := fmt.Sprintf(`listeners:
  - addr: 127.0.0.1:0
    tls: {cert: %q, key: %q}
store: {type: memory}
upstreams:
  onprem:
    targets: [https://10.0.2.10:8443]
    tls: {server_name: backend.internal, ca: %q}
%s`, certFile, keyFile, certFile, apis)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	first := write(fmt.Sprintf(`apis:
  - openapi: %q
    upstreams: {petstore.example.com: onprem}
routes:
  - path: /orders/{id}
    methods: [GET, PUT]
    upstream: onprem
    cors: {allow_origins: ["*"]}
`, def))
	exported := filepath.Join(t.TempDir(), "exported.yaml")
	res := run(t, "export", "openapi", "-c", first, "-o", exported)
	if res.code != 0 {
		t.Fatalf("export openapi: exit %d\n%s", res.code, res.stderr)
	}
	if want := `not exported: route "GET,PUT /orders/{id}": cors`; !strings.Contains(res.stderr, want) {
		t.Errorf("stderr %q; want %q", res.stderr, want)
	}
	second := write(fmt.Sprintf(`apis:
  - openapi: %q
    upstreams: {"10.0.2.10:8443": onprem}
`, exported))
	if v := run(t, "validate", "-c", second); v.code != 0 {
		t.Fatalf("validate of a config serving the export: exit %d\n%s", v.code, v.stderr)
	}
	again := run(t, "export", "openapi", "-c", second)
	want, err := os.ReadFile(exported)
	if err != nil {
		t.Fatal(err)
	}
	if again.code != 0 || again.stdout != string(want) {
		t.Errorf("export of the re-imported export differs (exit %d, %s):\n%s\nwant:\n%s", again.code, again.stderr, again.stdout, want)
	}
	if !strings.Contains(string(want), "uri: https://10.0.2.10:8443/api/v1/pets/{petId}") || !strings.Contains(string(want), "/orders/{id}:") {
		t.Errorf("export lacks the upstream uri or the hand-written route:\n%s", want)
	}
}
