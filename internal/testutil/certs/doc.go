// Package certs generates throwaway X.509 certificates and keys for tests.
//
// Everything is made at run time with crypto/x509, so no private key is ever
// checked in. A typical backend test:
//
//	ca := certs.SelfSigned(t, certs.Options{IsCA: true})
//	leaf := certs.SelfSigned(t, certs.Options{DNSNames: []string{"backend.internal"}, Parent: ca})
//	srv := httptest.NewUnstartedServer(h)
//	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
//	srv.StartTLS()
//	caPath, _ := ca.WriteFiles(t, t.TempDir())
package certs
