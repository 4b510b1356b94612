package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/drawbridge-gw/drawbridge/internal/admin"
	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/gateway"
	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/memory"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

// keysConfig writes a config whose admin listener is adminYAML and whose
// store is storeYAML, with plan gold, and returns its path.
func keysConfig(t *testing.T, adminYAML, storeYAML string) string {
	t.Helper()
	dir := t.TempDir()
	c := certs.SelfSigned(t, certs.Options{DNSNames: []string{"localhost"}})
	certFile, keyFile := c.WriteFiles(t, dir)
	text := fmt.Sprintf(`listeners:
  - addr: 127.0.0.1:0
    tls: {cert: %q, key: %q}
admin: %s
upstreams:
  onprem:
    targets: [https://127.0.0.1:1]
    tls:
      server_name: backend.internal
      pins: [sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=]
routes:
  - path: /{proxy+}
    upstream: onprem
store: %s
plans:
  gold:
    throttle: {rate: 10, burst: 20}
`, certFile, keyFile, adminYAML, storeYAML)
	path := filepath.Join(dir, "drawbridge.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type keysResult struct {
	stdout, stderr string
	err            error
}

func runKeys(t *testing.T, args ...string) keysResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := keysCmd(&stdout, &stderr)
	cmd.SetArgs(args)
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	err := cmd.ExecuteContext(context.Background())
	return keysResult{stdout.String(), stderr.String(), err}
}

var keyLineRE = regexp.MustCompile(`(?m)^key: (\S+)$`)

func keyValue(t *testing.T, stdout string) string {
	t.Helper()
	m := keyLineRE.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("keys create: no line \"key: <value>\" in %q", stdout)
	}
	return m[1]
}

func sha(v string) string {
	s := sha256.Sum256([]byte(v))
	return hex.EncodeToString(s[:])
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string { return testutil.FreeAddr(t) }

const importCSV = "Name,Key,Enabled,UsagePlanIds\n" +
	"imported,imported-key-value-0123456789,TRUE,\"c7y23b,gold\"\n" +
	"acme,another-key-value-0123456789,TRUE,gold\n"

// exerciseKeys runs create, list, import and revoke against cfgPath and
// checks each result in st (opened after each command by open).
func exerciseKeys(t *testing.T, cfgPath string, check func(func(store.Store))) {
	t.Helper()
	r := runKeys(t, "create", "-c", cfgPath, "--name", "acme", "--plan", "gold")
	if r.err != nil {
		t.Fatalf("keys create: %v (stderr %q)", r.err, r.stderr)
	}
	generated := keyValue(t, r.stdout)
	r = runKeys(t, "create", "-c", cfgPath, "--name", "beta", "--plan", "gold", "--value", "partner-chosen-value-0123456789")
	if r.err != nil || keyValue(t, r.stdout) != "partner-chosen-value-0123456789" {
		t.Fatalf("keys create --value: got %q, %v; want the chosen value", r.stdout, r.err)
	}
	check(func(st store.Store) {
		for value, name := range map[string]string{generated: "acme", "partner-chosen-value-0123456789": "beta"} {
			k, err := st.KeyByHash(context.Background(), sha(value))
			if err != nil || k.Name != name || k.Plan != "gold" || !k.Enabled {
				t.Errorf("KeyByHash(hash of %s's value): got %+v, %v; want enabled %s in gold", name, k, err, name)
			}
		}
	})

	r = runKeys(t, "list", "-c", cfgPath)
	if r.err != nil {
		t.Fatalf("keys list: %v", r.err)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "acme ") || !strings.HasPrefix(lines[2], "beta ") {
		t.Errorf("keys list: got %q, want a header, acme and beta", r.stdout)
	}
	if strings.Contains(r.stdout, generated) || strings.Contains(r.stdout, "partner-chosen") {
		t.Errorf("keys list shows a key value: %q", r.stdout)
	}

	keyFile := filepath.Join(t.TempDir(), "keys.csv")
	os.WriteFile(keyFile, []byte(importCSV), 0o600)
	r = runKeys(t, "import", "-c", cfgPath, keyFile)
	if r.err != nil || !strings.Contains(r.stdout, "imported: 1\n") || !strings.Contains(r.stdout, "skipped: 1\n") || !strings.Contains(r.stdout, "  acme: ") {
		t.Errorf("keys import: got %q, %v; want 1 imported, acme skipped", r.stdout, r.err)
	}

	r = runKeys(t, "revoke", "-c", cfgPath, "--name", "acme")
	if r.err != nil || r.stdout != "revoked: acme\n" {
		t.Errorf("keys revoke: got %q, %v; want \"revoked: acme\"", r.stdout, r.err)
	}
	check(func(st store.Store) {
		ctx := context.Background()
		if k, err := st.KeyByName(ctx, "acme"); err != nil || k.RevokedAt.IsZero() {
			t.Errorf("KeyByName(acme) after revoke: got %+v, %v; want revoked", k, err)
		}
		if k, err := st.KeyByHash(ctx, sha("imported-key-value-0123456789")); err != nil || k.Name != "imported" || k.Plan != "gold" {
			t.Errorf("KeyByHash(imported value): got %+v, %v; want imported in gold", k, err)
		}
	})

	errs := []struct {
		desc         string
		args         []string
		wantContains string
	}{
		{desc: "unknown plan", args: []string{"create", "-c", cfgPath, "--name", "x", "--plan", "platinum"}, wantContains: "platinum"},
		{desc: "duplicate name", args: []string{"create", "-c", cfgPath, "--name", "beta", "--plan", "gold"}, wantContains: "already used"},
		{desc: "short value", args: []string{"create", "-c", cfgPath, "--name", "x", "--plan", "gold", "--value", "short"}, wantContains: "20 to 128"},
		{desc: "no plan", args: []string{"create", "-c", cfgPath, "--name", "x"}, wantContains: "plan"},
		{desc: "unknown key", args: []string{"revoke", "-c", cfgPath, "--name", "nobody"}, wantContains: "not found"},
		{desc: "missing name", args: []string{"revoke", "-c", cfgPath}, wantContains: "name"},
		{desc: "missing key file", args: []string{"import", "-c", cfgPath, filepath.Join(t.TempDir(), "none.csv")}, wantContains: "reading key file"},
	}
	for _, tc := range errs {
		t.Run(tc.desc, func(t *testing.T) {
			r := runKeys(t, tc.args...)
			if r.err == nil || !strings.Contains(r.err.Error(), tc.wantContains) {
				t.Errorf("keys %v: got error %v, want one containing %q", tc.args, r.err, tc.wantContains)
			}
		})
	}
}

func TestKeysThroughAdminAPI(t *testing.T) {
	st := memory.New()
	defer st.Close()
	if err := st.PutPlan(context.Background(), store.Plan{Name: "gold"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(admin.New(admin.Options{Store: st, Token: "cli-test-token-0123456789", Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	// A memory store in the config proves the commands went through the
	// API: a directly opened memory store would refuse.
	cfgPath := keysConfig(t, fmt.Sprintf("{addr: %q, token: cli-test-token-0123456789}", addr), "{type: memory}")
	exerciseKeys(t, cfgPath, func(f func(store.Store)) { f(st) })

	r := runKeys(t, "create", "-c", cfgPath, "--name", "gamma", "--plan", "gold")
	if r.err != nil || !strings.Contains(r.stdout, "the gateway at "+addr) {
		t.Errorf("keys create: got %q, %v; want it to name the gateway at %s", r.stdout, r.err, addr)
	}

	wrongToken := keysConfig(t, fmt.Sprintf("{addr: %q, token: not-the-token-0123456789}", addr), "{type: memory}")
	if r := runKeys(t, "list", "-c", wrongToken); r.err == nil || !strings.Contains(r.err.Error(), "401") || !strings.Contains(r.err.Error(), "admin.token") {
		t.Errorf("keys list with a wrong token: got %v, want a 401 naming admin.token", r.err)
	}
}

func TestKeysDirectToStore(t *testing.T) {
	for _, adminYAML := range []string{fmt.Sprintf("{addr: %q}", freeAddr(t)), `{addr: "off"}`} {
		t.Run(adminYAML, func(t *testing.T) {
			dbPath := filepath.Join(t.TempDir(), "state.db")
			cfgPath := keysConfig(t, adminYAML, fmt.Sprintf("{type: bolt, path: %q}", dbPath))
			cfg, err := config.Load(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			exerciseKeys(t, cfgPath, func(f func(store.Store)) {
				st, err := gateway.OpenStore(cfg, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatalf("OpenStore: %v", err)
				}
				defer st.Close()
				f(st)
			})
		})
	}
}

func TestKeysMemoryStoreNeedsGateway(t *testing.T) {
	cfgPath := keysConfig(t, fmt.Sprintf("{addr: %q}", freeAddr(t)), "{type: memory}")
	r := runKeys(t, "list", "-c", cfgPath)
	if r.err == nil || !strings.Contains(r.err.Error(), "memory") {
		t.Errorf("keys list with a memory store and no gateway: got %v, want an error about the memory store", r.err)
	}
}

func TestSniffKeyFile(t *testing.T) {
	tests := []struct{ desc, data, want string }{
		{desc: "csv", data: "Name,Key\n", want: "text/csv"},
		{desc: "json array", data: "\n  [{}]", want: "application/json"},
		{desc: "aws items with BOM", data: "\ufeff{\"items\": []}", want: "application/json"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := sniffKeyFile([]byte(tc.data)); got != tc.want {
				t.Errorf("sniffKeyFile(%q): got %q, want %q", tc.data, got, tc.want)
			}
		})
	}
}

func TestKeysBinary(t *testing.T) {
	cfgPath := keysConfig(t, `{addr: "off"}`, fmt.Sprintf("{type: bolt, path: %q}", filepath.Join(t.TempDir(), "state.db")))
	r := run(t, "keys", "create", "-c", cfgPath, "--name", "acme", "--plan", "gold")
	if r.code != 0 || !keyLineRE.MatchString(r.stdout) {
		t.Errorf("drawbridge keys create: exit %d, stdout %q, stderr %q; want 0 and a key: line", r.code, r.stdout, r.stderr)
	}
	r = run(t, "keys", "revoke", "-c", cfgPath, "--name", "nobody")
	if r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "nobody") {
		t.Errorf("drawbridge keys revoke --name nobody: exit %d, stderr %q; want 1 and one line naming the key", r.code, r.stderr)
	}
}
