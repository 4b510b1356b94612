// Package doctor checks every hop a config describes, for real: each
// listener's certificate files, and each upstream target's DNS name, TCP
// reachability, TLS handshake and verification (made exactly as the
// gateway makes them) and health path. Each hop gets one status and, when
// something is wrong, the cause and the fix in one line each.
package doctor
