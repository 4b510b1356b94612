package observe

import (
	"crypto/x509"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is drawbridge's Prometheus registry. One Metrics lives for the
// whole process, across config reloads, so counters never reset on reload.
type Metrics struct {
	registry *prometheus.Registry

	requests         *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	upstreamDuration *prometheus.HistogramVec
	upstreamErrors   *prometheus.CounterVec
	targets          *targetCollector
	healthChecks     *prometheus.CounterVec
	certExpiry       *prometheus.GaugeVec
	configReloads    *prometheus.CounterVec
	certReloads      *prometheus.CounterVec
	inflight         prometheus.Gauge
	throttled        *prometheus.CounterVec
	quotaExceeded    *prometheus.CounterVec
	rejected         *prometheus.CounterVec
	storeErrors      *prometheus.CounterVec
	acmeOrders       *prometheus.CounterVec
	l4               *L4Metrics

	unmatched *RouteMetrics
}

// latencyBuckets span 1 ms to 30 s: partner APIs answer in milliseconds,
// and API Gateway's integration timeout is 29 s.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// NewMetrics registers every drawbridge metric, plus the Go runtime and
// process collectors, on a fresh registry.
func NewMetrics(version string) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{
		registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_requests_total",
			Help: "Partner requests by route, method (OTHER for unusual ones) and status class: code is 2xx, 4xx, ... (499: the partner hung up first).",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "drawbridge_request_duration_seconds",
			Help:    "Time from request received to response handler done, by route.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		upstreamDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "drawbridge_upstream_duration_seconds",
			Help:    "Time from request sent to the backend until its response headers, by upstream.",
			Buckets: latencyBuckets,
		}, []string{"upstream"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_upstream_errors_total",
			Help: "Failed upstream attempts by upstream and reason (connect, tls, timeout, no_target, ...).",
		}, []string{"upstream", "reason"}),
		targets: newTargetCollector(),
		healthChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_health_checks_total",
			Help: "Active health checks by upstream, target and result (ok, fail).",
		}, []string{"upstream", "target", "result"}),
		certExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drawbridge_cert_expiry_seconds",
			Help: "Seconds until a certificate expires (negative once expired): kind=listener for served cert files, kind=acme for ACME certificates (name is listener/domain), kind=upstream for the last backend leaf verified.",
		}, []string{"kind", "name"}),
		configReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_config_reloads_total",
			Help: "Config reloads by result (ok, error). On error the previous config keeps serving.",
		}, []string{"result"}),
		certReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_cert_reloads_total",
			Help: "Listener certificate reloads by listener and result (ok, error).",
		}, []string{"listener", "result"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "drawbridge_requests_in_flight",
			Help: "Partner requests being served now.",
		}),
	}
	f(m.requests)
	f(m.duration)
	f(m.upstreamDuration)
	f(m.upstreamErrors)
	f(m.targets)
	f(m.healthChecks)
	f(m.certExpiry)
	f(m.configReloads)
	f(m.certReloads)
	f(m.inflight)
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drawbridge_throttled_total",
		Help: "Requests refused 429 Too Many Requests, by usage plan (\"\" without one) and level: key, route or gateway.",
	}, []string{"plan", "level"})
	m.quotaExceeded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drawbridge_quota_exceeded_total",
		Help: "Requests refused 429 Limit Exceeded because the key's quota is used up, by usage plan.",
	}, []string{"plan"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drawbridge_rejected_total",
		Help: "Requests refused by a partner check, by reason (missing, invalid, disabled, expired, revoked, unavailable, ip, client_cert).",
	}, []string{"reason"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drawbridge_store_errors_total",
		Help: "Requests during which the state store could not be reached, by the action taken (fail_open, fail_closed).",
	}, []string{"action"})
	f(m.throttled)
	f(m.quotaExceeded)
	f(m.rejected)
	f(m.storeErrors)
	m.acmeOrders = newACMEOrders()
	f(m.acmeOrders)
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "drawbridge_build_info",
		Help:        "Always 1; the version label says which drawbridge runs.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	info.Set(1)
	f(info)
	m.l4 = newL4Metrics(f)
	m.unmatched = m.Route("(none)")
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Registry is the underlying registry, for tests that gather it.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// countedMethods get their own label value; anything else counts as OTHER
// so a client cannot grow the metric's cardinality with made-up methods.
var countedMethods = [...]string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "OTHER"}

var codeClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// RouteMetrics are one route's request counters. Each (method, status
// class) counter is resolved on its first use and then kept, so the
// request path does no label lookups and /metrics lists only series that
// happened.
type RouteMetrics struct {
	Name     string
	vec      *prometheus.CounterVec
	requests [len(countedMethods)][len(codeClasses)]atomic.Pointer[prometheus.Counter]
	duration prometheus.Observer
}

// Route returns the counters for the route named name.
func (m *Metrics) Route(name string) *RouteMetrics {
	return &RouteMetrics{Name: name, vec: m.requests, duration: m.duration.WithLabelValues(name)}
}

func (rm *RouteMetrics) counter(method, class int) prometheus.Counter {
	cell := &rm.requests[method][class]
	if c := cell.Load(); c != nil {
		return *c
	}
	c := rm.vec.WithLabelValues(rm.Name, countedMethods[method], codeClasses[class])
	cell.Store(&c)
	return c
}

func methodIndex(method string) int {
	for i, m := range countedMethods[:len(countedMethods)-1] {
		if m == method {
			return i
		}
	}
	return len(countedMethods) - 1
}

func (rm *RouteMetrics) observe(method string, status int, d time.Duration) {
	class := status/100 - 1
	if class < 0 || class >= len(codeClasses) {
		class = len(codeClasses) - 1
	}
	rm.counter(methodIndex(method), class).Inc()
	rm.duration.Observe(d.Seconds())
}

// UpstreamMetrics are one upstream's metrics, resolved once when the
// upstream is built.
type UpstreamMetrics struct {
	m        *Metrics
	name     string
	duration prometheus.Observer
}

// Upstream returns the metrics of the upstream named name.
func (m *Metrics) Upstream(name string) *UpstreamMetrics {
	return &UpstreamMetrics{m: m, name: name, duration: m.upstreamDuration.WithLabelValues(name)}
}

// ObserveDuration records one backend exchange's time to response headers.
func (u *UpstreamMetrics) ObserveDuration(d time.Duration) { u.duration.Observe(d.Seconds()) }

// Error counts a failed attempt; reason is a short fixed word.
func (u *UpstreamMetrics) Error(reason string) {
	u.m.upstreamErrors.WithLabelValues(u.name, reason).Inc()
}

// HealthCheck counts one active check of target.
func (u *UpstreamMetrics) HealthCheck(target string, ok bool) {
	result := "fail"
	if ok {
		result = "ok"
	}
	u.m.healthChecks.WithLabelValues(u.name, target, result).Inc()
}

// CertSeen records the expiry of the backend leaf last verified.
func (u *UpstreamMetrics) CertSeen(leaf *x509.Certificate) {
	u.m.CertExpiry("upstream", u.name, leaf)
}

// CertExpiry records when cert expires; kind is "listener" or "upstream".
func (m *Metrics) CertExpiry(kind, name string, cert *x509.Certificate) {
	m.certExpiry.WithLabelValues(kind, name).Set(time.Until(cert.NotAfter).Seconds())
}

// ConfigReload counts a config reload attempt.
func (m *Metrics) ConfigReload(err error) {
	m.configReloads.WithLabelValues(result(err)).Inc()
}

// CertReload counts a listener certificate reload attempt.
func (m *Metrics) CertReload(listener string, err error) {
	m.certReloads.WithLabelValues(listener, result(err)).Inc()
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// Throttled counts a 429 Too Many Requests at level key, route or gateway.
func (m *Metrics) Throttled(plan, level string) { m.throttled.WithLabelValues(plan, level).Inc() }

// QuotaExceeded counts a 429 Limit Exceeded.
func (m *Metrics) QuotaExceeded(plan string) { m.quotaExceeded.WithLabelValues(plan).Inc() }

// Rejected counts a request refused by a partner check.
func (m *Metrics) Rejected(reason string) { m.rejected.WithLabelValues(reason).Inc() }

// StoreError counts a request that met an unreachable store; action is
// what the configuration did about it (fail_open or fail_closed).
func (m *Metrics) StoreError(action string) { m.storeErrors.WithLabelValues(action).Inc() }
