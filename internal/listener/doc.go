// Package listener terminates partner-facing TLS: it serves HTTPS on one
// address with a certificate that can be reloaded from disk without dropping
// connections, negotiates HTTP/2 or HTTP/1.1 by ALPN, enforces header
// timeouts and size limits, and shuts down gracefully.
//
// A [Server] never reads certificate files itself; it asks its [Certs] for
// the current certificate on every handshake, so [Certs.Reload] and
// [Certs.Watch] take effect for new connections while existing ones keep
// the certificate they were established with.
package listener
