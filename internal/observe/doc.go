// Package observe records what happens to each partner request: one JSON
// access-log line, Prometheus metrics, and the request ID that ties the
// partner's answer to the log line.
//
// The outermost middleware (Middleware) creates a Record per request and
// hands it down through the context; the stages below fill in what only
// they know (the route, the upstream target and its latency) and the
// middleware writes the log line and metrics once the response is done.
package observe
