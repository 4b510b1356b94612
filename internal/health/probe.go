package health

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
)

// DialFunc opens a TCP connection to addr, a target's host:port as
// configured. (*upstream.Pool).DialContext is one: it dials the target's
// currently resolved addresses.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Handshaker runs a verified TLS client handshake over a dialed
// connection; *transport.Handshaker is one.
type Handshaker interface {
	Handshake(ctx context.Context, raw net.Conn, addr string) (*tls.Conn, error)
}

// TCPProbe is an [Options.Probe] that finds a target healthy when a TCP
// connection to it opens. It proves something listens, not that it
// serves: a cheap check for raw TCP targets, whose protocol drawbridge
// does not speak.
func TCPProbe(dial DialFunc) func(ctx context.Context, u *url.URL) error {
	return func(ctx context.Context, u *url.URL) error {
		c, err := dial(ctx, "tcp", u.Host)
		if err != nil {
			return fmt.Errorf("tcp check of %s: %w", u.Host, err)
		}
		return c.Close()
	}
}

// TLSProbe is an [Options.Probe] that finds a target healthy when a TCP
// connection to it opens and a TLS handshake over it completes with the
// target's certificate verified by h: a target serving the wrong
// certificate is as down as one that does not answer.
func TLSProbe(dial DialFunc, h Handshaker) func(ctx context.Context, u *url.URL) error {
	return func(ctx context.Context, u *url.URL) error {
		raw, err := dial(ctx, "tcp", u.Host)
		if err != nil {
			return fmt.Errorf("tls check of %s: %w", u.Host, err)
		}
		defer raw.Close()
		conn, err := h.Handshake(ctx, raw, u.Host)
		if err != nil {
			return fmt.Errorf("tls check of %s: %w", u.Host, err)
		}
		// close_notify, so the target logs a clean close rather than a reset.
		return conn.Close()
	}
}
