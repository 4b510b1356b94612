package observe

import "github.com/prometheus/client_golang/prometheus"

func newACMEOrders() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drawbridge_acme_renewals_total",
		Help: "ACME certificate orders by listener, kind (obtain: first certificate of a name, renew) and result (ok, error). Failed ones are retried with backoff; the current certificate keeps serving.",
	}, []string{"listener", "kind", "result"})
}

// ACMEOrder counts an attempt to obtain or renew an ACME certificate.
func (m *Metrics) ACMEOrder(listener string, renewal bool, err error) {
	kind := "obtain"
	if renewal {
		kind = "renew"
	}
	m.acmeOrders.WithLabelValues(listener, kind, result(err)).Inc()
}
