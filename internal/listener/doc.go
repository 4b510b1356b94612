// Package listener terminates partner-facing TLS: it serves HTTPS on one
// address with a certificate that can be reloaded from disk without dropping
// connections, negotiates HTTP/2 or HTTP/1.1 by ALPN, enforces header
// timeouts and size limits, and shuts down gracefully.
//
// A [Server] never reads certificate files itself; it asks its [Certs] for
// the current certificate on every handshake, so [Certs.Reload] and
// [Certs.Watch] take effect for new connections while existing ones keep
// the certificate they were established with.
//
// A listener can also ask partners for client certificates (mutual TLS):
// [Options.ClientCAFile] names the CAs that issue them and
// [Options.RevokedFile] the certificates refused despite a valid chain.
// Both are reloaded with the certificate, and like it they apply to new
// handshakes; verified chains reach handlers in [http.Request.TLS], and
// [Fingerprint] names a certificate the way the revoked file does.
package listener
