package observe

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// L4Metrics are the L4 tier's metrics: connections of tcp listeners, the
// bytes they carry and how many are open.
type L4Metrics struct {
	connections *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	active      *prometheus.GaugeVec
}

func newL4Metrics(register func(prometheus.Collector)) *L4Metrics {
	m := &L4Metrics{
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_l4_connections_total",
			Help: "Closed connections of tcp listeners by listener, upstream (\"\" when none was chosen) and result (ok, no_route, bad_hello, client_tls, no_target, connect, upstream_tls, idle_timeout, reset, shutdown, error).",
		}, []string{"listener", "upstream", "result"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drawbridge_l4_bytes_total",
			Help: "Bytes copied by tcp listeners, by listener and direction: in is client to target, out is target to client.",
		}, []string{"listener", "direction"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "drawbridge_l4_active_connections",
			Help: "Connections of tcp listeners open now, by listener.",
		}, []string{"listener"}),
	}
	register(m.connections)
	register(m.bytes)
	register(m.active)
	return m
}

// L4 returns the L4 tier's metrics.
func (m *Metrics) L4() *L4Metrics { return m.l4 }

// L4Listener is one tcp listener's metrics, its labels resolved once.
type L4Listener struct {
	m        *L4Metrics
	name     string
	active   prometheus.Gauge
	bytesIn  prometheus.Counter
	bytesOut prometheus.Counter
}

// Listener returns the metrics of the tcp listener called name.
func (m *L4Metrics) Listener(name string) *L4Listener {
	return &L4Listener{
		m:        m,
		name:     name,
		active:   m.active.WithLabelValues(name),
		bytesIn:  m.bytes.WithLabelValues(name, "in"),
		bytesOut: m.bytes.WithLabelValues(name, "out"),
	}
}

// Opened counts a connection as open; pair it with Closed.
func (l *L4Listener) Opened() { l.active.Inc() }

// Closed counts a connection's end and its result.
func (l *L4Listener) Closed(upstream, result string) {
	l.active.Dec()
	l.m.connections.WithLabelValues(l.name, upstream, result).Inc()
}

// Copied adds bytes copied client to target (in) and target to client
// (out). It is called as bytes flow, so long connections show up before
// they close.
func (l *L4Listener) Copied(in, out int64) {
	if in > 0 {
		l.bytesIn.Add(float64(in))
	}
	if out > 0 {
		l.bytesOut.Add(float64(out))
	}
}

// Conn is what the access log says about one connection of a tcp
// listener.
type Conn struct {
	Listener string
	// Client is the client's address, ip:port.
	Client string
	// SNI is the server name the client asked for; "" when it sent none.
	SNI      string
	Upstream string
	Target   string
	// BytesIn went from client to target, BytesOut back.
	BytesIn, BytesOut int64
	Duration          time.Duration
	// Result is the connection's result as in drawbridge_l4_connections_total.
	Result string
	// Error says why a connection failed; never a secret.
	Error string
}

// LogConn writes c as one access-log line, "connection", with the same
// field names as the "request" lines of http listeners where they mean the
// same. A nil logger (access log off) logs nothing.
func LogConn(logger *slog.Logger, c *Conn) {
	if logger == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("listener", c.Listener),
		slog.String("client", c.Client),
		slog.String("sni", c.SNI),
		slog.String("upstream", c.Upstream),
		slog.String("target", c.Target),
		slog.Int64("bytes_in", c.BytesIn),
		slog.Int64("bytes_out", c.BytesOut),
		slog.Float64("duration_ms", ms(c.Duration)),
		slog.String("result", c.Result),
	}
	if c.Error != "" {
		attrs = append(attrs, slog.String("error", c.Error))
	}
	logger.LogAttrs(context.Background(), slog.LevelInfo, "connection", attrs...)
}
