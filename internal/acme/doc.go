// Package acme gets and renews a listener's public certificates from an
// ACME CA (Let's Encrypt, or a private one such as step-ca or Pebble) with
// certmagic: HTTP-01 challenges through a handler the plain-HTTP listener
// mounts, TLS-ALPN-01 through the HTTPS listener's GetCertificate,
// certificates and account keys in a folder whose file locks keep two
// replicas sharing it from ordering the same certificate twice, renewal
// ahead of expiry with retries and backoff, and OCSP stapling.
//
// It knows nothing of listeners or config files: the gateway gives it
// domains, a CA and ports, and mounts what it returns.
package acme
