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
// For old backends the operator may opt in, per upstream, to a CN-only
// certificate verified by its chain ([Options.LegacyCommonName]), to a
// pinned certificate outside its validity period ([Options.AcceptExpired]),
// and to TLS 1.0/1.1 and legacy cipher suites ([Options.MinVersion],
// [Options.LegacyCiphers]).
//
// [New] returns an [*http.Transport] per upstream; [NewTLSConfig] returns the
// same verification as a [*tls.Config] for callers that dial TLS themselves.
// Refusals are reported as [*VerifyError], found with [AsVerifyError]. Every
// failure before a request is written, a refusal included, is a
// [*DialError]: the request never reached the backend.
package transport
