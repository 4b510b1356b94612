// Package pin implements "drawbridge pin": it fetches a backend's certificate
// chain, describes it, and prints the SPKI pin and the config block that
// trust the backend's key.
//
// This is the one place in drawbridge that reads a certificate without
// verifying it. That is the point: the operator is shown what the backend
// presents, compares it with what they expect (ideally out of band), and
// decides whether to trust it. Nothing read here is trusted by drawbridge
// until the operator puts the pin in the config.
package pin
