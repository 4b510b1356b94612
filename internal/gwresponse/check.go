package gwresponse

import (
	"fmt"
	"net/textproto"
	"slices"

	"golang.org/x/net/http/httpguts"
)

// framingHeaders say how a response is delimited on the connection, which
// only the server may decide: a configured Content-Length: 2 would cut
// every body to two bytes, a Transfer-Encoding or Connection would make
// the partner misread the stream.
var framingHeaders = []string{"Content-Length", "Transfer-Encoding", "Connection", "Trailer", "Upgrade", "Keep-Alive", "Te"}

func framingHeader(name string) bool {
	return slices.Contains(framingHeaders, textproto.CanonicalMIMEHeaderKey(name))
}

// CheckHeader reports what is wrong with a static response header that a
// gateway response or a mock sets, if anything.
func CheckHeader(name, value string) error {
	switch {
	case !httpguts.ValidHeaderFieldName(name):
		return fmt.Errorf("%q is not a valid header name", name)
	case framingHeader(name):
		return fmt.Errorf("%s cannot be set: it frames the response on the connection, which the server does", name)
	case !httpguts.ValidHeaderFieldValue(value):
		return fmt.Errorf("%s: value %q has control characters", name, value)
	}
	return nil
}

// CheckStatus reports what is wrong with a status a gateway response, a
// mock or a status mapping answers with, if anything: 1xx are not final
// answers.
func CheckStatus(status int) error {
	if status < 200 || status > 599 {
		return fmt.Errorf("%d is not a final HTTP status; want 200 to 599", status)
	}
	return nil
}

// Bodiless reports a status whose response has no body (RFC 9110, 6.4.1
// and 15.4.5): a body written with it would break the framing.
func Bodiless(status int) bool {
	return status == 204 || status == 304
}
