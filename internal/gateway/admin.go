package gateway

import (
	"net/http"

	"github.com/drawbridge-gw/drawbridge/internal/admin"
)

// adminHandler is the admin API (package admin) over this gateway's
// store, metrics, readiness and upstreams.
func (g *Gateway) adminHandler(token string) http.Handler {
	o := admin.Options{
		Store:     g.store,
		Token:     token,
		Version:   g.opts.Version,
		Metrics:   g.metrics.Handler(),
		Ready:     g.ready.Load,
		Upstreams: func() any { return g.upstreamStatus() },
		Logger:    g.logger,
	}
	o.Certificates = func() any { return g.certificates() }
	return admin.New(o)
}

// upstreamStatus is what GET /v1/upstreams returns.
type upstreamStatus struct {
	Name    string         `json:"name"`
	Targets []targetStatus `json:"targets"`
}

type targetStatus struct {
	Target   string   `json:"target"`
	Addrs    []string `json:"addrs"`
	Healthy  bool     `json:"healthy"`
	Ejected  bool     `json:"ejected"`
	InFlight int64    `json:"in_flight"`
}

func (g *Gateway) upstreamStatus() []upstreamStatus {
	c := g.current.Load()
	out := make([]upstreamStatus, 0, len(c.upstreams))
	for _, u := range c.upstreams {
		us := upstreamStatus{Name: u.pool.Name()}
		for _, t := range u.pool.Targets() {
			us.Targets = append(us.Targets, targetStatus{
				Target: t.String(), Addrs: t.Addrs(), Healthy: t.Healthy(), Ejected: t.Ejected(), InFlight: t.InFlight(),
			})
		}
		out = append(out, us)
	}
	return out
}
