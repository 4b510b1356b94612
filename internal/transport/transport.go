package transport

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// New returns an HTTP transport for one upstream, with the settings of
// [http.DefaultTransport] except:
//   - every connection is TLS, verified as [NewTLSConfig] describes, against
//     o.ServerName or else the host of the URL being dialed;
//   - HTTP/2 is used when the backend selects it via ALPN, else HTTP/1.1;
//   - no proxy from the environment: backends are dialed directly;
//   - o.DialTimeout bounds TCP connect plus TLS handshake; there is no
//     response header timeout, as the proxy applies per-route timeouts
//     through the request context;
//   - plain http:// requests fail unless o.AllowPlaintext: no hop to a
//     backend is plaintext without the operator's opt-in;
//   - every failure before the request is written (dial, name resolution
//     in o.DialContext, TLS handshake, verification, plaintext refusal) is
//     returned as a [*DialError].
func New(o Options) (*http.Transport, error) {
	base, v, err := newTLSConfig(o)
	if err != nil {
		return nil, err
	}
	base.NextProtos = nextProtos
	if o.DisableHTTP2 {
		base.NextProtos = []string{"http/1.1"}
	}

	dial := o.DialContext
	if dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	timeout := o.dialTimeout()

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.ForceAttemptHTTP2 = !o.DisableHTTP2
	tr.IdleConnTimeout = DefaultIdleConnTimeout
	tr.TLSHandshakeTimeout = timeout
	tr.ResponseHeaderTimeout = 0
	tr.MaxIdleConnsPerHost = o.maxIdleConnsPerHost()
	if tr.MaxIdleConns < tr.MaxIdleConnsPerHost {
		tr.MaxIdleConns = tr.MaxIdleConnsPerHost
	}
	tr.MaxConnsPerHost = o.MaxConnsPerHost
	// TLSClientConfig is informational only (and lets net/http set up
	// HTTP/2): DialTLSContext below makes every https connection.
	tr.TLSClientConfig = base.Clone()
	// Every failure before the request is written is a *DialError, so the
	// proxy can tell it from a failed exchange and try another target.
	dialErr := func(addr, op string, err error) error {
		return &DialError{Upstream: o.Upstream, Addr: addr, Op: op, Err: err}
	}
	if o.AllowPlaintext {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, dialErr(addr, OpDial, err)
			}
			return conn, nil
		}
	} else {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nil, dialErr(addr, OpDial, errors.New("plaintext connection refused: use https"))
		}
	}
	// The TLS dial is done here, where the dialed host is known: see
	// handshake for why.
	tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		// net/http dials under a context without the request's deadline,
		// so a timeout here is always the dial timeout, never the route's.
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, dialErr(addr, OpDial, err)
		}
		conn, err := handshake(ctx, base, v, o.Upstream, o.ServerName, raw, addr)
		if err != nil {
			raw.Close()
			return nil, err
		}
		return conn, nil
	}
	return tr, nil
}
