package transport

import (
	"context"
	"crypto/tls"
	"net"
)

// Handshaker makes verified TLS client connections over connections the
// caller dialed itself: the L4 tier writes a PROXY protocol header before
// the handshake, and TLS health checks handshake without HTTP. It
// verifies exactly as [New]'s transport does. It offers no ALPN protocol.
// A Handshaker is safe for concurrent use.
type Handshaker struct {
	o    Options
	base *tls.Config
	v    *verifier
}

// NewHandshaker loads o's files and pins, as [New] does. o.DialContext and
// the HTTP settings are not used.
func NewHandshaker(o Options) (*Handshaker, error) {
	base, v, err := newTLSConfig(o)
	if err != nil {
		return nil, err
	}
	return &Handshaker{o: o, base: base, v: v}, nil
}

// Handshake runs a TLS client handshake over raw, a connection to addr,
// the target's host:port as configured: its host is the name verified
// unless Options.ServerName is set, never the IP actually dialed. It is
// bounded by ctx and Options.DialTimeout. On failure it returns a
// [*DialError] (Op [OpHandshake]) and leaves raw for the caller to close.
func (h *Handshaker) Handshake(ctx context.Context, raw net.Conn, addr string) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, h.o.dialTimeout())
	defer cancel()
	return handshake(ctx, h.base, h.v, h.o.Upstream, h.o.ServerName, raw, addr)
}

// handshake is the client side of one verified TLS connection over raw to
// addr. The name verified is serverName, else addr's host: net/http only
// tells the TLS config which host it dials by setting ServerName on a
// per-connection clone, and crypto/tls hides that name from
// VerifyConnection for IP targets (no SNI is sent for IPs), so it is
// passed here explicitly.
func handshake(ctx context.Context, base *tls.Config, v *verifier, upstream, serverName string, raw net.Conn, addr string) (*tls.Conn, error) {
	name := serverName
	if name == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, &DialError{Upstream: upstream, Addr: addr, Op: OpDial, Err: err}
		}
		name = host
	}
	cfg := base.Clone()
	cfg.ServerName = name
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		return v.verify(cs, name)
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, &DialError{Upstream: upstream, Addr: addr, Op: OpHandshake, Err: err}
	}
	return conn, nil
}
