package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateL4: validate accepts a config with tcp listeners, and finds
// a terminate listener's unparsable certificate, with its FILE:LINE,
// without serving.
func TestValidateL4(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	garbage := filepath.Join(f.dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name, cert string) string {
		text := fmt.Sprintf(`listeners:
  - name: nlb
    type: tcp
    addr: 127.0.0.1:0
    tls: {mode: passthrough}
    sni: {"*": raw}
  - name: nlb-tls
    type: tcp
    addr: 127.0.0.1:0
    tls: {mode: terminate, cert: %q, key: %q}
    sni: {"*": onprem}
admin: {addr: "off"}
store: {type: memory}
upstreams:
  raw:
    targets: [tcp://10.0.0.5:443]
  onprem:
    targets: [tls://10.0.0.6:443]
    tls: {ca: %q, server_name: backend.internal}
`, cert, f.frontKey, f.frontCert)
		path := filepath.Join(f.dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	if r := run(t, "validate", "-c", write("l4.yaml", f.frontCert)); r.code != 0 || !strings.Contains(r.stdout, "ok") {
		t.Errorf("validate an L4 config: exit %d, stdout %q, stderr %q; want ok", r.code, r.stdout, r.stderr)
	}
	bad := write("l4-bad.yaml", garbage)
	if r := run(t, "validate", "-c", bad); r.code == 0 || !strings.HasPrefix(r.stderr, bad+":10: ") {
		t.Errorf("validate with an unparsable terminate certificate: exit %d, stderr %q; want non-zero and %s:10: ...", r.code, r.stderr, bad)
	}
}
