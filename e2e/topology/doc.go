// Package topology proves drawbridge's claim end to end on a real network
// built on one Linux machine: "TLS on every hop, every hop verified,
// partners unchanged".
//
// Its test builds network namespaces joined by veth pairs (addresses from
// 10.201.0.0/16 only, and only inside the namespaces):
//
//	partner ── edge (drawbridge) ── onprem-lb (nginx, self-signed) ─┬─ app1
//	                                                                 └─ app2
//
// and shows, with real processes, that a partner request with an API key
// reaches an app and comes back; that a request without one gets API
// Gateway's 403; that the partner cannot reach the on-prem LB except
// through drawbridge; that a rogue LB certificate is refused (502, "pin
// mismatch" in the log) and a two-pin rotation works without a restart;
// that traffic follows the LB to a new address; and that killing an app
// loses no partner request beyond those in flight. tcpdump runs on every
// link for the whole run, and every partner request carries a marker:
// nothing crosses any link in cleartext (the marker is in no packet, and
// every captured TCP stream is TLS records from its first byte).
//
// It also proves the L4 tier (tcp listeners): passed through by SNI, the
// partner sees the LB's own certificate and reaches an app, while an
// unrouted name is closed and logged; terminated and re-encrypted with a
// PROXY v2 header, the LB learns the partner's address; the L4 metrics
// count those connections; and the captures cover both listeners.
//
// It needs root, ip (iproute2), nginx and tcpdump. Without them it skips,
// except under CI=true, where it fails. Run it with
//
//	sudo go test ./e2e/topology -v
package topology
