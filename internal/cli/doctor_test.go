package cli

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/doctor"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// doctorBackend serves HTTPS with cert, answering /healthz with 200.
func doctorBackend(t *testing.T, cert *certs.Cert) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	// Refused handshakes are what several cases test; not worth a log line.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// writeDoctorConfig writes a config with one listener (certFile, keyFile)
// and the upstream "onprem" whose body (targets, tls, health) is given,
// indented by four spaces.
func writeDoctorConfig(t *testing.T, dir, certFile, keyFile, upstream string) string {
	t.Helper()
	text := fmt.Sprintf(`listeners:
  - name: public
    addr: 127.0.0.1:0
    tls: {cert: %q, key: %q}
admin: {addr: "off"}
upstreams:
  onprem:
%s
routes:
  - path: /{proxy+}
    upstream: onprem
`, certFile, keyFile, upstream)
	path := filepath.Join(dir, "drawbridge.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runDoctor(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(append([]string{"doctor", "--timeout", "3s"}, args...), &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

func TestDoctor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Now()
	good := certs.SelfSigned(t, certs.Options{DNSNames: []string{"api.example.com"}, NotAfter: now.Add(61*24*time.Hour + time.Hour)})
	goodCert, goodKey := good.WriteFiles(t, dir)
	expired := certs.SelfSigned(t, certs.Options{DNSNames: []string{"api.example.com"}, NotBefore: now.Add(-60 * 24 * time.Hour), NotAfter: now.Add(-48 * time.Hour)})
	expiredCert, expiredKey := expired.WriteFiles(t, dir)
	expiredDay := expired.Cert.NotAfter.UTC().Format(time.DateOnly)
	other := certs.SelfSigned(t, certs.Options{DNSNames: []string{"api.example.com"}})
	_, otherKey := other.WriteFiles(t, dir)

	backendCert := certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}})
	backend := doctorBackend(t, backendCert)
	backendPin := transport.SPKIPin(backendCert.Cert)
	oldBackendCert := certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}, NotBefore: now.Add(-400 * 24 * time.Hour), NotAfter: now.Add(-30 * 24 * time.Hour)})
	oldBackend := doctorBackend(t, oldBackendCert)
	oldDay := oldBackendCert.Cert.NotAfter.UTC().Format(time.DateOnly)

	ca := certs.SelfSigned(t, certs.Options{IsCA: true})
	caFile, _ := ca.WriteFiles(t, dir)
	caSigned := certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}, Parent: ca, NotAfter: now.Add(90 * 24 * time.Hour)})
	caBackend := doctorBackend(t, caSigned)

	closedAddr := freeAddr(t) // nothing listens there

	pinned := func(target, pin, extra string) string {
		return fmt.Sprintf("    targets: [%s]\n    tls:\n      server_name: backend.internal\n      pins: [%q]\n%s    health: {path: /healthz}", target, pin, extra)
	}
	wrongPin := transport.SPKIPin(other.Cert)
	backendHost := strings.TrimPrefix(backend.URL, "https://")

	tests := []struct {
		desc          string
		cert, key     string
		upstream      string
		wantCode      int
		want, wantNot []string
	}{{
		desc: "good setup", cert: goodCert, key: goodKey,
		upstream: pinned(backend.URL, backendPin, ""),
		wantCode: 0,
		want: []string{
			"listener public → 127.0.0.1:0 [cert api.example.com, 61 days left, TLS1.2+] OK",
			"upstream onprem → " + backend.URL + " [verified by pin " + backendPin[:len("sha256/")+8] + "…, TLS 1.3, health /healthz 200 in ",
		},
		wantNot: []string{"FAIL", "WARN"},
	}, {
		desc: "expired listener certificate", cert: expiredCert, key: expiredKey,
		upstream: pinned(backend.URL, backendPin, ""),
		wantCode: 1,
		want:     []string{"expired " + expiredDay + ", TLS1.2+] FAIL", "fix: renew the listener certificate"},
	}, {
		desc: "key does not match its certificate", cert: goodCert, key: otherKey,
		upstream: pinned(backend.URL, backendPin, ""),
		wantCode: 1,
		want:     []string{"does not match certificate", "] FAIL", "fix: tls.key must be the private key"},
	}, {
		desc: "wrong pin", cert: goodCert, key: goodKey,
		upstream: pinned(backend.URL, wrongPin, ""),
		wantCode: 1,
		want:     []string{"pin mismatch", "] FAIL", `run "drawbridge pin https://` + backendHost + ` --server-name backend.internal" and compare before trusting the new key`},
	}, {
		desc: "unreachable target", cert: goodCert, key: goodKey,
		upstream: pinned("https://"+closedAddr, backendPin, ""),
		wantCode: 1,
		want:     []string{"unreachable", "] FAIL", "fix: check routing and firewalls"},
	}, {
		desc: "expired pinned backend with accept_expired", cert: goodCert, key: goodKey,
		upstream: pinned(oldBackend.URL, transport.SPKIPin(oldBackendCert.Cert), "      accept_expired: true\n"),
		wantCode: 0,
		want:     []string{"expired " + oldDay + ", accepted by pin because accept_expired is set", "] WARN", "fix: renew the backend's certificate"},
		wantNot:  []string{"FAIL"},
	}, {
		desc: "expired pinned backend without accept_expired", cert: goodCert, key: goodKey,
		upstream: pinned(oldBackend.URL, transport.SPKIPin(oldBackendCert.Cert), ""),
		wantCode: 1,
		want:     []string{"certificate expired", "] FAIL", "tls.accept_expired"},
	}, {
		desc: "verified by CA", cert: goodCert, key: goodKey,
		upstream: fmt.Sprintf("    targets: [%s]\n    tls:\n      server_name: backend.internal\n      ca: %q", caBackend.URL, caFile),
		wantCode: 0,
		want:     []string{"verified by CA " + caFile + " for backend.internal, TLS 1.3] OK"},
	}, {
		desc: "CA-signed but wrong server_name", cert: goodCert, key: goodKey,
		upstream: fmt.Sprintf("    targets: [%s]\n    tls:\n      server_name: wrong.internal\n      ca: %q", caBackend.URL, caFile),
		wantCode: 1,
		want:     []string{"name mismatch", "] FAIL", "set tls.server_name"},
	}, {
		desc: "unknown authority", cert: goodCert, key: goodKey,
		upstream: fmt.Sprintf("    targets: [%s]\n    tls:\n      server_name: backend.internal\n      ca: %q", backend.URL, caFile),
		wantCode: 1,
		want:     []string{"unknown authority", "] FAIL", fmt.Sprintf("tls.ca %q", caFile)},
	}}
	for i, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			sub := filepath.Join(dir, fmt.Sprint(i))
			if err := os.Mkdir(sub, 0o700); err != nil {
				t.Fatal(err)
			}
			path := writeDoctorConfig(t, sub, tc.cert, tc.key, tc.upstream)
			r := runDoctor(t, "-c", path)
			if r.code != tc.wantCode {
				t.Errorf("doctor -c %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", path, r.code, tc.wantCode, r.stdout, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("doctor -c %s: stdout lacks %q:\n%s", path, w, r.stdout)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(r.stdout, w) {
					t.Errorf("doctor -c %s: stdout has %q:\n%s", path, w, r.stdout)
				}
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		sub := filepath.Join(dir, "json")
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		path := writeDoctorConfig(t, sub, goodCert, goodKey,
			fmt.Sprintf("    targets: [%s, https://%s]\n    tls:\n      server_name: backend.internal\n      pins: [%q]", backend.URL, closedAddr, backendPin))
		r := runDoctor(t, "-c", path, "--json")
		if r.code != 1 {
			t.Errorf("doctor --json: exit %d, want 1; stderr %q", r.code, r.stderr)
		}
		var hops []doctor.Hop
		if err := json.Unmarshal([]byte(r.stdout), &hops); err != nil {
			t.Fatalf("doctor --json: stdout is not a JSON array of hops: %v\n%s", err, r.stdout)
		}
		got := make([]string, len(hops))
		for i, h := range hops {
			got[i] = fmt.Sprintf("%s %s %s %s", h.Kind, h.Name, h.Target, h.Status)
		}
		want := []string{
			"listener public 127.0.0.1:0 ok",
			"upstream onprem " + backend.URL + " ok",
			"upstream onprem https://" + closedAddr + " fail",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("doctor --json hops: got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if len(hops) == 3 && hops[2].Fix == "" {
			t.Errorf("doctor --json: failed hop has no fix: %+v", hops[2])
		}
		if !strings.Contains(r.stdout, `"status": "fail"`) {
			t.Errorf("doctor --json: want lowercase status field, got\n%s", r.stdout)
		}
	})

	t.Run("config error", func(t *testing.T) {
		t.Parallel()
		bad := filepath.Join(dir, "bad.yaml")
		os.WriteFile(bad, []byte("listeners: []\nbogus: 1\n"), 0o600)
		r := runDoctor(t, "-c", bad)
		if r.code != 1 || !strings.Contains(r.stderr, bad+":") {
			t.Errorf("doctor -c %s: exit %d, stderr %q; want 1 and FILE:LINE problems", bad, r.code, r.stderr)
		}
	})
}
