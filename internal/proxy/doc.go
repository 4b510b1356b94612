// Package proxy forwards a matched partner request to one target of its
// upstream and turns every way that can fail into API Gateway's error
// answers: no available target → 503, connect or TLS verification failure
// → 502, route timeout → 504, body over the limit → 413.
//
// It is built on httputil.ReverseProxy with Rewrite (never Director), so
// hop-by-hop headers are stripped and X-Forwarded-* are set from the
// inbound request; the partner's X-Forwarded-For chain is kept with the
// client address appended, and Forwarded and X-Real-Ip are dropped. Target
// selection, retries on connect failures and passive health reporting
// happen in a RoundTripper below it.
package proxy
