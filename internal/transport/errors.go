package transport

import (
	"errors"
	"fmt"
)

// Reason is why a backend certificate was refused, in words fit for logs and
// metric labels.
type Reason string

// Reasons a backend certificate is refused.
const (
	ReasonUnknownAuthority Reason = "unknown authority"
	ReasonNameMismatch     Reason = "name mismatch"
	ReasonPinMismatch      Reason = "pin mismatch"
	ReasonExpired          Reason = "certificate expired"
	ReasonNotYetValid      Reason = "certificate not yet valid"
	ReasonOther            Reason = "verification failed"
)

// VerifyError is why a backend certificate was refused.
type VerifyError struct {
	Upstream   string
	ServerName string // the name verified against; may be empty for pin-only trust
	Reason     Reason
	Detail     string // human-readable specifics, such as the leaf's pin
	Err        error  // the underlying x509 error, if any
}

func (e *VerifyError) Error() string {
	msg := fmt.Sprintf("upstream %q: backend certificate refused: %s", e.Upstream, e.Reason)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

func (e *VerifyError) Unwrap() error { return e.Err }

// AsVerifyError finds a *VerifyError in err's chain, such as the error
// http.Client.Do returns: a *url.Error wrapping the handshake error.
func AsVerifyError(err error) (*VerifyError, bool) {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve, true
	}
	return nil, false
}

// Stages of making a connection, as [DialError.Op].
const (
	OpDial      = "dial"          // name resolution and TCP connect
	OpHandshake = "tls handshake" // the TLS handshake, including verification
)

// DialError is a failure to make a connection to a backend: resolving or
// dialing it, the TLS handshake (a timeout included) or the verification
// of its certificate. Every such failure happens before any byte of a
// request is written, so the request may safely go to another target.
// A refused certificate is a DialError wrapping a [*VerifyError].
type DialError struct {
	Upstream string
	Addr     string // host:port from the request URL, not the IP dialed
	Op       string // OpDial or OpHandshake
	Err      error
}

func (e *DialError) Error() string {
	what := "connecting to"
	if e.Op == OpHandshake {
		what = "tls handshake with"
	}
	// A VerifyError already names the upstream.
	if ve, ok := AsVerifyError(e.Err); ok && ve.Upstream == e.Upstream {
		return fmt.Sprintf("%s %s: %v", what, e.Addr, e.Err)
	}
	return fmt.Sprintf("upstream %q: %s %s: %v", e.Upstream, what, e.Addr, e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }
