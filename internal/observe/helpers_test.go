package observe_test

import (
	"crypto/tls"
	"encoding/json"
	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/certs"
)

// front serves next behind Middleware over real TLS on loopback, with a
// JSON access log and a fresh Metrics.
type front struct {
	t       *testing.T
	srv     *httptest.Server
	client  *http.Client
	log     *syncBuffer
	metrics *observe.Metrics
}

func newFront(t *testing.T, next http.Handler) *front {
	t.Helper()
	f := &front{t: t, log: &syncBuffer{}, metrics: observe.NewMetrics("test")}
	h := observe.Middleware(observe.MiddlewareOptions{
		AccessLog: slog.New(slog.NewJSONHandler(f.log, nil)),
		Metrics:   f.metrics,
		Listener:  "public",
	}, next)
	cert := certs.SelfSigned(t, certs.Options{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	f.srv = httptest.NewUnstartedServer(h)
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool()}}
	t.Cleanup(tr.CloseIdleConnections)
	f.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return f
}

// accessLines waits until the access log holds n lines and returns them
// decoded. The line is written when the handler returns, which can be
// after the client has the whole response.
func (f *front) accessLines(n int) []map[string]any {
	f.t.Helper()
	var lines []string
	waitFor(f.t, "access log lines", func() bool {
		lines = strings.Split(strings.TrimSpace(f.log.String()), "\n")
		if len(lines) == 1 && lines[0] == "" {
			lines = nil
		}
		return len(lines) >= n
	})
	if len(lines) != n {
		f.t.Fatalf("access log: got %d lines, want %d:\n%s", len(lines), n, f.log)
	}
	out := make([]map[string]any, n)
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &out[i]); err != nil {
			f.t.Fatalf("access log line %q: %v", l, err)
		}
	}
	return out
}

// counter returns the value of the counter name with exactly labels, or 0
// when the registry has no such series.
func counter(t *testing.T, m *observe.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
	metrics:
		for _, mt := range fam.GetMetric() {
			if len(mt.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range mt.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			switch {
			case mt.GetCounter() != nil:
				return mt.GetCounter().GetValue()
			case mt.GetGauge() != nil:
				return mt.GetGauge().GetValue()
			case mt.GetHistogram() != nil:
				return float64(mt.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

var waitFor = testutil.WaitFor

type syncBuffer = testutil.SyncBuffer
