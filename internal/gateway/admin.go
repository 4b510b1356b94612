package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
)

// adminHandler serves the operators' endpoints: /metrics, /healthz,
// /readyz, GET /v1/upstreams and /debug/pprof/. It is read-only: nothing
// here changes what partners see, so it needs no authentication on its
// default loopback address.
func (g *Gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", g.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": g.opts.Version})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		// Not ready before the listeners serve and while draining, so a
		// load balancer in front stops sending before connections close.
		if !g.ready.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.HandleFunc("GET /v1/upstreams", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, g.upstreamStatus())
	})
	// Profiles are how a slow gateway is diagnosed in place; they expose
	// internals but no secrets, like the rest of this listener.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
