// Package upstream holds the backend target pools: which target a request
// goes to (the balancing policies), whether each target is usable (active
// health state and passive ejection), and which addresses a host-name target
// currently resolves to (periodic DNS refresh feeding the pool's dialer).
//
// The pool decides; it never sends requests. The proxy calls [Pool.Select]
// on every request and reports the outcome with [Target.ReportFailure] or
// [Target.ReportSuccess]; the transport dials through [Pool.DialContext];
// the health checker updates [Target.SetHealthy].
package upstream
