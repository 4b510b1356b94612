package observe

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// TargetState is one upstream target's availability at scrape time.
type TargetState struct {
	Upstream, Target string
	Healthy, Ejected bool
}

// targetCollector reads target states when Prometheus scrapes, from
// whatever config is live then, so a reload needs no metric bookkeeping
// and removed targets disappear from the output.
type targetCollector struct {
	up, ejected *prometheus.Desc
	states      atomic.Pointer[func() []TargetState]
}

func newTargetCollector() *targetCollector {
	return &targetCollector{
		up: prometheus.NewDesc("drawbridge_upstream_target_up",
			"1 when active health checks consider the target healthy, else 0.",
			[]string{"upstream", "target"}, nil),
		ejected: prometheus.NewDesc("drawbridge_upstream_target_ejected",
			"1 while passive health checks eject the target after connect/TLS failures, else 0.",
			[]string{"upstream", "target"}, nil),
	}
}

// SetTargetStates installs the function that lists target states at scrape
// time; the gateway calls it whenever a config goes live.
func (m *Metrics) SetTargetStates(f func() []TargetState) { m.targets.states.Store(&f) }

func (c *targetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.ejected
}

func (c *targetCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.states.Load()
	if f == nil {
		return
	}
	for _, s := range (*f)() {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, b2f(s.Healthy), s.Upstream, s.Target)
		ch <- prometheus.MustNewConstMetric(c.ejected, prometheus.GaugeValue, b2f(s.Ejected), s.Upstream, s.Target)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
