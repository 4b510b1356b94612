package doctor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/gateway"
	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/redistest"
)

// TestStoreHop: a Redis store is a hop doctor checks for real (answers,
// what it holds); a bolt store is not a hop.
func TestStoreHop(t *testing.T) {
	srv := redistest.Start(t)
	certFile, keyFile := certs.SelfSigned(t, certs.Options{DNSNames: []string{"localhost"}}).WriteFiles(t, t.TempDir())
	load := func(t *testing.T, storeYAML, plansYAML string) *config.Config {
		t.Helper()
		text := fmt.Sprintf(`listeners:
  - name: public
    addr: 127.0.0.1:0
    tls: {cert: %[1]q, key: %[2]q}
admin: {addr: "off"}
upstreams:
  app:
    targets: [https://127.0.0.1:1]
    tls: {ca: %[1]q}
routes:
  - path: /x
    upstream: app
store: %[3]s
%[4]s`, certFile, keyFile, storeYAML, plansYAML)
		path := filepath.Join(t.TempDir(), "drawbridge.yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	live := fmt.Sprintf("{type: redis, addr: %s}", srv.Addr())
	// One plan and one key in the live store, as `drawbridge keys` makes them.
	cfg := load(t, live, "")
	st, err := gateway.OpenStore(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.PutPlan(ctx, store.Plan{Name: "gold"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateKey(ctx, store.Key{ID: "key_1", Name: "acme", Hash: strings.Repeat("a", 64), Plan: "gold", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	tests := []struct {
		name, store, plans string
		want               Status
		detail, fix        string
	}{
		{"live", live, "", OK, "answers; 1 key, 1 plan", ""},
		{"empty prefix", fmt.Sprintf("{type: redis, addr: %s, prefix: \"{other}:\"}", srv.Addr()), "", Warn, "0 keys, 0 plans", "no usage plans"},
		{"empty prefix, plans in the config", fmt.Sprintf("{type: redis, addr: %s, prefix: \"{other}:\"}", srv.Addr()), "plans: {gold: {throttle: {rate: 1, burst: 1}}}", OK, "0 keys, 0 plans", ""},
		{"nothing listening", fmt.Sprintf("{type: redis, addr: %s}", testutil.FreeAddr(t)), "", Fail, "", "start Redis"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hops := checkStore(ctx, load(t, tc.store, tc.plans), 3*time.Second)
			if len(hops) != 1 {
				t.Fatalf("checkStore(): %d hops, want 1", len(hops))
			}
			h := hops[0]
			if h.Kind != KindStore || h.Status != tc.want || !strings.Contains(h.Detail, tc.detail) || !strings.Contains(h.Fix, tc.fix) {
				t.Errorf("checkStore(): %s (fix %q), want %s with %q (fix %q)", h, h.Fix, tc.want, tc.detail, tc.fix)
			}
		})
	}
	if hops := checkStore(ctx, load(t, fmt.Sprintf("{type: bolt, path: %s}", filepath.Join(t.TempDir(), "s.db")), ""), time.Second); len(hops) != 0 {
		t.Errorf("checkStore() on a bolt store: %v, want no hop", hops)
	}
}
