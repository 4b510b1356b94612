// Package transport makes the verified HTTPS connections drawbridge uses to
// reach upstreams.
//
// Upstreams are typically on-premises load balancers with self-signed or
// private-CA certificates. A backend is trusted when its leaf key matches an
// SPKI pin, or its chain verifies against the configured roots (a CA file,
// the self-signed certificate itself, or the system pool) for the configured
// server name. Nothing else is accepted, unless the operator explicitly turned
// verification off for that upstream.
//
// [New] returns an [*http.Transport] per upstream; [NewTLSConfig] returns the
// same verification as a [*tls.Config] for callers that dial TLS themselves.
// Refusals are reported as [*VerifyError], found with [AsVerifyError]. Every
// failure before a request is written, a refusal included, is a
// [*DialError]: the request never reached the backend.
package transport
