// Package gateway assembles a running drawbridge from a validated config:
// the partner listeners, the admin listener, and one handler chain per
// config, built once and swapped atomically on reload.
//
// The request path, outermost first, is written out in build.go:
//
//	listener (TLS) → observe (request ID, metrics, access log) → router
//	→ route stamp → proxy (body limit, timeout) → balancer (target,
//	retries, passive health) → transport (verified TLS) → backend
package gateway
