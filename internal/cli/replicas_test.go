package cli

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil/redistest"
)

const (
	throttleKey = "throttle-key-0123456789abcdefghijkl"
	quotaKey    = "quota-key-0123456789abcdefghijklmnop"
)

// replicaConfig is a gateway on a shared Redis with two plans: one
// throttled, one with a quota, and an open route with a route throttle.
func replicaConfig(t *testing.T, f *fixture, redisAddr string) string {
	t.Helper()
	cfg := f.config(t, fmt.Sprintf(`    api_key_required: true
  - path: /open
    upstream: onprem
    throttle: {rate: 1000, burst: 1000}
store: {type: redis, addr: %s}
plans:
  throttled: {throttle: {rate: 20, burst: 10}}
  metered: {quota: {limit: 50, period: DAY}}
`, redisAddr))
	return cfg
}

func createKey(t *testing.T, cfg, name, plan, value string) {
	t.Helper()
	r := run(t, "keys", "create", "-c", cfg, "--name", name, "--plan", plan, "--value", value)
	if r.code != 0 || !strings.Contains(r.stdout, "key: "+value+"\n") {
		t.Fatalf("keys create %s: exit %d\nstdout %s\nstderr %s", name, r.code, r.stdout, r.stderr)
	}
}

// TestReplicasShareRedis runs two gateway processes on one redis-server:
// throttles and quotas hold for their sum, a key created or revoked is
// seen by both within a second, and losing Redis gives the configured
// answer, not a crash, until it returns.
func TestReplicasShareRedis(t *testing.T) {
	t.Parallel()
	redis := redistest.Start(t)
	f := newFixture(t, nil)
	cfg := replicaConfig(t, f, redis.Addr())
	// The first gateway writes the plans into Redis; keys need them.
	a := startServe(t, cfg)
	b := startServe(t, cfg)
	createKey(t, cfg, "thr", "throttled", throttleKey)
	createKey(t, cfg, "quo", "metered", quotaKey)
	ca, cb := a.client(f.frontCA), b.client(f.frontCA)
	replicas := []struct {
		c    *http.Client
		base string
	}{{ca, "https://" + a.addr}, {cb, "https://" + b.addr}}

	send := func(i int, key, path string) int {
		req, _ := http.NewRequest("GET", replicas[i%2].base+path, nil)
		if key != "" {
			req.Header.Set("x-api-key", key)
		}
		resp, err := replicas[i%2].c.Do(req)
		if err != nil {
			t.Errorf("GET %s: %v", path, err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Warm both connections so the measured window is not handshakes.
	waitStatus(t, "both replicas serving the throttled key", func() bool {
		return send(0, throttleKey, "/x") == 200 && send(1, throttleKey, "/x") == 200
	})
	time.Sleep(600 * time.Millisecond) // let the bucket refill: rate 20/s, burst 10

	t.Run("throttle sum", func(t *testing.T) {
		var allowed, refused atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		deadline := start.Add(2 * time.Second)
		for g := range 6 {
			wg.Go(func() {
				for i := g; time.Now().Before(deadline); i++ {
					switch send(i, throttleKey, "/x") {
					case 200:
						allowed.Add(1)
					case 429:
						refused.Add(1)
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start).Seconds()
		want := 20*elapsed + 10
		got := float64(allowed.Load())
		if got < want*0.95-3 || got > want*1.05+3 {
			t.Errorf("two replicas, rate 20/s burst 10 over %.2fs: %v allowed (%d refused), want %.1f ±5%%", elapsed, got, refused.Load(), want)
		}
		if refused.Load() == 0 {
			t.Errorf("nothing was throttled; the load did not exceed the limit")
		}
	})

	t.Run("quota exact", func(t *testing.T) {
		var allowed, exceeded atomic.Int64
		var wg sync.WaitGroup
		for g := range 10 {
			wg.Go(func() {
				for i := range 10 {
					switch send(g*10+i, quotaKey, "/x") {
					case 200:
						allowed.Add(1)
					case 429:
						exceeded.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if allowed.Load() != 50 || exceeded.Load() != 50 {
			t.Errorf("quota 50 over two replicas, 100 requests: %d allowed, %d Limit Exceeded; want 50 and 50", allowed.Load(), exceeded.Load())
		}
	})

	t.Run("key created and revoked on all replicas within a second", func(t *testing.T) {
		const late = "late-key-0123456789abcdefghijklmnopq"
		if send(0, late, "/x") != 403 || send(1, late, "/x") != 403 {
			t.Fatalf("an unknown key was accepted")
		}
		createKey(t, cfg, "late", "throttled", late)
		created := time.Now()
		waitWithin(t, "new key accepted by both", created, time.Second, func() bool {
			return send(0, late, "/x") == 200 && send(1, late, "/x") == 200
		})
		time.Sleep(600 * time.Millisecond) // refill the bucket
		if r := run(t, "keys", "revoke", "-c", cfg, "--name", "late"); r.code != 0 {
			t.Fatalf("keys revoke: exit %d %s", r.code, r.stderr)
		}
		revoked := time.Now()
		waitWithin(t, "revoked key refused by both", revoked, time.Second, func() bool {
			return send(0, late, "/x") == 403 && send(1, late, "/x") == 403
		})
	})

	t.Run("redis killed and back", func(t *testing.T) {
		if got := send(0, "", "/open"); got != 200 {
			t.Fatalf("open route before the outage: %d", got)
		}
		redis.Kill()
		for i := range 2 {
			// fail_closed (the default): metered routes refuse with 503.
			if got := send(i, "", "/open"); got != 503 {
				t.Errorf("route throttle with Redis down, replica %d: got %d, want 503", i, got)
			}
			if got := send(i, throttleKey, "/x"); got != 503 {
				t.Errorf("keyed route with Redis down, replica %d: got %d, want 503", i, got)
			}
		}
		redis.Restart()
		waitStatus(t, "recovery after Redis returns", func() bool {
			return send(0, "", "/open") == 200 && send(1, "", "/open") == 200
		})
		for _, s := range []*server{a, b} {
			if strings.Contains(s.logs.String(), "panic") {
				t.Errorf("a replica logged a panic:\n%s", s.logs)
			}
		}
	})
}

func waitStatus(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, what, time.Now(), 10*time.Second, cond)
}

// waitWithin polls cond until it holds, failing if that takes longer than
// limit after since.
func waitWithin(t *testing.T, what string, since time.Time, limit time.Duration, cond func() bool) {
	t.Helper()
	for !cond() {
		if time.Since(since) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestAdminOverTLS: with admin.tls the admin API is HTTPS only, and the
// keys CLI reaches it pinned to the admin certificate. The memory store
// lives inside the gateway, so a key that works proves the API path.
func TestAdminOverTLS(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	adminAddr := freeAddr(t)
	cfg := f.config(t, `    api_key_required: true
store: {type: memory}
plans: {gold: {throttle: {rate: 100, burst: 100}}}
`)
	text := readFile(t, cfg)
	text = strings.Replace(text, `admin: {addr: "off"}`, fmt.Sprintf(`admin:
  addr: %s
  token: 0123456789abcdef0123456789abcdef
  tls: {cert: %q, key: %q}`, adminAddr, f.frontCert, f.frontKey), 1)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, cfg)
	createKey(t, cfg, "acme", "gold", quotaKey)
	c := s.client(f.frontCA)
	req, _ := http.NewRequest("GET", "https://"+s.addr+"/x", nil)
	req.Header.Set("x-api-key", quotaKey)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("key created through the TLS admin API: got %d, want 200", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + adminAddr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("plain HTTP to the TLS admin API answered %d", resp.StatusCode)
		}
	}
}
