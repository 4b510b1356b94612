// Package pebbletest runs Let's Encrypt's test ACME server, pebble, with
// pebble-challtestsrv as its DNS server, on loopback ports for tests of
// ACME certificates. Every name resolves to 127.0.0.1, so pebble validates
// HTTP-01 and TLS-ALPN-01 challenges against the gateway under test on the
// ports the test gives it.
package pebbletest
