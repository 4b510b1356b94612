// Package l4 is drawbridge's L4 tier, what a network load balancer does
// for TLS: it accepts TCP connections, picks an upstream by the server
// name (SNI) of the client's TLS ClientHello, and copies bytes both ways
// between the client and a target of that upstream.
//
// In passthrough mode the ClientHello is only read, never answered: the
// client's TLS session goes to the target untouched, and the client sees
// the target's own certificate. In terminate mode the listener serves its
// own certificate (reloadable, see [listener.Certs]) and reaches the
// target over a new TLS connection verified as every upstream hop is
// ([transport.Handshaker]).
//
// Targets come from the upstream's [upstream.Pool]: its balancing, passive
// ejection, active health verdicts and DNS refresh apply as they do to
// HTTP traffic. A PROXY protocol header (v1 or v2) may carry the client's
// address to the target. Each connection is one access-log line and is
// counted in the drawbridge_l4_* metrics ([observe.L4Metrics]).
package l4
