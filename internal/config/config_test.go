package config

import (
	"errors"
	"flag"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// dummyFiles are created beside every test config. Config only checks that
// files exist, so their contents are placeholders, not keys.
var dummyFiles = []string{"public.crt", "public.key", "ca.pem", "client.crt", "client.key"}

// writeConfig writes text as drawbridge.yaml in a fresh folder with the
// dummy files and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range dummyFiles {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("placeholder, not PEM\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "drawbridge.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// noEnv is an empty environment.
func noEnv(string) (string, bool) { return "", false }

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// problems loads path and returns its problems with the folder stripped,
// so they read "drawbridge.yaml:LINE: msg".
func problems(t *testing.T, path string, env func(string) (string, bool)) []string {
	t.Helper()
	_, err := load(path, env)
	if err == nil {
		return nil
	}
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("load(%q): got error of type %T, want *config.Error: %v", path, err, err)
	}
	dir := filepath.Dir(path) + string(filepath.Separator)
	var out []string
	for _, p := range cerr.Problems {
		out = append(out, strings.ReplaceAll(p.String(), dir, ""))
	}
	return out
}

const fullConfig = `# every key, to check decoding and defaults
listeners:
  - name: public
    addr: 0.0.0.0:8443
    tls: {cert: public.crt, key: public.key, min_version: "1.3"}
    read_header_timeout: 5s
    idle_timeout: 1m
    max_header_bytes: 65536
    max_body_bytes: 1048576
  - addr: 127.0.0.1:0
    tls:
      cert: public.crt
      key: public.key
  - {addr: 127.0.0.1:0, tls: {cert: public.crt, key: public.key}}
admin:
  addr: "off"
upstreams:
  onprem:
    targets: [https://10.0.0.5, "https://LB.Corp.Internal:8443", "https://[::1]"]
    tls:
      server_name: backend.internal
      ca: ca.pem
      pins: [sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=]
      system_roots: true
      client_cert: client.crt
      client_key: client.key
      min_version: "1.3"
    balance: least_requests
    dns_refresh: 1m30s
    resolver: 10.0.0.2:53
    dial_timeout: 500ms
    max_idle_conns: 8
    max_conns: 100
    health:
      path: /healthz
      interval: 5s
      timeout: 1s
      healthy_threshold: 1
      unhealthy_threshold: 5
    passive: {max_fails: -1, fail_window: 20s, eject_for: 1m}
  legacy:
    targets: [http://127.0.0.1:8080]
    allow_insecure: true
routes:
  - path: /orders/{id}
    methods: [get, POST]
    upstream: onprem
    upstream_path: /api/v2/orders/{id}
    timeout: 10s
  - name: catch-all
    host: API.example.com
    path: /{proxy+}
    upstream: legacy
    upstream_path: /legacy/{proxy+}
store: {type: redis, addr: 127.0.0.1:6379}
plans:
  gold:
    throttle: {rate: 100, burst: 200}
    quota: {limit: 100000, period: month, offset: 3}
  free:
log: {level: DEBUG, access: logs/access.log}
shutdown_grace: 0s
`

func TestLoadFull(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, fullConfig)
	dir := filepath.Dir(path)
	cfg, err := load(path, noEnv)
	if err != nil {
		t.Fatalf("load(full config): %v", err)
	}
	in := func(name string) string { return filepath.Join(dir, name) }

	l0, l1 := cfg.Listeners[0], cfg.Listeners[1]
	on, legacy := cfg.Upstreams["onprem"], cfg.Upstreams["legacy"]
	r0, r1 := cfg.Routes[0], cfg.Routes[1]
	for _, c := range []struct {
		desc      string
		got, want any
	}{
		{"File", cfg.File, path},
		{"listener 0 name", l0.Name, "public"},
		{"listener 0 line", l0.Line, 3},
		{"listener 0 tls line", l0.TLS.Line, 5},
		{"listener 0 cert resolved", l0.TLS.Cert, in("public.crt")},
		{"listener 0 key resolved", l0.TLS.Key, in("public.key")},
		{"listener 0 min version", l0.TLS.MinVersion, "1.3"},
		{"listener 0 read header timeout", l0.ReadHeaderTimeout.D(), 5 * time.Second},
		{"listener 0 idle timeout", l0.IdleTimeout.D(), time.Minute},
		{"listener 0 max header bytes", l0.MaxHeaderBytes, 65536},
		{"listener 0 max body bytes", l0.MaxBodyBytes, int64(1048576)},
		{"listener 1 name defaults to addr", l1.Name, "127.0.0.1:0"},
		{"listener 1 line", l1.Line, 10},
		{"listener 1 tls line", l1.TLS.Line, 11},
		{"listener 1 min version default", l1.TLS.MinVersion, "1.2"},
		{"two port-0 listeners may share the default name", cfg.Listeners[2].Name, "127.0.0.1:0"},
		{"admin addr", cfg.Admin.Addr, "off"},
		{"admin line", cfg.Admin.Line, 15},
		{"upstream name", on.Name, "onprem"},
		{"upstream line", on.Line, 18},
		{"upstream tls line", on.TLS.Line, 20},
		{"targets normalized", on.Targets, []string{"https://10.0.0.5:443", "https://lb.corp.internal:8443", "https://[::1]:443"}},
		{"server name", on.TLS.ServerName, "backend.internal"},
		{"ca resolved", on.TLS.CA, in("ca.pem")},
		{"client cert resolved", on.TLS.ClientCert, in("client.crt")},
		{"client key resolved", on.TLS.ClientKey, in("client.key")},
		{"pins", on.TLS.Pins, []string{"sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}},
		{"system roots", on.TLS.SystemRoots, true},
		{"upstream min version", on.TLS.MinVersion, "1.3"},
		{"balance", on.Balance, "least_requests"},
		{"dns refresh", on.DNSRefresh.D(), 90 * time.Second},
		{"resolver", on.Resolver, "10.0.0.2:53"},
		{"dial timeout", on.DialTimeout.D(), 500 * time.Millisecond},
		{"max idle conns", on.MaxIdleConns, 8},
		{"max conns", on.MaxConns, 100},
		{"health", *on.Health, HealthCheck{Line: 34, Type: HealthHTTP, Path: "/healthz", Interval: Duration(5 * time.Second), Timeout: Duration(time.Second), HealthyThreshold: 1, UnhealthyThreshold: 5}},
		{"passive", on.Passive, Passive{Line: 40, MaxFails: -1, FailWindow: Duration(20 * time.Second), EjectFor: Duration(time.Minute)}},
		{"http target kept with allow_insecure", legacy.Targets, []string{"http://127.0.0.1:8080"}},
		{"legacy defaults: balance", legacy.Balance, DefaultBalance},
		{"route 0 name", r0.Name, "GET,POST /orders/{id}"},
		{"route 0 methods upper-cased", r0.Methods, []string{"GET", "POST"}},
		{"route 0 line", r0.Line, 45},
		{"route 0 timeout", r0.Timeout.D(), 10 * time.Second},
		{"route 0 upstream path", r0.UpstreamPath, "/api/v2/orders/{id}"},
		{"route 1 name", r1.Name, "catch-all"},
		{"route 1 host lower-cased", r1.Host, "api.example.com"},
		{"route 1 methods default", r1.Methods, []string{"ANY"}},
		{"route 1 timeout default", r1.Timeout.D(), DefaultRouteTimeout},
		{"store", cfg.Store, Store{Line: 55, Type: "redis", Addr: "127.0.0.1:6379", Addrs: []string{"127.0.0.1:6379"},
			Prefix: DefaultStorePrefix, FlushInterval: Duration(DefaultFlushInterval), Timeout: Duration(DefaultStoreTimeout), OnError: DefaultStoreOnError}},
		{"plan gold", *cfg.Plans["gold"], Plan{Line: 57, Name: "gold", Throttle: &Throttle{Rate: 100, Burst: 200}, Quota: &Quota{Limit: 100000, Period: "MONTH", Offset: 3}}},
		{"plan without settings", *cfg.Plans["free"], Plan{Line: 60, Name: "free"}},
		{"log level lower-cased", cfg.Log.Level, "debug"},
		{"access log resolved", cfg.Log.Access, in("logs/access.log")},
		{"explicit zero shutdown grace kept", cfg.ShutdownGrace.D(), time.Duration(0)},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("load(full config): %s: got %#v, want %#v", c.desc, c.got, c.want)
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `
listeners:
  - addr: :8443
    tls: {cert: public.crt, key: /abs/does/not/matter/if/missing.key}
upstreams:
  u:
    targets: [https://backend.internal]
    tls: {ca: ca.pem}
    health: {path: /ping}
routes:
  - path: /
    upstream: u
`)
	_, err := load(path, noEnv)
	want := []string{`drawbridge.yaml:4: listener ":8443": tls.key: cannot read "/abs/does/not/matter/if/missing.key": no such file or directory`}
	if got := problems(t, path, noEnv); !slices.Equal(got, want) {
		t.Fatalf("load(absolute missing key): got %q, want %q", got, want)
	}

	keyPath := filepath.Join(filepath.Dir(path), "public.key")
	text, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(text), "/abs/does/not/matter/if/missing.key", keyPath, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := load(path, noEnv)
	if err != nil {
		t.Fatalf("load(minimal config): %v", err)
	}
	l, u, r := cfg.Listeners[0], cfg.Upstreams["u"], cfg.Routes[0]
	for _, c := range []struct {
		desc      string
		got, want any
	}{
		{"listener name", l.Name, ":8443"},
		{"absolute key path kept", l.TLS.Key, keyPath},
		{"listener min version", l.TLS.MinVersion, "1.2"},
		{"read header timeout", l.ReadHeaderTimeout.D(), DefaultReadHeaderTimeout},
		{"idle timeout", l.IdleTimeout.D(), DefaultIdleTimeout},
		{"max header bytes", l.MaxHeaderBytes, DefaultMaxHeaderBytes},
		{"max body bytes", l.MaxBodyBytes, int64(DefaultMaxBodyBytes)},
		{"admin addr", cfg.Admin.Addr, DefaultAdminAddr},
		{"shutdown grace", cfg.ShutdownGrace.D(), DefaultShutdownGrace},
		{"target port", u.Targets, []string{"https://backend.internal:443"}},
		{"balance", u.Balance, "round_robin"},
		{"dns refresh", u.DNSRefresh.D(), DefaultDNSRefresh},
		{"dial timeout", u.DialTimeout.D(), DefaultDialTimeout},
		{"max idle conns", u.MaxIdleConns, DefaultMaxIdleConnsPerTarget},
		{"max conns", u.MaxConns, 0},
		{"upstream min version", u.TLS.MinVersion, "1.2"},
		{"health interval", u.Health.Interval.D(), DefaultHealthInterval},
		{"health timeout", u.Health.Timeout.D(), DefaultHealthTimeout},
		{"healthy threshold", u.Health.HealthyThreshold, 2},
		{"unhealthy threshold", u.Health.UnhealthyThreshold, 3},
		{"passive max fails", u.Passive.MaxFails, DefaultPassiveMaxFails},
		{"passive fail window", u.Passive.FailWindow.D(), DefaultPassiveFailWindow},
		{"passive eject for", u.Passive.EjectFor.D(), DefaultPassiveEjectFor},
		{"route methods", r.Methods, []string{"ANY"}},
		{"route name", r.Name, "ANY /"},
		{"route timeout", r.Timeout.D(), DefaultRouteTimeout},
		{"store type", cfg.Store.Type, "bolt"},
		{"store path beside config", cfg.Store.Path, filepath.Join(filepath.Dir(path), "drawbridge.db")},
		{"log level", cfg.Log.Level, "info"},
		{"access log", cfg.Log.Access, "stderr"},
		{"warnings", len(cfg.Warnings()), 0},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("load(minimal config): %s: got %#v, want %#v", c.desc, c.got, c.want)
		}
	}
}

// good is a valid config; cases below replace parts of it. Its lines:
//
//	1 listeners:
//	2   - addr: 127.0.0.1:8443
//	3     tls: {cert: public.crt, key: public.key}
//	4 upstreams:
//	5   onprem:
//	6     targets: [https://10.0.0.5]
//	7     tls: {ca: ca.pem}
//	8 routes:
//	9   - path: /orders/{id}
//	10    upstream: onprem
const good = `listeners:
  - addr: 127.0.0.1:8443
    tls: {cert: public.crt, key: public.key}
upstreams:
  onprem:
    targets: [https://10.0.0.5]
    tls: {ca: ca.pem}
routes:
  - path: /orders/{id}
    upstream: onprem
`

func TestEnv(t *testing.T) {
	t.Parallel()
	text := `listeners:
  - addr: ${ADDR}
    tls: {cert: "${CERT_DIR}/public.crt", key: public.key}
    max_header_bytes: ${MAX_HEADER}
upstreams:
  onprem:
    targets: ["https://${BACKEND}"]
    tls: {ca: ca.pem, server_name: '$${NOT_EXPANDED}'}
routes:
  - path: /orders/{id}
    upstream: onprem
`
	path := writeConfig(t, text)
	dir := filepath.Dir(path)
	env := envOf(map[string]string{"ADDR": "127.0.0.1:9443", "CERT_DIR": dir, "MAX_HEADER": "4096", "BACKEND": "backend.internal:8443"})
	cfg, err := load(path, env)
	if err != nil {
		t.Fatalf("load(config with ${ENV}): %v", err)
	}
	for _, c := range []struct {
		desc      string
		got, want any
	}{
		{"addr", cfg.Listeners[0].Addr, "127.0.0.1:9443"},
		{"cert", cfg.Listeners[0].TLS.Cert, filepath.Join(dir, "public.crt")},
		{"plain scalar retyped as int", cfg.Listeners[0].MaxHeaderBytes, 4096},
		{"target", cfg.Upstreams["onprem"].Targets[0], "https://backend.internal:8443"},
		{"$${ escapes", cfg.Upstreams["onprem"].TLS.ServerName, "${NOT_EXPANDED}"},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("load(config with ${ENV}): %s: got %#v, want %#v", c.desc, c.got, c.want)
		}
	}

	// Unset variables are each reported at their line, and nothing else is
	// said about the values they left unexpanded.
	got := problems(t, path, envOf(map[string]string{"CERT_DIR": dir, "BACKEND": "b:443"}))
	want := []string{
		"drawbridge.yaml:2: addr: environment variable ADDR is not set (referenced as ${ADDR}); set it before starting drawbridge, or write $${ADDR} for a literal ${ADDR}",
		"drawbridge.yaml:4: max_header_bytes: environment variable MAX_HEADER is not set (referenced as ${MAX_HEADER}); set it before starting drawbridge, or write $${MAX_HEADER} for a literal ${MAX_HEADER}",
	}
	if !slices.Equal(got, want) {
		t.Errorf("load(config with unset ${ENV}):\ngot  %q\nwant %q", got, want)
	}
}

// TestLoadEnv checks that Load reads the process environment.
func TestLoadEnv(t *testing.T) {
	t.Setenv("DRAWBRIDGE_TEST_UPSTREAM", "onprem")
	path := writeConfig(t, strings.Replace(good, "upstream: onprem", "upstream: ${DRAWBRIDGE_TEST_UPSTREAM}", 1))
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load(config with ${DRAWBRIDGE_TEST_UPSTREAM}): %v", err)
	}
	if got := cfg.Routes[0].Upstream; got != "onprem" {
		t.Errorf("Load(config with ${DRAWBRIDGE_TEST_UPSTREAM}): route upstream: got %q, want %q", got, "onprem")
	}
}

// replace returns good with old replaced by new, failing if old is absent.
func replace(old, new string) string {
	if !strings.Contains(good, old) {
		panic("test config does not contain " + old)
	}
	return strings.Replace(good, old, new, 1)
}

// testPin is a well-formed pin (of the empty string).
const testPin = "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

func TestProblems(t *testing.T) {
	t.Parallel()
	const pinHint = `drawbridge.yaml:7: upstream "onprem": no way to verify the backend's certificate: set tls.ca to the PEM file of its CA (or of the self-signed certificate itself), or tls.pins to its public-key pin (run "drawbridge pin https://10.0.0.5:443" to get one), or tls.system_roots: true if its certificate is publicly trusted`
	tests := []struct {
		desc string
		text string
		want string // one of the problems, exactly
	}{
		// File-level.
		{"empty file", "", `drawbridge.yaml:1: no listeners defined; add one under "listeners:", e.g. - {addr: 0.0.0.0:8443, tls: {cert: server.crt, key: server.key}}`},
		{"top level is a list", "- a\n- b\n", `drawbridge.yaml:1: the file must be a mapping of settings (listeners:, upstreams:, routes:, ...), got a list`},
		{"yaml syntax", good + "routes: [\n", "drawbridge.yaml:11: YAML syntax: did not find expected node content"},
		{"two documents", good + "---\nlisteners: []\n", `drawbridge.yaml:11: a second YAML document starts here; put the whole configuration in one document (remove the "---" line)`},
		{"unknown top-level key", good + "listener: []\n", `drawbridge.yaml:11: unknown top-level key "listener"; did you mean "listeners"?`},
		{"unknown top-level key, no near match", good + "frontends: []\n", `drawbridge.yaml:11: unknown top-level key "frontends"; valid keys here: listeners, admin, upstreams, routes, store, plans, log, throttle, rate_limit_headers, partners, apis, gateway_responses, shutdown_grace`},
		{"repeated top-level key", good + "listeners: []\n", `drawbridge.yaml:11: key "listeners" is repeated; it is already set at line 1`},
		{"unknown key", replace("    upstream: onprem", "    upstream: onprem\n    api_key: x"), `drawbridge.yaml:11: route "ANY /orders/{id}": unknown key "api_key"; valid keys here: name, host, path, methods, upstream, upstream_path, timeout, api_key_required, throttle, client_cert, ip, cors, upstream_method, request_parameters, status_map, validate, mock`},
		{"key one level too high", replace("    tls: {cert: public.crt, key: public.key}", "    cert: public.crt"), `drawbridge.yaml:3: listener "127.0.0.1:8443": unknown key "cert"; did you mean "cert" under "tls" (tls: {cert: ...})?`},
		{"repeated key", replace("  - path: /orders/{id}", "  - path: /orders/{id}\n    path: /x"), `drawbridge.yaml:10: route "ANY /orders/{id}": key "path" is repeated; it is already set at line 9`},
		{"wrong type: int", good + "shutdown_grace: 1\n", `drawbridge.yaml:11: bad duration "1": want a number with a unit, such as "30s", "500ms" or "1m30s" (shutdown_grace)`},
		{"wrong type: bad duration", good + "shutdown_grace: 3 parsecs\n", `drawbridge.yaml:11: bad duration "3 parsecs": want a number with a unit, such as "30s", "500ms" or "1m30s" (shutdown_grace)`},
		{"wrong type: list for string", replace("upstream: onprem", "upstream: [onprem]"), `drawbridge.yaml:10: route "ANY /orders/{id}": upstream: want a single value, got a list`},
		{"wrong type: string for list", replace("targets: [https://10.0.0.5]", "targets: https://10.0.0.5"), `drawbridge.yaml:6: upstream "onprem": targets: want a list such as [https://10.0.0.5], got "https://10.0.0.5"`},
		{"wrong type: quoted bool", replace("tls: {ca: ca.pem}", `tls: {ca: ca.pem, system_roots: "true"}`), `drawbridge.yaml:7: upstream "onprem": tls.system_roots: want true or false, got the quoted string "true"`},
		{"wrong type: not a number", replace("    tls: {cert: public.crt, key: public.key}", "    tls: {cert: public.crt, key: public.key}\n    max_header_bytes: lots"), `drawbridge.yaml:4: listener "127.0.0.1:8443": max_header_bytes: want a whole number, got "lots"`},
		{"wrong type: mapping for list", replace("routes:\n", "routes:\n  x: 1\nr:\n"), `drawbridge.yaml:9: routes: want a list, got a mapping (key: value lines)`},

		// Listeners.
		{"no listeners", replace("listeners:\n  - addr: 127.0.0.1:8443\n    tls: {cert: public.crt, key: public.key}\n", "listeners: []\n\n\n"), `drawbridge.yaml:1: no listeners defined; add one under "listeners:", e.g. - {addr: 0.0.0.0:8443, tls: {cert: server.crt, key: server.key}}`},
		{"listener addr missing", replace("  - addr: 127.0.0.1:8443\n", "  - name: pub\n"), `drawbridge.yaml:2: listener "pub": addr is required, e.g. addr: 0.0.0.0:8443`},
		{"listener addr not host:port", replace("127.0.0.1:8443", "8443"), `drawbridge.yaml:2: listener "8443": addr "8443" is not host:port (such as "0.0.0.0:8443" or "[::1]:8443")`},
		{"listener addr bad port", replace("127.0.0.1:8443", "127.0.0.1:http"), `drawbridge.yaml:2: listener "127.0.0.1:http": addr "127.0.0.1:http": port must be a number from 0 to 65535`},
		{"listener without tls", replace("    tls: {cert: public.crt, key: public.key}\n", ""), `drawbridge.yaml:2: listener "127.0.0.1:8443": tls is required: drawbridge only serves HTTPS; add tls: {cert: FILE, key: FILE} with the PEM certificate chain and private key`},
		{"listener cert missing", replace("cert: public.crt, ", ""), `drawbridge.yaml:3: listener "127.0.0.1:8443": tls.cert is required: the PEM file with the certificate chain, leaf first`},
		{"listener key missing", replace(", key: public.key", ""), `drawbridge.yaml:3: listener "127.0.0.1:8443": tls.key is required: the PEM file with the certificate's private key`},
		{"listener cert file absent", replace("cert: public.crt", "cert: certs/nope.crt"), `drawbridge.yaml:3: listener "127.0.0.1:8443": tls.cert: cannot read "certs/nope.crt" (certs/nope.crt): no such file or directory`},
		{"listener key is a folder", replace("key: public.key", "key: ."), `drawbridge.yaml:3: listener "127.0.0.1:8443": tls.key: "." () is a folder; name the file in it`},
		{"listener min version", replace("key: public.key}", `key: public.key, min_version: "1.1"}`), `drawbridge.yaml:3: listener "127.0.0.1:8443": tls.min_version must be "1.2" or "1.3", got "1.1"`},
		{"listener duplicate addr", replace("listeners:\n", "listeners:\n  - {name: a, addr: 127.0.0.1:8443, tls: {cert: public.crt, key: public.key}}\n"), `drawbridge.yaml:3: listener "127.0.0.1:8443": addr "127.0.0.1:8443" is already used by the listener at line 2`},
		{"listener duplicate name", replace("listeners:\n", "listeners:\n  - {name: 127.0.0.1:8443, addr: 127.0.0.1:9443, tls: {cert: public.crt, key: public.key}}\n"), `drawbridge.yaml:3: listener "127.0.0.1:8443": name "127.0.0.1:8443" is already used by the listener at line 2; names must be unique`},
		{"listener zero timeout", replace("    tls: {cert: public.crt, key: public.key}", "    tls: {cert: public.crt, key: public.key}\n    idle_timeout: 0s"), `drawbridge.yaml:4: listener "127.0.0.1:8443": idle_timeout must be greater than 0, got 0s (it defaults to 2m0s)`},
		{"admin addr", good + "admin: {addr: localhost}\n", `drawbridge.yaml:11: admin: addr "localhost" is not host:port (such as "0.0.0.0:8443" or "[::1]:8443"), or "off" to disable the admin listener`},

		// Upstreams: targets.
		{"no targets", replace("targets: [https://10.0.0.5]", "targets: []"), `drawbridge.yaml:6: upstream "onprem": no targets; add targets: [https://HOST:PORT]`},
		{"plaintext refused", replace("targets: [https://10.0.0.5]", "targets: [http://10.0.0.5]"), `drawbridge.yaml:6: upstream "onprem": target "http://10.0.0.5": plaintext http:// is refused; use https:// or set allow_insecure: true (insecure)`},
		{"target without scheme", replace("https://10.0.0.5", "10.0.0.5:443"), `drawbridge.yaml:6: upstream "onprem": target "10.0.0.5:443" is not a URL; write it as "https://10.0.0.5:443"`},
		{"target other scheme", replace("https://10.0.0.5", "ftp://10.0.0.5"), `drawbridge.yaml:6: upstream "onprem": target "ftp://10.0.0.5": scheme must be https:// (or, for tcp listeners, tcp:// or tls://), got "ftp://"`},
		{"target with path", replace("https://10.0.0.5", "https://10.0.0.5/api"), `drawbridge.yaml:6: upstream "onprem": target "https://10.0.0.5/api": a path is not allowed; targets are scheme://host:port, and a route's upstream_path rewrites paths`},
		{"target with query", replace("https://10.0.0.5", "'https://10.0.0.5?a=b'"), `drawbridge.yaml:6: upstream "onprem": target "https://10.0.0.5?a=b": a query string is not allowed; targets are scheme://host:port`},
		{"target with userinfo", replace("https://10.0.0.5", "https://u:p@10.0.0.5"), `drawbridge.yaml:6: upstream "onprem": target "https://u:p@10.0.0.5": user:password@ is not allowed; credentials in URLs end up in logs`},
		{"target without host", replace("https://10.0.0.5", "https://:443"), `drawbridge.yaml:6: upstream "onprem": target "https://:443" has no host`},
		{"target bad port", replace("https://10.0.0.5", "https://10.0.0.5:70000"), `drawbridge.yaml:6: upstream "onprem": target "https://10.0.0.5:70000": port must be a number from 1 to 65535`},
		{"target listed twice", replace("https://10.0.0.5]", "https://10.0.0.5, 'https://10.0.0.5:443']"), `drawbridge.yaml:6: upstream "onprem": target "https://10.0.0.5:443" is listed twice (also at line 6)`},
		// Upstreams: trust.
		{"no trust source", replace("tls: {ca: ca.pem}", "tls: {server_name: b.internal}"), pinHint},
		{"no tls at all", replace("    tls: {ca: ca.pem}\n", ""), `drawbridge.yaml:5: upstream "onprem": no way to verify the backend's certificate: set tls.ca to the PEM file of its CA (or of the self-signed certificate itself), or tls.pins to its public-key pin (run "drawbridge pin https://10.0.0.5:443" to get one), or tls.system_roots: true if its certificate is publicly trusted`},
		{"skip verify needs allow_insecure", replace("tls: {ca: ca.pem}", "tls: {insecure_skip_verify: true}"), `drawbridge.yaml:7: upstream "onprem": tls.insecure_skip_verify: true needs allow_insecure: true on the upstream as well (insecure: the backend is then not authenticated); prefer tls.ca or tls.pins`},
		{"bad pin", replace("tls: {ca: ca.pem}", "tls: {pins: [sha256/abc]}"), `drawbridge.yaml:7: upstream "onprem": tls.pins[0]: "sha256/abc" is not a pin; want "sha256/" and the standard base64 of the SHA-256 of the certificate's public key (44 characters), as printed by "drawbridge pin"`},
		{"pin url-safe base64", replace("tls: {ca: ca.pem}", "tls: {pins: [sha256/47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=]}"), `drawbridge.yaml:7: upstream "onprem": tls.pins[0]: "sha256/47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=" is not a pin; want "sha256/" and the standard base64 of the SHA-256 of the certificate's public key (44 characters), as printed by "drawbridge pin"`},
		{"ca file absent", replace("ca: ca.pem", "ca: /nonexistent/ca.pem"), `drawbridge.yaml:7: upstream "onprem": tls.ca: cannot read "/nonexistent/ca.pem": no such file or directory`},
		{"client cert without key", replace("tls: {ca: ca.pem}", "tls: {ca: ca.pem, client_cert: client.crt}"), `drawbridge.yaml:7: upstream "onprem": tls.client_cert is set but tls.client_key is not; client certificates need both`},
		{"client key without cert", replace("tls: {ca: ca.pem}", "tls: {ca: ca.pem, client_key: client.key}"), `drawbridge.yaml:7: upstream "onprem": tls.client_key is set but tls.client_cert is not; client certificates need both`},
		{"client key absent", replace("tls: {ca: ca.pem}", "tls: {ca: ca.pem, client_cert: client.crt, client_key: nope.key}"), `drawbridge.yaml:7: upstream "onprem": tls.client_key: cannot read "nope.key" (nope.key): no such file or directory`},
		{"upstream min version", replace("tls: {ca: ca.pem}", "tls: {ca: ca.pem, min_version: '1.4'}"), `drawbridge.yaml:7: upstream "onprem": tls.min_version must be "1.2" or "1.3" (or "1.0" or "1.1" for old backends), got "1.4"`},
		{"accept_expired without pins", replace("    tls: {ca: ca.pem}", "    tls:\n      ca: ca.pem\n      accept_expired: true"), `drawbridge.yaml:9: upstream "onprem": tls.accept_expired: true needs tls.pins: only a pinned key can identify a backend whose certificate is expired (run "drawbridge pin https://HOST:PORT" to get its pin); it never applies to ca or system_roots trust`},
		{"legacy_common_name without ca", replace("tls: {ca: ca.pem}", "tls: {pins: ["+testPin+"], legacy_common_name: true}"), `drawbridge.yaml:7: upstream "onprem": tls.legacy_common_name: true only applies to chain verification, so it needs tls.ca (or system_roots); a pinned certificate is accepted without a name check, so with pins only, remove it`},
		{"store accept_expired", good + "store: {type: redis, addr: 10.0.0.7:6379, tls: {pins: [" + testPin + "], accept_expired: true}}\n", `drawbridge.yaml:11: store: tls.accept_expired is only for upstreams`},
		{"store min version 1.0", good + "store: {type: redis, addr: 10.0.0.7:6379, tls: {pins: [" + testPin + "], min_version: '1.0'}}\n", `drawbridge.yaml:11: store: tls.min_version must be "1.2" or "1.3", got "1.0"`},
		{"server name with port", replace("tls: {ca: ca.pem}", "tls: {ca: ca.pem, server_name: 'b.internal:443'}"), `drawbridge.yaml:7: upstream "onprem": tls.server_name "b.internal:443" must be a bare host name, without scheme, port or path`},
		// Upstreams: the rest.
		{"balance", replace("    tls: {ca: ca.pem}", "    tls: {ca: ca.pem}\n    balance: random"), `drawbridge.yaml:8: upstream "onprem": balance must be round_robin or least_requests, got "random"`},
		{"resolver", replace("    tls: {ca: ca.pem}", "    tls: {ca: ca.pem}\n    resolver: 10.0.0.2"), `drawbridge.yaml:8: upstream "onprem": resolver "10.0.0.2" is not host:port (such as "0.0.0.0:8443" or "[::1]:8443") (the DNS server, e.g. "10.0.0.2:53")`},
		{"negative duration", replace("    tls: {ca: ca.pem}", "    tls: {ca: ca.pem}\n    dial_timeout: -1s"), `drawbridge.yaml:8: upstream "onprem": dial_timeout must be greater than 0, got -1s (it defaults to 5s)`},
		{"zero dns refresh", replace("    tls: {ca: ca.pem}", "    tls: {ca: ca.pem}\n    dns_refresh: 0s"), `drawbridge.yaml:8: upstream "onprem": dns_refresh must be greater than 0, got 0s (it defaults to 30s)`},
		{"max idle conns", replace("    tls: {ca: ca.pem}", "    tls: {ca: ca.pem}\n    max_idle_conns: 0"), `drawbridge.yaml:8: upstream "onprem": max_idle_conns must be at least 1, got 0`},
		{"health path missing", replace("    tls: {ca: ca.pem}", "    tls: {ca: ca.pem}\n    health: {interval: 5s}"), `drawbridge.yaml:8: upstream "onprem": health.path is required, e.g. path: /healthz`},
		{"health path relative", replace("    tls: {ca: ca.pem}", "    tls: {ca: ca.pem}\n    health: {path: healthz}"), `drawbridge.yaml:8: upstream "onprem": health.path "healthz" must start with "/"`},
		{"health threshold", replace("    tls: {ca: ca.pem}", "    tls: {ca: ca.pem}\n    health:\n      path: /h\n      healthy_threshold: 0"), `drawbridge.yaml:10: upstream "onprem": health.healthy_threshold must be at least 1, got 0`},
		{"health timeout", replace("    tls: {ca: ca.pem}", "    tls: {ca: ca.pem}\n    health:\n      path: /h\n      timeout: 0s"), `drawbridge.yaml:10: upstream "onprem": health.timeout must be greater than 0, got 0s (it defaults to 2s)`},
		{"passive max fails zero", replace("    tls: {ca: ca.pem}", "    tls: {ca: ca.pem}\n    passive: {max_fails: 0}"), `drawbridge.yaml:8: upstream "onprem": passive.max_fails must be at least 1, or -1 to disable passive ejection; got 0`},
		{"passive eject for", replace("    tls: {ca: ca.pem}", "    tls: {ca: ca.pem}\n    passive: {eject_for: 0s}"), `drawbridge.yaml:8: upstream "onprem": passive.eject_for must be greater than 0, got 0s (it defaults to 30s)`},

		// Routes.
		{"route path missing", replace("  - path: /orders/{id}\n    upstream: onprem", "  - upstream: onprem"), `drawbridge.yaml:9: route #1: path is required, e.g. path: /orders/{id}`},
		{"route path relative", replace("path: /orders/{id}", "path: orders"), `drawbridge.yaml:9: route "ANY orders": path "orders" must start with "/"`},
		{"route path trailing slash", replace("path: /orders/{id}", "path: /orders/"), `drawbridge.yaml:9: route "ANY /orders/": path "/orders/" ends with "/"; remove the trailing slash`},
		{"route path empty segment", replace("path: /orders/{id}", "path: /a//b"), `drawbridge.yaml:9: route "ANY /a//b": path "/a//b" has an empty segment ("//")`},
		{"route param name", replace("path: /orders/{id}", "path: /orders/{i d}"), `drawbridge.yaml:9: route "ANY /orders/{i d}": path "/orders/{i d}": parameter "{i d}" must be a name of letters, digits, _, . or -`},
		{"route param mixed", replace("path: /orders/{id}", "path: /orders/id-{id}"), `drawbridge.yaml:9: route "ANY /orders/id-{id}": path "/orders/id-{id}": segment "id-{id}" mixes text and a parameter; a {param} must be a whole segment`},
		{"route greedy not last", replace("path: /orders/{id}", "path: /{proxy+}/x"), `drawbridge.yaml:9: route "ANY /{proxy+}/x": path "/{proxy+}/x": greedy parameter "{proxy+}" must be the last segment`},
		{"route param twice", replace("path: /orders/{id}", "path: /{id}/{id}"), `drawbridge.yaml:9: route "ANY /{id}/{id}": path "/{id}/{id}": parameter {id} appears twice; names must be unique`},
		{"route query in path", replace("path: /orders/{id}", "path: /orders?x=1"), `drawbridge.yaml:9: route "ANY /orders?x=1": path "/orders?x=1" must not contain "?" or "#"; the query string is always passed through`},
		{"route bad method", replace("    upstream: onprem", "    upstream: onprem\n    methods: [GET, FETCH]"), `drawbridge.yaml:11: route "GET,FETCH /orders/{id}": method "FETCH" is not supported; use GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, ANY`},
		{"route method twice", replace("    upstream: onprem", "    upstream: onprem\n    methods: [GET, get]"), `drawbridge.yaml:11: route "GET,GET /orders/{id}": method GET is listed twice`},
		{"route ANY with others", replace("    upstream: onprem", "    upstream: onprem\n    methods: [ANY, GET]"), `drawbridge.yaml:11: route "ANY,GET /orders/{id}": methods: ANY already matches every method; list ANY alone`},
		{"route upstream missing", replace("    upstream: onprem", "    timeout: 1s"), `drawbridge.yaml:9: route "ANY /orders/{id}": upstream is required: the name of an entry under upstreams:`},
		{"route upstream undefined", replace("upstream: onprem", "upstream: nope"), `drawbridge.yaml:10: route "ANY /orders/{id}": upstream "nope" is not defined (defined: onprem)`},
		{"route upstream_path relative", replace("    upstream: onprem", "    upstream: onprem\n    upstream_path: api/{id}"), `drawbridge.yaml:11: route "ANY /orders/{id}": upstream_path "api/{id}" must start with "/"`},
		{"route upstream_path unknown param", replace("    upstream: onprem", "    upstream: onprem\n    upstream_path: /api/{orderId}"), `drawbridge.yaml:11: route "ANY /orders/{id}": upstream_path refers to {orderId}, which the path does not define (it defines {id})`},
		{"route upstream_path + on plain param", replace("    upstream: onprem", "    upstream: onprem\n    upstream_path: /api/{id+}"), `drawbridge.yaml:11: route "ANY /orders/{id}": upstream_path refers to {id+}, but {id} is not greedy; write {id}`},
		{"route upstream_path unclosed", replace("    upstream: onprem", "    upstream: onprem\n    upstream_path: /api/{id"), `drawbridge.yaml:11: route "ANY /orders/{id}": upstream_path "/api/{id" has "{" without "}"`},
		{"route timeout", replace("    upstream: onprem", "    upstream: onprem\n    timeout: 0s"), `drawbridge.yaml:11: route "ANY /orders/{id}": timeout must be greater than 0, got 0s (it defaults to 29s)`},
		{"route host with port", replace("    upstream: onprem", "    upstream: onprem\n    host: api.example.com:443"), `drawbridge.yaml:11: route "ANY api.example.com:443/orders/{id}": host "api.example.com:443" must be a bare host name, without scheme, port or path`},
		{"route client_cert without a client CA", replace("    upstream: onprem", "    upstream: onprem\n    client_cert: required"), `drawbridge.yaml:11: route "ANY /orders/{id}": client_cert: required needs a listener with tls.client_ca, or no client certificate can ever be presented`},
		{"route bad CIDR", replace("    upstream: onprem", "    upstream: onprem\n    ip: {allow: [10.0.0.0/33]}"), `drawbridge.yaml:11: route "ANY /orders/{id}": ip.allow: "10.0.0.0/33" is not an IP address or CIDR (e.g. 203.0.113.0/24 or 2001:db8::/32)`},
		{"route throttle rate", replace("    upstream: onprem", "    upstream: onprem\n    throttle: {rate: 0, burst: 1}"), `drawbridge.yaml:11: route "ANY /orders/{id}": throttle.rate must be a number of requests per second greater than 0, got 0`},
		{"cors credentials with any origin", replace("    upstream: onprem", "    upstream: onprem\n    cors: {allow_origins: ['*'], allow_credentials: true}"), `drawbridge.yaml:11: route "ANY /orders/{id}": cors: allow_credentials cannot be combined with allow_origins "*" (browsers refuse it); list the origins`},
		{"admin on all interfaces without token", good + "admin: {addr: 0.0.0.0:9090}\n", `drawbridge.yaml:11: admin: addr "0.0.0.0:9090" is not a loopback address, so the admin API needs a token: set token: ${DRAWBRIDGE_ADMIN_TOKEN} or token_file: FILE`},
		{"admin token too short", good + "admin: {addr: 0.0.0.0:9090, token: abc}\n", `drawbridge.yaml:11: admin: token is 3 characters; use at least 16 random ones (e.g. openssl rand -hex 32)`},
		{"store on_error", good + "store: {type: memory, on_error: maybe}\n", `drawbridge.yaml:11: store: on_error must be fail_closed or fail_open, got "maybe"`},
		{"plan method key", good + "plans:\n  gold:\n    methods: {'/orders': {rate: 1, burst: 1}}\n", `drawbridge.yaml:13: plan "gold": methods: "/orders" must be "METHOD /path" as a route declares it, e.g. "GET /orders/{id}"`},
		{"plan method key without a route", good + "plans:\n  gold:\n    methods: {'GET /nosuch': {rate: 1, burst: 1}}\n", `drawbridge.yaml:13: plan "gold": methods: "GET /nosuch" matches no route: it must name a method and path as a route declares them (a route with methods [ANY] takes "ANY /nosuch")`},
		{"partner fingerprint", good + "partners:\n  acme:\n    client_cert: {fingerprints: [abc]}\n", `drawbridge.yaml:13: partner "acme": client_cert.fingerprints: "abc" must be sha256: and the 64 hex digits of the SHA-256 of the DER certificate (openssl x509 -noout -fingerprint -sha256 prints it with colons, which are fine)`},
		{"duplicate route", good + "  - path: /orders/{orderId}\n    upstream: onprem\n", `drawbridge.yaml:11: route "ANY /orders/{orderId}": duplicates route "ANY /orders/{id}" at line 9 (same host, path shape and method); only one of them could ever match`},
		{"duplicate route name", good + "  - {name: 'ANY /orders/{id}', path: /x, upstream: onprem}\n  - {name: 'ANY /orders/{id}', path: /y, upstream: onprem}\n", `drawbridge.yaml:12: route "ANY /orders/{id}": name is already used by the route at line 11; names must be unique`},

		// Store, plans, log, shutdown.
		{"store type", good + "store: {type: etcd}\n", `drawbridge.yaml:11: store: type must be memory, bolt or redis, got "etcd"`},
		{"redis without addr", good + "store: {type: redis}\n", `drawbridge.yaml:11: store: type redis needs addr: the Redis host:port, e.g. addr: 10.0.0.7:6379 (or addrs: [...] for a Cluster or Sentinels)`},
		{"redis bad addr", good + "store:\n  type: redis\n  addr: redis.internal\n", `drawbridge.yaml:13: store: addr "redis.internal" is not host:port (such as "0.0.0.0:8443" or "[::1]:8443")`},
		{"throttle rate", good + "plans:\n  gold:\n    throttle: {rate: 0, burst: 1}\n", `drawbridge.yaml:13: plan "gold": throttle.rate must be a number of requests per second greater than 0, got 0`},
		{"throttle burst", good + "plans:\n  gold:\n    throttle: {rate: 1, burst: -1}\n", `drawbridge.yaml:13: plan "gold": throttle.burst must not be negative, got -1`},
		{"quota limit", good + "plans:\n  gold:\n    quota: {limit: 0, period: DAY}\n", `drawbridge.yaml:13: plan "gold": quota.limit must be a number of requests greater than 0, got 0`},
		{"quota period", good + "plans:\n  gold:\n    quota: {limit: 10, period: YEAR}\n", `drawbridge.yaml:13: plan "gold": quota.period must be DAY, WEEK or MONTH, got "YEAR"`},
		{"quota offset", good + "plans:\n  gold:\n    quota: {limit: 10, period: WEEK, offset: 7}\n", `drawbridge.yaml:13: plan "gold": quota.offset 7 is out of range for period WEEK`},
		{"log level", good + "log:\n  level: verbose\n", `drawbridge.yaml:12: log: level must be debug, info, warn or error, got "verbose"`},
		{"shutdown grace negative", good + "shutdown_grace: -5s\n", `drawbridge.yaml:11: shutdown_grace must not be negative, got -5s; 0 closes connections at once`},
		{"merge overrides without repeating", good + "plans:\n  a: &a {throttle: {rate: 1}}\n  b: {<<: *a, throttle: {rate: 0}}\n", `drawbridge.yaml:13: plan "b": throttle.rate must be a number of requests per second greater than 0, got 0`},
		{"merge into itself", good + "plans:\n  a: &a {throttle: {rate: 1}, <<: *a}\n", `drawbridge.yaml:12: plan "a": << merges a mapping into itself`},
		{"merge keys and aliases", good + "plans:\n  a: &a {throttle: {rate: 1}}\n  b: *a\n  c: {<<: *a, quota: {limit: 1, period: DAY}}\n  d: {<<: [*a, *a], x: 1}\n", `drawbridge.yaml:15: plan "d": unknown key "x"; valid keys here: throttle, quota, methods`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			path := writeConfig(t, tc.text)
			got := problems(t, path, noEnv)
			// The folder appears inside messages as resolved paths too.
			if !slices.Contains(got, strings.ReplaceAll(tc.want, "()", "("+filepath.Dir(path)+")")) && !slices.Contains(got, tc.want) {
				t.Errorf("load(%s):\ngot  %q\nwant %q among them", tc.desc, got, tc.want)
			}
		})
	}
}

func TestManyProblems(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `listeners:
  - addr: 127.0.0.1:8443
    tls: {cert: public.crt, key: missing.key, min_version: "1.1"}
upstreams:
  onprem:
    targets: [http://10.0.0.5, https://b.internal]
    dial_timeout: 3 parsecs
routes:
  - path: /orders/{id}
    methods: [GET]
    upstream: nope
    api_key_required: true
  - {path: "/orders/{x}", methods: [GET],
     upstream: onprem}
log: {level: loud}
`)
	got := problems(t, path, noEnv)
	want := []string{
		`drawbridge.yaml:3: listener "127.0.0.1:8443": tls.key: cannot read "missing.key" (missing.key): no such file or directory`,
		`drawbridge.yaml:3: listener "127.0.0.1:8443": tls.min_version must be "1.2" or "1.3", got "1.1"`,
		`drawbridge.yaml:5: upstream "onprem": no way to verify the backend's certificate: set tls.ca to the PEM file of its CA (or of the self-signed certificate itself), or tls.pins to its public-key pin (run "drawbridge pin https://b.internal:443" to get one), or tls.system_roots: true if its certificate is publicly trusted`,
		`drawbridge.yaml:6: upstream "onprem": target "http://10.0.0.5": plaintext http:// is refused; use https:// or set allow_insecure: true (insecure)`,
		`drawbridge.yaml:7: bad duration "3 parsecs": want a number with a unit, such as "30s", "500ms" or "1m30s" (upstream "onprem": dial_timeout)`,
		`drawbridge.yaml:11: route "GET /orders/{id}": upstream "nope" is not defined (defined: onprem)`,
		`drawbridge.yaml:13: route "GET /orders/{x}": duplicates route "GET /orders/{id}" at line 9 (same host, path shape and method); only one of them could ever match`,
		`drawbridge.yaml:15: log: level must be debug, info, warn or error, got "loud"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("load(config with many problems):\ngot  %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

func TestMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path)
	want := path + ": reading config file: no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("Load(%q): got %v, want %q", path, err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(Load(%q), fs.ErrNotExist): got false, want true", path)
	}
	var cerr *Error
	if !errors.As(err, &cerr) || len(cerr.Problems) != 1 || cerr.Problems[0].Line != 0 {
		t.Errorf("Load(%q): got %#v, want one *Error problem at line 0", path, err)
	}

	_, err = Load(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "is a directory, not a YAML file") {
		t.Errorf("Load(folder): got %v, want an error saying it is a directory", err)
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	err := &Error{Problems: []Problem{
		{File: "drawbridge.yaml", Line: 0, Msg: "reading config file: permission denied"},
		{File: "drawbridge.yaml", Line: 14, Msg: `route "GET /orders/{id}": upstream "nope" is not defined`},
	}}
	want := "drawbridge.yaml: reading config file: permission denied\n" +
		`drawbridge.yaml:14: route "GET /orders/{id}": upstream "nope" is not defined`
	if got := err.Error(); got != want {
		t.Errorf("Error(): got %q, want %q", got, want)
	}
}

func TestWarnings(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `listeners:
  - addr: 127.0.0.1:8443
    tls: {cert: public.crt, key: public.key}
upstreams:
  legacy:
    targets: [https://10.0.0.6, http://10.0.0.5:8080]
    tls: {ca: ca.pem}
    allow_insecure: true
  lab:
    targets: [https://10.0.0.7]
    allow_insecure: true
    tls:
      insecure_skip_verify: true
  unused:
    targets: [https://10.0.0.8]
    tls: {system_roots: true}
    allow_insecure: true
  old:
    targets: [https://10.0.0.9]
    tls:
      ca: ca.pem
      pins: [`+testPin+`]
      legacy_common_name: true
      accept_expired: true
      min_version: 1.0
      legacy_ciphers: true
routes:
  - {path: /legacy, upstream: legacy}
  - {path: /lab, upstream: lab}
`)
	cfg, err := load(path, noEnv)
	if err != nil {
		t.Fatalf("load(insecure config): %v", err)
	}
	got := cfg.Warnings()
	want := []string{
		path + `:13: upstream "lab": tls.insecure_skip_verify is true; the backend's certificate is not verified, so anyone on the path can impersonate it`,
		path + `:6: upstream "legacy": target "http://10.0.0.5:8080" is plaintext http:// (allow_insecure: true); requests and responses to it can be read and changed on the way`,
		path + `:23: upstream "old": tls.legacy_common_name is true; a certificate without subjectAltName is matched by its Common Name, which clients stopped accepting; have the backend's certificate reissued with a SAN, or pin its key`,
		path + `:24: upstream "old": tls.accept_expired is true; a pinned certificate is accepted after it expires, so a leaked key of it stays trusted until the pin is removed`,
		path + `:25: upstream "old": tls.min_version is "1.0"; TLS 1.0 and 1.1 are deprecated (RFC 8996) and weaker against a network attacker; upgrade the backend to TLS 1.2`,
		path + `:26: upstream "old": tls.legacy_ciphers is true; RSA key exchange (no forward secrecy), 3DES and CBC suites are offered to the backend`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Warnings():\ngot  %q\nwant %q", got, want)
	}

	// A Config built by hand has no lines but still warns.
	hand := &Config{File: "x.yaml", Upstreams: map[string]*Upstream{"u": {Line: 3, Targets: []string{"http://h:80"}, AllowInsecure: true}}}
	if got := hand.Warnings(); len(got) != 1 || !strings.HasPrefix(got[0], `x.yaml:3: upstream "u"`) {
		t.Errorf("Warnings() of a hand-built Config: got %q, want one warning at x.yaml:3", got)
	}
}

func TestDurationYAML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc    string
		in      string
		want    time.Duration
		wantErr string
	}{
		{desc: "seconds", in: "d: 29s", want: 29 * time.Second},
		{desc: "compound", in: "d: 1m30s", want: 90 * time.Second},
		{desc: "milliseconds", in: "d: 500ms", want: 500 * time.Millisecond},
		{desc: "bare zero", in: "d: 0", want: 0},
		{desc: "no unit", in: "d: 30", wantErr: `line 1: bad duration "30"`},
		{desc: "nonsense", in: "d: 3 parsecs", wantErr: `line 1: bad duration "3 parsecs"`},
		{desc: "list", in: "d: [1s]", wantErr: `line 1: bad duration: want a value such as "30s", got a list`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			var v struct{ D Duration }
			err := yaml.Unmarshal([]byte(tc.in), &v)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("yaml.Unmarshal(%q): got error %v, want one containing %q", tc.in, err, tc.wantErr)
				}
			case err != nil:
				t.Errorf("yaml.Unmarshal(%q): %v", tc.in, err)
			case v.D.D() != tc.want:
				t.Errorf("yaml.Unmarshal(%q): got %v, want %v", tc.in, v.D, tc.want)
			}
		})
	}
	out, err := yaml.Marshal(struct{ D Duration }{Duration(90 * time.Second)})
	if err != nil || string(out) != "d: 1m30s\n" {
		t.Errorf("yaml.Marshal(90s): got %q, %v; want %q", out, err, "d: 1m30s\n")
	}
}

// TestGolden loads each testdata/*.yaml beside the dummy files and compares
// the problems and warnings with testdata/*.golden; -update rewrites them.
func TestGolden(t *testing.T) {
	t.Parallel()
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("filepath.Glob(testdata/*.yaml): got %d files, %v; want some", len(inputs), err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			text, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			path := writeConfig(t, string(text))
			dir := filepath.Dir(path)
			env := envOf(map[string]string{"BACKEND_HOST": "backend.internal"})
			var got strings.Builder
			cfg, err := load(path, env)
			if err != nil {
				got.WriteString(err.Error() + "\n")
			} else {
				got.WriteString("ok\n")
				for _, w := range cfg.Warnings() {
					got.WriteString("warning: " + w + "\n")
				}
				dump, err := yaml.Marshal(cfg)
				if err != nil {
					t.Fatalf("yaml.Marshal(config): %v", err)
				}
				got.WriteString("---\n")
				got.Write(dump)
			}
			// Name the file as the golden reader knows it, not by its temp folder.
			out := strings.ReplaceAll(got.String(), path, name+".yaml")
			out = strings.ReplaceAll(out, dir, "CONFIGDIR")

			golden := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading %s (run go test ./internal/config -update to create it): %v", golden, err)
			}
			if out != string(want) {
				t.Errorf("load(%s):\ngot:\n%s\nwant:\n%s", in, out, want)
			}
		})
	}
}

// FuzzLoad checks that no input makes Load panic or fail without problems.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(fullConfig))
	f.Add([]byte("a: &a [*a]\nb: &b {<<: *b}\n"))
	f.Add([]byte("listeners: [{addr: '${X}', tls: {cert: $${y}}}]\nplans: {p: {quota: {period: week, offset: -1}}}\n"))
	for _, name := range []string{"many_errors", "types", "env", "syntax", "l4_good", "l4_errors"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name+".yaml")); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := loadData("fuzz.yaml", data, envOf(map[string]string{"X": "1"}))
		if err == nil {
			_ = cfg.Warnings()
			return
		}
		var cerr *Error
		if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
			t.Fatalf("loadData(%q): got %#v, want *Error with problems", data, err)
		}
	})
}

// TestPlanMethodKeyTakesRouteSpelling: a per-method throttle names the
// path with any parameter names; it is stored under the route's own
// spelling, which is what the gateway looks it up by.
func TestPlanMethodKeyTakesRouteSpelling(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, good+"plans:\n  gold:\n    methods: {'ANY /orders/{orderId}': {rate: 1, burst: 2}}\n")
	cfg, err := load(path, noEnv)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	got := cfg.Plans["gold"].Methods
	if _, ok := got["ANY /orders/{id}"]; !ok || len(got) != 1 {
		t.Errorf("plan gold methods: got keys %v, want just \"ANY /orders/{id}\"", slices.Collect(maps.Keys(got)))
	}
}
