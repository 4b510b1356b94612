package admin_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/admin"
	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/memory"
)

const token = "test-admin-token"

var fixedNow = time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)

type env struct {
	srv   *httptest.Server
	st    store.Store
	token string
}

func newEnv(t *testing.T, o admin.Options) *env {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return fixedNow }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	srv := httptest.NewServer(admin.New(o))
	t.Cleanup(srv.Close)
	return &env{srv: srv, st: o.Store, token: o.Token}
}

// withStore is an admin API with a memory store holding plan "gold", and
// a token.
func withStore(t *testing.T) *env {
	t.Helper()
	st := memory.New()
	t.Cleanup(func() { st.Close() })
	if err := st.PutPlan(context.Background(), store.Plan{Name: "gold", Throttle: &store.Throttle{Rate: 10, Burst: 20}}); err != nil {
		t.Fatal(err)
	}
	return newEnv(t, admin.Options{Store: st, Token: token})
}

type response struct {
	status int
	header http.Header
	body   string
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("decoding %q: %v", r.body, err)
	}
}

func (e *env) do(t *testing.T, method, path, contentType, body string) response {
	t.Helper()
	return e.doToken(t, e.token, method, path, contentType, body)
}

func (e *env) doToken(t *testing.T, tok, method, path, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, res.Header, string(b)}
}

func (e *env) createKey(t *testing.T, body string) admin.CreateKeyResponse {
	t.Helper()
	r := e.do(t, "POST", "/v1/keys", "application/json", body)
	if r.status != http.StatusCreated {
		t.Fatalf("POST /v1/keys %s: got %d %s, want 201", body, r.status, r.body)
	}
	var out admin.CreateKeyResponse
	r.decode(t, &out)
	return out
}

func hash(v string) string {
	s := sha256.Sum256([]byte(v))
	return hex.EncodeToString(s[:])
}

func TestAuthentication(t *testing.T) {
	var ready atomic.Bool
	e := newEnv(t, admin.Options{
		Store:     memory.New(),
		Token:     token,
		Version:   "v9.9.9",
		Metrics:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "drawbridge_up 1\n") }),
		Ready:     ready.Load,
		Upstreams: func() any { return []map[string]string{{"name": "onprem"}} },
		Certificates: func() any {
			return []map[string]string{{"source": "acme", "listener": "public"}}
		},
	})
	tests := []struct {
		desc         string
		token        string
		path         string
		want         int
		wantContains string
	}{
		{desc: "healthz needs no token", path: "/healthz", want: 200, wantContains: `"version": "v9.9.9"`},
		{desc: "readyz needs no token", path: "/readyz", want: 503, wantContains: `"not ready"`},
		{desc: "metrics without token", path: "/metrics", want: 401, wantContains: `"unauthorized"`},
		{desc: "metrics with token", token: token, path: "/metrics", want: 200, wantContains: "drawbridge_up 1"},
		{desc: "upstreams without token", path: "/v1/upstreams", want: 401},
		{desc: "upstreams with token", token: token, path: "/v1/upstreams", want: 200, wantContains: `"onprem"`},
		{desc: "certificates without token", path: "/v1/certificates", want: 401},
		{desc: "certificates with token", token: token, path: "/v1/certificates", want: 200, wantContains: `"source": "acme"`},
		{desc: "keys with wrong token", token: "test-admin-tokeN", path: "/v1/keys", want: 401},
		{desc: "keys with token prefix", token: "test-admin", path: "/v1/keys", want: 401},
		{desc: "keys with token", token: token, path: "/v1/keys", want: 200},
		{desc: "plans without token", path: "/v1/plans", want: 401},
		{desc: "pprof without token", path: "/debug/pprof/", want: 401},
		{desc: "pprof with token", token: token, path: "/debug/pprof/", want: 200, wantContains: "goroutine"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := e.doToken(t, tc.token, "GET", tc.path, "", "")
			if r.status != tc.want {
				t.Errorf("GET %s: got status %d (%s), want %d", tc.path, r.status, r.body, tc.want)
			}
			if !strings.Contains(r.body, tc.wantContains) {
				t.Errorf("GET %s: got body %q, want it to contain %q", tc.path, r.body, tc.wantContains)
			}
			if r.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("GET %s: 401 without WWW-Authenticate", tc.path)
			}
		})
	}

	ready.Store(true)
	if r := e.doToken(t, "", "GET", "/readyz", "", ""); r.status != 200 || !strings.Contains(r.body, `"ready"`) {
		t.Errorf("GET /readyz when ready: got %d %s, want 200 ready", r.status, r.body)
	}

	t.Run("basic scheme is refused", func(t *testing.T) {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/keys", nil)
		req.SetBasicAuth("admin", token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Errorf("GET /v1/keys with basic auth: got %d, want 401", res.StatusCode)
		}
	})
}

func TestNoTokenNoStore(t *testing.T) {
	e := newEnv(t, admin.Options{})
	for _, path := range []string{"/v1/keys", "/v1/plans", "/v1/keys/acme", "/v1/keys/acme/usage?start=2026-11-01&end=2026-11-02"} {
		r := e.do(t, "GET", path, "", "")
		if r.status != 503 || !strings.Contains(r.body, `"no store configured"`) {
			t.Errorf("GET %s without store: got %d %s, want 503 no store configured", path, r.status, r.body)
		}
	}
	if r := e.do(t, "GET", "/v1/upstreams", "", ""); r.status != 200 || strings.TrimSpace(r.body) != "[]" {
		t.Errorf("GET /v1/upstreams without Upstreams: got %d %q, want 200 []", r.status, r.body)
	}
	if r := e.do(t, "GET", "/v1/certificates", "", ""); r.status != 200 || strings.TrimSpace(r.body) != "[]" {
		t.Errorf("GET /v1/certificates without Certificates: got %d %q, want 200 []", r.status, r.body)
	}
	if r := e.do(t, "GET", "/readyz", "", ""); r.status != 200 {
		t.Errorf("GET /readyz without Ready: got %d, want 200", r.status)
	}
	if r := e.do(t, "GET", "/metrics", "", ""); r.status != 404 {
		t.Errorf("GET /metrics without Metrics: got %d, want 404", r.status)
	}
}

func TestKeyLifecycle(t *testing.T) {
	e := withStore(t)
	ctx := context.Background()

	created := e.createKey(t, `{"name": "acme", "plan": "gold", "description": "Acme Corp"}`)
	if !regexp.MustCompile(`^[A-Za-z0-9]{40}$`).MatchString(created.Value) {
		t.Errorf("generated value %q: want 40 characters of [A-Za-z0-9]", created.Value)
	}
	if !regexp.MustCompile(`^key_[a-z2-7]{16}$`).MatchString(created.Key.ID) {
		t.Errorf("key id %q: want key_ and 16 lowercase base32 characters", created.Key.ID)
	}
	if !created.Key.Enabled || created.Key.Plan != "gold" || !created.Key.CreatedAt.Equal(fixedNow) {
		t.Errorf("created key: got %+v, want enabled, plan gold, created at %v", created.Key, fixedNow)
	}
	k, err := e.st.KeyByHash(ctx, hash(created.Value))
	if err != nil || k.Name != "acme" || !k.Valid(fixedNow) {
		t.Fatalf("KeyByHash(hash of the value): got %+v, %v; want valid key acme", k, err)
	}

	chosen := "partner-chosen-value-0123456789"
	e.createKey(t, `{"name": "beta", "plan": "gold", "value": "`+chosen+`", "enabled": false, "expires_at": "2027-01-01T00:00:00Z"}`)
	if k, err := e.st.KeyByHash(ctx, hash(chosen)); err != nil || k.Name != "beta" || k.Enabled || !k.ExpiresAt.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("KeyByHash(hash of the chosen value): got %+v, %v; want disabled beta expiring 2027-01-01", k, err)
	}

	list := e.do(t, "GET", "/v1/keys", "", "")
	if list.status != 200 {
		t.Fatalf("GET /v1/keys: got %d %s", list.status, list.body)
	}
	for _, secret := range []string{created.Value, chosen, hash(created.Value), hash(chosen), `"hash"`, `"value"`} {
		if strings.Contains(list.body, secret) {
			t.Errorf("GET /v1/keys: body contains %q: %s", secret, list.body)
		}
	}
	var keys []admin.KeyInfo
	list.decode(t, &keys)
	if len(keys) != 2 || keys[0].Name != "acme" || keys[1].Name != "beta" || keys[0].ID != created.Key.ID {
		t.Errorf("GET /v1/keys: got %+v, want acme and beta", keys)
	}

	got := e.do(t, "GET", "/v1/keys/acme", "", "")
	if got.status != 200 || strings.Contains(got.body, created.Value) || !strings.Contains(got.body, `"Acme Corp"`) {
		t.Errorf("GET /v1/keys/acme: got %d %s", got.status, got.body)
	}
	if r := e.do(t, "GET", "/v1/keys/nobody", "", ""); r.status != 404 {
		t.Errorf("GET /v1/keys/nobody: got %d %s, want 404", r.status, r.body)
	}

	// PATCH: absent fields stay, null expiry clears.
	r := e.do(t, "PATCH", "/v1/keys/beta", "application/json", `{"enabled": true, "expires_at": null}`)
	var patched admin.KeyInfo
	r.decode(t, &patched)
	if r.status != 200 || !patched.Enabled || patched.ExpiresAt != nil || patched.Plan != "gold" {
		t.Errorf("PATCH /v1/keys/beta enable, clear expiry: got %d %s", r.status, r.body)
	}
	r = e.do(t, "PATCH", "/v1/keys/beta", "application/json", `{"plan": "", "description": "moved"}`)
	if r.status != 400 || !strings.Contains(r.body, "plan is required") {
		t.Errorf("PATCH /v1/keys/beta remove plan: got %d %s, want 400: a key in no plan is refused everywhere", r.status, r.body)
	}
	r = e.do(t, "PATCH", "/v1/keys/beta", "application/json", `{"description": "moved"}`)
	r.decode(t, &patched)
	if r.status != 200 || patched.Plan != "gold" || patched.Description != "moved" || !patched.Enabled {
		t.Errorf("PATCH /v1/keys/beta description: got %d %s", r.status, r.body)
	}
	patchErrors := []struct {
		desc, path, body string
		want             int
	}{
		{desc: "unknown plan", path: "/v1/keys/beta", body: `{"plan": "platinum"}`, want: 400},
		{desc: "unknown field", path: "/v1/keys/beta", body: `{"enabeld": true}`, want: 400},
		{desc: "unknown key", path: "/v1/keys/nobody", body: `{"enabled": true}`, want: 404},
		{desc: "bad time", path: "/v1/keys/beta", body: `{"expires_at": "tomorrow"}`, want: 400},
	}
	for _, tc := range patchErrors {
		t.Run(tc.desc, func(t *testing.T) {
			if r := e.do(t, "PATCH", tc.path, "application/json", tc.body); r.status != tc.want || !strings.Contains(r.body, `"error"`) {
				t.Errorf("PATCH %s %s: got %d %s, want %d with an error", tc.path, tc.body, r.status, r.body, tc.want)
			}
		})
	}

	// Revoke is idempotent and final.
	for i := range 2 {
		r := e.do(t, "POST", "/v1/keys/acme/revoke", "", "")
		var info admin.KeyInfo
		r.decode(t, &info)
		if r.status != 200 || info.RevokedAt == nil || !info.RevokedAt.Equal(fixedNow) {
			t.Errorf("POST /v1/keys/acme/revoke (#%d): got %d %s, want 200 revoked at %v", i+1, r.status, r.body, fixedNow)
		}
	}
	if k, _ := e.st.KeyByName(ctx, "acme"); k.Valid(fixedNow) {
		t.Errorf("revoked key acme: Valid(now) = true, want false")
	}
	if r := e.do(t, "PATCH", "/v1/keys/acme", "application/json", `{"enabled": true}`); r.status != 409 {
		t.Errorf("PATCH a revoked key: got %d %s, want 409", r.status, r.body)
	}
	if r := e.do(t, "POST", "/v1/keys/nobody/revoke", "", ""); r.status != 404 {
		t.Errorf("POST /v1/keys/nobody/revoke: got %d %s, want 404", r.status, r.body)
	}
}

func TestCreateKeyErrors(t *testing.T) {
	e := withStore(t)
	e.createKey(t, `{"name": "taken", "plan": "gold", "value": "an-existing-value-0123456789"}`)
	tests := []struct {
		desc, body   string
		want         int
		wantContains string
	}{
		{desc: "bad name", body: `{"name": "acme corp", "plan": "gold"}`, want: 400, wantContains: "key name"},
		{desc: "empty name", body: `{"plan": "gold"}`, want: 400, wantContains: "key name"},
		{desc: "dot-dot name", body: `{"name": "..", "plan": "gold"}`, want: 400, wantContains: "key name"},
		{desc: "long name", body: `{"name": "` + strings.Repeat("a", 129) + `", "plan": "gold"}`, want: 400, wantContains: "key name"},
		{desc: "short value", body: `{"name": "a", "plan": "gold", "value": "0123456789012345678"}`, want: 400, wantContains: "20 to 128"},
		{desc: "long value", body: `{"name": "a", "plan": "gold", "value": "` + strings.Repeat("v", 129) + `"}`, want: 400, wantContains: "20 to 128"},
		{desc: "non-ASCII value", body: `{"name": "a", "plan": "gold", "value": "0123456789012345678é"}`, want: 400, wantContains: "printable"},
		{desc: "control character in value", body: `{"name": "a", "plan": "gold", "value": "01234567890123456789\t"}`, want: 400, wantContains: "printable"},
		{desc: "trailing space in value", body: `{"name": "a", "plan": "gold", "value": "01234567890123456789 "}`, want: 400, wantContains: "space"},
		// The key check refuses any space, so such a key would answer 403
		// forever.
		{desc: "inner space in value", body: `{"name": "a", "plan": "gold", "value": "0123456789 0123456789"}`, want: 400, wantContains: "character 11 is a space"},
		{desc: "unknown plan", body: `{"name": "a", "plan": "platinum"}`, want: 400, wantContains: `plan \"platinum\" does not exist`},
		{desc: "unknown field", body: `{"name": "a", "plan": "gold", "enabeld": true}`, want: 400, wantContains: "enabeld"},
		{desc: "not JSON", body: `name=a`, want: 400, wantContains: "request body"},
		{desc: "empty body", body: ``, want: 400, wantContains: "request body"},
		{desc: "trailing data", body: `{"name": "a", "plan": "gold"} {}`, want: 400, wantContains: "after the JSON value"},
		{desc: "duplicate name", body: `{"name": "taken", "plan": "gold"}`, want: 409, wantContains: "already used"},
		{desc: "duplicate value", body: `{"name": "other", "plan": "gold", "value": "an-existing-value-0123456789"}`, want: 409, wantContains: "already used"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := e.do(t, "POST", "/v1/keys", "application/json", tc.body)
			if r.status != tc.want || !strings.Contains(r.body, tc.wantContains) {
				t.Errorf("POST /v1/keys %s: got %d %s, want %d containing %q", tc.body, r.status, r.body, tc.want, tc.wantContains)
			}
		})
	}
	keys, err := e.st.ListKeys(context.Background())
	if err != nil || len(keys) != 1 {
		t.Errorf("ListKeys after refused creates: got %d keys, %v; want only the first", len(keys), err)
	}
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	const (
		v1 = "apikey1234abcdefghij0123456789"
		v2 = "second!key#value$with%symbols&"
		v3 = "third-key-value-abcdefghijklmnop"
		v4 = "fourth-key-value-abcdefghijklmno"
	)
	tests := []struct {
		desc, contentType, query, body string
		wantImported                   int
		wantSkipped                    []string
		// want maps value to the name and plan the key must have.
		want map[string][2]string
		// wantDisabled names keys imported disabled.
		wantDisabled []string
	}{
		{
			desc:        "API Gateway CSV, columns in any order and case",
			contentType: "text/csv",
			body: "Enabled,name,KEY,Description,usageplanIds,Extra\n" +
				`TRUE,first,` + v1 + `,An imported key,"c7y23b,gold",ignored` + "\n" +
				`false,second,` + v2 + `,,'silver,gold',x` + "\n" +
				`,existing,` + v3 + `,,,` + "\n",
			wantImported: 2,
			wantSkipped:  []string{"existing"},
			want:         map[string][2]string{v1: {"first", "gold"}, v2: {"second", "gold"}},
			wantDisabled: []string{"second"},
		},
		{
			desc:         "CSV with only Name and Key, default plan",
			contentType:  "text/csv; charset=utf-8",
			query:        "?plan=gold",
			body:         "\ufeffKey,Name\r\n" + v1 + ",first\r\n" + v2 + ",second\r\n",
			wantImported: 2,
			want:         map[string][2]string{v1: {"first", "gold"}, v2: {"second", "gold"}},
		},
		{
			desc:        "JSON array",
			contentType: "application/json",
			body: `[{"name": "first", "value": "` + v1 + `", "plan": "gold", "description": "d"},
			        {"name": "second", "value": "` + v2 + `", "plan": "gold", "enabled": false},
			        {"name": "existing", "value": "` + v4 + `", "plan": "gold"}]`,
			wantImported: 2,
			wantSkipped:  []string{"existing"},
			want:         map[string][2]string{v1: {"first", "gold"}, v2: {"second", "gold"}},
			wantDisabled: []string{"second"},
		},
		{
			desc:        "aws apigateway get-api-keys --include-values",
			contentType: "application/json",
			query:       "?plan=gold",
			body: `{"items": [
			  {"id": "a1b2c3", "value": "` + v1 + `", "name": "first", "enabled": true,
			   "createdDate": "2024-03-01T10:00:00+00:00", "lastUpdatedDate": 1709287200,
			   "stageKeys": ["abc/prod"], "tags": {"team": "x"}, "customerId": "cust-1"},
			  {"id": "d4e5f6", "value": "` + v2 + `", "name": "second", "enabled": false, "description": "old", "stageKeys": []}
			], "position": "next"}`,
			wantImported: 2,
			want:         map[string][2]string{v1: {"first", "gold"}, v2: {"second", "gold"}},
			wantDisabled: []string{"second"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			e := withStore(t)
			e.createKey(t, `{"name": "existing", "plan": "gold", "value": "`+v3+`"}`)
			r := e.do(t, "POST", "/v1/keys/import"+tc.query, tc.contentType, tc.body)
			if r.status != 200 {
				t.Fatalf("POST /v1/keys/import: got %d %s, want 200", r.status, r.body)
			}
			var res admin.ImportResult
			r.decode(t, &res)
			var skipped []string
			for _, s := range res.Skipped {
				skipped = append(skipped, s.Name)
				if s.Reason == "" {
					t.Errorf("skipped %q without a reason", s.Name)
				}
			}
			if res.Imported != tc.wantImported || strings.Join(skipped, ",") != strings.Join(tc.wantSkipped, ",") {
				t.Errorf("POST /v1/keys/import: got imported %d skipped %v, want %d and %v", res.Imported, skipped, tc.wantImported, tc.wantSkipped)
			}
			for value, want := range tc.want {
				k, err := e.st.KeyByHash(ctx, hash(value))
				if err != nil || k.Name != want[0] || k.Plan != want[1] {
					t.Errorf("KeyByHash(%q): got name %q plan %q (%v), want %q and %q", value, k.Name, k.Plan, err, want[0], want[1])
				}
			}
			for _, name := range tc.wantDisabled {
				if k, err := e.st.KeyByName(ctx, name); err != nil || k.Enabled {
					t.Errorf("KeyByName(%q): got enabled %v (%v), want disabled", name, k.Enabled, err)
				}
			}
			if k, _ := e.st.KeyByName(ctx, "existing"); k.Hash != hash(v3) {
				t.Errorf("existing key was overwritten by the import")
			}
		})
	}
}

func TestImportErrors(t *testing.T) {
	const good = "good,good-key-value-0123456789\n"
	tests := []struct {
		desc, contentType, query, body string
		want                           int
		wantContains                   string
	}{
		{desc: "no key column", contentType: "text/csv", body: "Name,Description\na,b\n", want: 400, wantContains: "no key column"},
		{desc: "empty CSV", contentType: "text/csv", body: "", want: 400, wantContains: "empty"},
		{desc: "short value fails the whole file", contentType: "text/csv", body: "Name,Key\n" + good + "bad,short\n", want: 400, wantContains: "line 3"},
		{desc: "duplicate names", contentType: "text/csv", body: "Name,Key\n" + good + "good,other-key-value-0123456789\n", want: 400, wantContains: "also at line 2"},
		{desc: "duplicate values", contentType: "text/csv", body: "Name,Key\n" + good + "other,good-key-value-0123456789\n", want: 400, wantContains: "also at line 2"},
		{desc: "bad enabled", contentType: "text/csv", body: "Name,Key,Enabled\ngood,good-key-value-0123456789,maybe\n", want: 400, wantContains: "Enabled"},
		{desc: "no plan exists", contentType: "text/csv", body: "Name,Key,UsagePlanIds\ngood,good-key-value-0123456789,c7y23b\n", want: 400, wantContains: "c7y23b"},
		{desc: "unknown default plan", contentType: "text/csv", query: "?plan=nope", body: "Name,Key\n" + good, want: 400, wantContains: "nope"},
		{desc: "bad name", contentType: "application/json", body: `[{"name": "My Key", "value": "good-key-value-0123456789"}]`, want: 400, wantContains: "item 1"},
		{desc: "unknown JSON field", contentType: "application/json", body: `[{"name": "good", "value": "good-key-value-0123456789", "plna": "gold"}]`, want: 400, wantContains: "plna"},
		{desc: "JSON object without items", contentType: "application/json", body: `{"keys": []}`, want: 400, wantContains: "keys"},
		{desc: "unknown plan in JSON", contentType: "application/json", body: `[{"name": "good", "value": "good-key-value-0123456789", "plan": "platinum"}]`, want: 400, wantContains: "platinum"},
		{desc: "inner space in CSV value", contentType: "text/csv", body: "Name,Key\n" + good + "spaced,spaced key-value-0123456789\n", want: 400, wantContains: "line 3: key value: character 7 is a space"},
		{desc: "inner space in JSON value", contentType: "application/json", body: `[{"name": "spaced", "value": "spaced key-value-0123456789"}]`, want: 400, wantContains: "item 1: key value: character 7 is a space"},
		{desc: "inner space in AWS JSON value", contentType: "application/json", body: `{"items": [{"name": "spaced", "value": "spaced key-value-0123456789"}]}`, want: 400, wantContains: "item 1: key value: character 7 is a space"},
		{desc: "unsupported type", contentType: "application/xml", body: "<keys/>", want: 415, wantContains: "text/csv"},
		{desc: "no content type", contentType: "", body: good, want: 415, wantContains: "text/csv"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			e := withStore(t)
			r := e.do(t, "POST", "/v1/keys/import"+tc.query, tc.contentType, tc.body)
			if r.status != tc.want || !strings.Contains(r.body, tc.wantContains) {
				t.Errorf("POST /v1/keys/import %q: got %d %s, want %d containing %q", tc.body, r.status, r.body, tc.want, tc.wantContains)
			}
			if keys, _ := e.st.ListKeys(context.Background()); len(keys) != 0 {
				t.Errorf("refused import stored %d keys, want 0", len(keys))
			}
			if strings.Contains(r.body, "spaced key-value") {
				t.Errorf("POST /v1/keys/import: got %s, which shows a key value", r.body)
			}
		})
	}
}

func TestPlans(t *testing.T) {
	e := withStore(t)
	r := e.do(t, "PUT", "/v1/plans/silver", "application/json",
		`{"throttle": {"rate": 5, "burst": 10}, "quota": {"limit": 1000, "period": "month"}, "methods": {"GET /orders/{id}": {"rate": 1, "burst": 2}}}`)
	var p store.Plan
	r.decode(t, &p)
	if r.status != 200 || p.Name != "silver" || p.Quota == nil || p.Quota.Period != "MONTH" {
		t.Fatalf("PUT /v1/plans/silver: got %d %s, want 200 with period MONTH", r.status, r.body)
	}
	stored, err := e.st.Plan(context.Background(), "silver")
	if err != nil || stored.Throttle == nil || stored.Throttle.Rate != 5 || stored.Methods["GET /orders/{id}"].Burst != 2 {
		t.Errorf("Plan(silver): got %+v, %v", stored, err)
	}

	r = e.do(t, "GET", "/v1/plans", "", "")
	var plans []store.Plan
	r.decode(t, &plans)
	if r.status != 200 || len(plans) != 2 || plans[0].Name != "gold" || plans[1].Name != "silver" {
		t.Errorf("GET /v1/plans: got %d %s, want gold and silver", r.status, r.body)
	}
	if r := e.do(t, "GET", "/v1/plans/silver", "", ""); r.status != 200 || !strings.Contains(r.body, `"limit": 1000`) {
		t.Errorf("GET /v1/plans/silver: got %d %s", r.status, r.body)
	}
	if r := e.do(t, "GET", "/v1/plans/nope", "", ""); r.status != 404 {
		t.Errorf("GET /v1/plans/nope: got %d %s, want 404", r.status, r.body)
	}

	invalid := []struct{ desc, body, wantContains string }{
		{desc: "negative rate", body: `{"throttle": {"rate": -1, "burst": 1}}`, wantContains: "rate"},
		{desc: "negative burst", body: `{"throttle": {"rate": 1, "burst": -1}}`, wantContains: "burst"},
		{desc: "zero quota", body: `{"quota": {"limit": 0, "period": "DAY"}}`, wantContains: "quota.limit"},
		{desc: "bad period", body: `{"quota": {"limit": 5, "period": "YEAR"}}`, wantContains: "quota.period"},
		{desc: "bad offset", body: `{"quota": {"limit": 5, "period": "WEEK", "offset": 7}}`, wantContains: "offset"},
		// limits answers every request on such a plan 500.
		{desc: "month offset 28", body: `{"quota": {"limit": 5, "period": "month", "offset": 28}}`, wantContains: "quota.offset 28 for period MONTH"},
		{desc: "day offset 1", body: `{"quota": {"limit": 5, "period": "DAY", "offset": 1}}`, wantContains: "quota.offset 1 for period DAY"},
		{desc: "zero rate", body: `{"throttle": {"rate": 0, "burst": 1}}`, wantContains: "rate 0"},
		{desc: "zero method rate", body: `{"methods": {"GET /x": {"rate": 0, "burst": 1}}}`, wantContains: "rate 0"},
		{desc: "bad method key", body: `{"methods": {"orders": {"rate": 1, "burst": 1}}}`, wantContains: "methods"},
		{desc: "negative method rate", body: `{"methods": {"GET /x": {"rate": -1, "burst": 1}}}`, wantContains: "rate"},
		{desc: "name mismatch", body: `{"name": "other"}`, wantContains: "differs"},
		{desc: "unknown field", body: `{"throtle": {}}`, wantContains: "throtle"},
	}
	for _, tc := range invalid {
		t.Run(tc.desc, func(t *testing.T) {
			r := e.do(t, "PUT", "/v1/plans/bronze", "application/json", tc.body)
			if r.status != 400 || !strings.Contains(r.body, tc.wantContains) {
				t.Errorf("PUT /v1/plans/bronze %s: got %d %s, want 400 containing %q", tc.body, r.status, r.body, tc.wantContains)
			}
		})
	}
	if _, err := e.st.Plan(context.Background(), "bronze"); err == nil {
		t.Errorf("Plan(bronze) after refused PUTs: found, want not found")
	}
	if r := e.do(t, "PUT", "/v1/plans/bronze", "application/json", `{"quota": {"limit": 5, "period": "MONTH", "offset": 27}}`); r.status != 200 {
		t.Errorf("PUT /v1/plans/bronze with MONTH offset 27 (the 28th): got %d %s, want 200", r.status, r.body)
	}

	e.createKey(t, `{"name": "acme", "plan": "silver"}`)
	if r := e.do(t, "DELETE", "/v1/plans/silver", "", ""); r.status != 409 || !strings.Contains(r.body, "acme") {
		t.Errorf("DELETE a plan in use: got %d %s, want 409 naming acme", r.status, r.body)
	}
	e.do(t, "POST", "/v1/keys/acme/revoke", "", "")
	if r := e.do(t, "DELETE", "/v1/plans/silver", "", ""); r.status != 204 {
		t.Errorf("DELETE a plan only a revoked key uses: got %d %s, want 204", r.status, r.body)
	}
	if r := e.do(t, "DELETE", "/v1/plans/silver", "", ""); r.status != 404 {
		t.Errorf("DELETE a deleted plan: got %d %s, want 404", r.status, r.body)
	}
}

func TestUsage(t *testing.T) {
	e := withStore(t)
	ctx := context.Background()
	created := e.createKey(t, `{"name": "acme", "plan": "gold"}`)
	other := e.createKey(t, `{"name": "other", "plan": "gold"}`)
	days := map[time.Time]int{
		time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC):  4, // before the range
		time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC):    3,
		time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC): 2,
		time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC):    5, // after
	}
	for at, n := range days {
		for range n {
			if _, err := e.st.Consume(ctx, created.Key.ID, nil, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := e.st.Consume(ctx, other.Key.ID, nil, time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}

	r := e.do(t, "GET", "/v1/keys/acme/usage?start=2026-11-01&end=2026-11-30", "", "")
	var rep admin.UsageReport
	r.decode(t, &rep)
	if r.status != 200 || rep.KeyID != created.Key.ID || rep.StartDate != "2026-11-01" || rep.EndDate != "2026-11-30" || rep.Total != 5 ||
		len(rep.Items) != 2 || rep.Items["2026-11-01"] != 3 || rep.Items["2026-11-30"] != 2 {
		t.Errorf("GET usage 2026-11-01..30: got %d %s, want key %s, 3 on 11-01 and 2 on 11-30, total 5", r.status, r.body, created.Key.ID)
	}
	r = e.do(t, "GET", "/v1/keys/acme/usage?start=2026-11-02&end=2026-11-02", "", "")
	rep = admin.UsageReport{}
	r.decode(t, &rep)
	if r.status != 200 || rep.Total != 0 || len(rep.Items) != 0 {
		t.Errorf("GET usage of a day without requests: got %d %s, want total 0 and no items", r.status, r.body)
	}

	bad := []struct {
		desc, query string
		want        int
	}{
		{desc: "no dates", query: "", want: 400},
		{desc: "no end", query: "?start=2026-11-01", want: 400},
		{desc: "bad start", query: "?start=2026-13-01&end=2026-11-30", want: 400},
		{desc: "timestamp", query: "?start=2026-11-01T00:00:00Z&end=2026-11-30", want: 400},
		{desc: "end before start", query: "?start=2026-11-30&end=2026-11-01", want: 400},
		{desc: "91 days", query: "?start=2026-01-01&end=2026-04-01", want: 400},
	}
	for _, tc := range bad {
		t.Run(tc.desc, func(t *testing.T) {
			if r := e.do(t, "GET", "/v1/keys/acme/usage"+tc.query, "", ""); r.status != tc.want || !strings.Contains(r.body, `"error"`) {
				t.Errorf("GET usage%s: got %d %s, want %d", tc.query, r.status, r.body, tc.want)
			}
		})
	}
	if r := e.do(t, "GET", "/v1/keys/acme/usage?start=2026-01-01&end=2026-03-31", "", ""); r.status != 200 {
		t.Errorf("GET usage over 90 days: got %d %s, want 200", r.status, r.body)
	}
	if r := e.do(t, "GET", "/v1/keys/nobody/usage?start=2026-11-01&end=2026-11-30", "", ""); r.status != 404 {
		t.Errorf("GET usage of an unknown key: got %d %s, want 404", r.status, r.body)
	}
}

func TestGenerateKey(t *testing.T) {
	valueRE := regexp.MustCompile(`^[A-Za-z0-9]{40}$`)
	idRE := regexp.MustCompile(`^key_[a-z2-7]{16}$`)
	seen := map[string]bool{}
	for range 200 {
		v, err := admin.GenerateKey()
		if err != nil || !valueRE.MatchString(v) {
			t.Fatalf("GenerateKey(): got %q, %v; want 40 characters of [A-Za-z0-9]", v, err)
		}
		id, err := admin.NewKeyID()
		if err != nil || !idRE.MatchString(id) {
			t.Fatalf("NewKeyID(): got %q, %v; want key_ and 16 of [a-z2-7]", id, err)
		}
		if seen[v] || seen[id] {
			t.Fatalf("GenerateKey or NewKeyID repeated %q or %q", v, id)
		}
		seen[v], seen[id] = true, true
	}
}

// TestImportKeyWithoutPlanFailsWhole: a key with no usage plan (and no
// default) fails the whole import before any key is stored.
func TestImportKeyWithoutPlanFailsWhole(t *testing.T) {
	t.Parallel()
	e := withStore(t)
	body := `[{"name": "a", "value": "aaaaaaaaaaaaaaaaaaaaaaaaa", "plan": "gold"},
	          {"name": "b", "value": "bbbbbbbbbbbbbbbbbbbbbbbbb"}]`
	r := e.do(t, "POST", "/v1/keys/import", "application/json", body)
	if r.status != 400 || !strings.Contains(r.body, "no usage plan") {
		t.Fatalf("import with a plan-less key: got %d %s, want 400", r.status, r.body)
	}
	if r := e.do(t, "GET", "/v1/keys/a", "", ""); r.status != 404 {
		t.Errorf("key a after the failed import: got %d, want 404 (nothing imported)", r.status)
	}
}
