package proxy

import (
	"context"
	"errors"
	"net/http"

	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// failure is how one upstream error is answered, logged and counted. All
// the mapping from errors to statuses lives in classify.
type failure struct {
	typ    gwresponse.Type // "" = the partner is gone, answer nothing
	reason string          // short, for the access log
	metric string          // drawbridge_upstream_errors_total reason; "" = not an upstream error
	log    bool            // worth a warning line of its own
}

func classify(ctx context.Context, err error) failure {
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &maxBytes):
		return failure{typ: gwresponse.RequestTooLarge, reason: "request body too large"}
	case errors.Is(err, errNoIntegrationResponse):
		return failure{typ: gwresponse.APIConfigurationError, reason: "no integration response matches the backend's status", log: true}
	case errors.Is(err, errNoTarget):
		return failure{typ: gwresponse.ServiceUnavailable, reason: "no available target", metric: "no_target", log: true}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return failure{typ: gwresponse.IntegrationTimeout, reason: "route timeout", metric: "timeout", log: true}
	case errors.Is(ctx.Err(), context.Canceled):
		return failure{reason: "client closed request", metric: ""}
	}
	if ve, ok := transport.AsVerifyError(err); ok {
		// The balancer already counted the failed attempt.
		return failure{typ: gwresponse.BadGateway, reason: "upstream tls: " + string(ve.Reason), log: true}
	}
	if isConnectFailure(err) {
		return failure{typ: gwresponse.BadGateway, reason: "upstream " + connectReason(err), metric: "", log: true}
	}
	return failure{typ: gwresponse.BadGateway, reason: "upstream exchange failed", metric: "exchange", log: true}
}

// isConnectFailure reports whether err happened before any byte of the
// request was sent: name resolution, dialing, or the TLS handshake
// (including a refused certificate and a handshake that outlasted the dial
// timeout). Such a request can go to another target.
//
// The transport reports all of these, and nothing else, as a
// *transport.DialError. A route timeout while dialing is not one: net/http
// returns the request context's error, and classify answers it with 504.
func isConnectFailure(err error) bool {
	var de *transport.DialError
	return errors.As(err, &de)
}

// connectReason names a connect failure for metrics and logs.
func connectReason(err error) string {
	if _, ok := transport.AsVerifyError(err); ok {
		return "tls"
	}
	var de *transport.DialError
	if errors.As(err, &de) && de.Op == transport.OpHandshake {
		return "handshake"
	}
	return "connect"
}
