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
