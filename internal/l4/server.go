package l4

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/drawbridge-gw/drawbridge/internal/listener"
	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

// Results of a connection, as logged and as the result label of
// drawbridge_l4_connections_total.
const (
	ResultOK          = "ok"              // both directions closed cleanly
	ResultNoRoute     = "no_route"        // no SNI route takes the server name
	ResultBadHello    = "bad_hello"       // no TLS ClientHello in time (passthrough)
	ResultClientTLS   = "client_tls"      // the client's handshake failed (terminate)
	ResultNoTarget    = "no_target"       // every target is down or ejected
	ResultConnect     = "connect"         // no target accepted the connection
	ResultUpstreamTLS = "upstream_tls"    // the target's TLS failed or was not verified
	ResultIdle        = "idle_timeout"    // no bytes either way for the idle timeout
	ResultReset       = "reset"           // a peer reset the connection (often at close: data crossed a close)
	ResultShutdown    = "shutdown"        // closed at the end of the shutdown grace
	ResultFull        = "max_connections" // closed at accept: the listener was at max_connections
	ResultError       = "error"           // a read or write failed mid-connection
)

// Options configures a [Server]. Zero fields take the documented defaults.
type Options struct {
	// Name identifies the listener in logs, metrics and errors.
	Name string
	// Addr is host:port to listen on; port 0 picks a free port.
	Addr string
	// Certs, if set, selects terminate mode: the listener serves this
	// certificate (reloaded as [listener.Certs] is) and each route must
	// have TLS. Nil is passthrough.
	Certs *listener.Certs
	// MinVersion is the lowest TLS version accepted from clients in
	// terminate mode. It defaults to TLS 1.2.
	MinVersion uint16
	// HelloTimeout bounds reading the ClientHello (passthrough) or the
	// whole handshake (terminate). It defaults to DefaultHelloTimeout.
	HelloTimeout time.Duration
	// IdleTimeout closes a connection with no bytes either way for this
	// long. It defaults to DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxConnections caps the open connections: one more is closed at
	// accept, with nothing read or sent. 0 means no cap.
	MaxConnections int
	// Logger receives operational logs (accept errors, panics). Nil means
	// slog.Default().
	Logger *slog.Logger
	// Metrics counts connections and bytes. Required.
	Metrics *observe.L4Listener
}

// Server is one tcp listener. Create it with [New], bind with
// [Server.Listen], give it routes with [Server.SetRoutes], run
// [Server.Serve] and stop with [Server.Shutdown].
type Server struct {
	o      Options
	logger *slog.Logger

	live atomic.Pointer[liveConfig]

	// ctx is cancelled when a shutdown runs out of grace, so that dials
	// and handshakes still in progress stop at once.
	ctx    context.Context
	cancel context.CancelFunc

	// tlsConfig serves clients in terminate mode. It is built once so
	// that its session ticket keys last and clients can resume.
	tlsConfig *tls.Config

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	closing  bool
	drained  chan struct{} // closed when closing and conns is empty
	handlers sync.WaitGroup
}

// liveConfig is what a config reload swaps: routes and the access log.
type liveConfig struct {
	routes    *Table
	accessLog *slog.Logger
}

// conn is one client connection and, once dialed, its target connection,
// so that shutdown can close both.
type conn struct {
	mu     sync.Mutex
	client net.Conn
	target net.Conn
	forced atomic.Bool
}

func (c *conn) setTarget(t net.Conn) {
	c.mu.Lock()
	c.target = t
	c.mu.Unlock()
}

// close closes c's sockets, with a TLS close_notify where it speaks TLS.
// It does not hold c.mu while closing: sending close_notify can wait on a
// peer for its write deadline, and abort must not wait behind it.
func (c *conn) close() {
	c.mu.Lock()
	client, target := c.client, c.target
	c.mu.Unlock()
	client.Close()
	if target != nil {
		target.Close()
	}
}

// abort closes c's sockets without the TLS close_notify a Close would
// try to write, which could wait on a peer that does not read.
func (c *conn) abort() {
	c.forced.Store(true)
	c.mu.Lock()
	defer c.mu.Unlock()
	rawConn(c.client).Close()
	if c.target != nil {
		rawConn(c.target).Close()
	}
}

func rawConn(c net.Conn) net.Conn {
	if tc, ok := c.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return c
}

// New checks o and builds the server. It does not bind the address.
func New(o Options) (*Server, error) {
	if o.Addr == "" {
		return nil, fmt.Errorf("listener %q: address is required", o.Name)
	}
	if o.Metrics == nil {
		return nil, fmt.Errorf("listener %q: metrics are required", o.Name)
	}
	switch o.MinVersion {
	case 0:
		o.MinVersion = tls.VersionTLS12
	case tls.VersionTLS12, tls.VersionTLS13:
	default:
		return nil, fmt.Errorf("listener %q: minimum TLS version %s is not allowed; use TLS 1.2 or 1.3", o.Name, tls.VersionName(o.MinVersion))
	}
	if o.HelloTimeout < 0 || o.IdleTimeout < 0 {
		return nil, fmt.Errorf("listener %q: timeouts must not be negative", o.Name)
	}
	if o.MaxConnections < 0 {
		return nil, fmt.Errorf("listener %q: max connections must not be negative", o.Name)
	}
	if o.HelloTimeout == 0 {
		o.HelloTimeout = DefaultHelloTimeout
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{o: o, logger: logger.With("listener", o.Name), conns: map[*conn]struct{}{}, drained: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if o.Certs != nil {
		s.tlsConfig = &tls.Config{
			GetCertificate:     o.Certs.GetCertificate,
			GetConfigForClient: s.refuseUnrouted,
			MinVersion:         o.MinVersion,
		}
	}
	s.live.Store(&liveConfig{routes: &Table{}})
	return s, nil
}

// Name returns the listener's name.
func (s *Server) Name() string { return s.o.Name }

// Terminates reports whether the server is in terminate mode.
func (s *Server) Terminates() bool { return s.o.Certs != nil }

// Certs returns the certificate of a terminate-mode server, or nil.
func (s *Server) Certs() *listener.Certs { return s.o.Certs }

// SetRoutes makes routes current for connections whose server name is
// read after it returns (open connections keep their target), and
// accessLog (nil: no access log) current for every connection that ends
// after it returns. In terminate mode every route must have
// TLS, and in passthrough none may.
func (s *Server) SetRoutes(routes *Table, accessLog *slog.Logger) error {
	for _, r := range routes.all() {
		if (r.TLS != nil) != s.Terminates() {
			return fmt.Errorf("listener %q: upstream %q: a terminate listener needs TLS to every target, a passthrough one none", s.o.Name, r.Upstream)
		}
	}
	s.live.Store(&liveConfig{routes: routes, accessLog: accessLog})
	return nil
}

// all lists t's routes, each once per pattern.
func (t *Table) all() []*Route {
	var out []*Route
	for _, r := range t.exact {
		out = append(out, r)
	}
	for _, r := range t.wildcard {
		out = append(out, r)
	}
	if t.fallback != nil {
		out = append(out, t.fallback)
	}
	return out
}

// Listen binds the address, so that bind errors surface before serving.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return fmt.Errorf("listener %q: already listening on %s", s.o.Name, s.ln.Addr())
	}
	ln, err := net.Listen("tcp", s.o.Addr)
	if err != nil {
		return fmt.Errorf("listener %q: %w", s.o.Name, err)
	}
	s.ln = ln
	return nil
}

// Addr returns the bound address, or nil before [Server.Listen].
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve accepts connections until [Server.Shutdown], calling
// [Server.Listen] first if needed. It returns nil once Shutdown has
// started; wait for Shutdown to know the connections are done.
func (s *Server) Serve() error {
	s.mu.Lock()
	if s.ln == nil && !s.closing {
		s.mu.Unlock()
		if err := s.Listen(); err != nil {
			return err
		}
		s.mu.Lock()
	}
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return nil
	}
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				// As net/http does: out of file descriptors is passing.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger.Warn("accept failed; retrying", "error", err.Error(), "retry_in", backoff.String())
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("listener %q: %w", s.o.Name, err)
		}
		backoff = 0
		cc := &conn{client: c}
		switch s.admit(cc) {
		case admitClosing:
			c.Close()
			continue
		case admitFull:
			s.refuseFull(c)
			continue
		}
		go func() {
			defer s.handlers.Done() // added by admit
			defer s.untrack(cc)
			s.handle(cc)
		}()
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// What admit did with a connection.
const (
	admitted = iota
	admitClosing
	admitFull
)

// admit adds c, unless shutdown has started or the listener is at
// MaxConnections. An added connection counts in s.handlers, under s.mu,
// so that a Shutdown that sees it waits for its handler.
func (s *Server) admit(c *conn) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return admitClosing
	case s.o.MaxConnections > 0 && len(s.conns) >= s.o.MaxConnections:
		return admitFull
	}
	s.conns[c] = struct{}{}
	s.handlers.Add(1)
	return admitted
}

// refuseFull closes c, accepted over MaxConnections, and logs and counts
// it. It runs in the accept loop: closing is cheap, and a flood is then
// paced by it rather than by new goroutines.
func (s *Server) refuseFull(c net.Conn) {
	rec := &observe.Conn{Listener: s.o.Name, Client: c.RemoteAddr().String(), Result: ResultFull,
		Error: fmt.Sprintf("the listener has max_connections (%d) open", s.o.MaxConnections)}
	c.Close()
	s.o.Metrics.Opened()
	s.o.Metrics.Closed("", ResultFull)
	observe.LogConn(s.live.Load().accessLog, rec)
}

// untrack removes c once its handler is done.
func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.closing && len(s.conns) == 0 {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
}

// Shutdown stops accepting and waits for open connections to end. If ctx
// is done first, it closes them, waits for their handlers to log them,
// and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	if s.ln != nil {
		s.ln.Close()
	}
	if len(s.conns) == 0 {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
	s.mu.Unlock()
	select {
	case <-s.drained:
		s.handlers.Wait()
		return nil
	case <-ctx.Done():
	}
	s.cancel() // dials and handshakes in progress stop too
	s.mu.Lock()
	for c := range s.conns {
		c.abort()
	}
	s.mu.Unlock()
	s.handlers.Wait()
	return fmt.Errorf("listener %q: shutting down: %w", s.o.Name, ctx.Err())
}

// handle serves one connection from accept to close, and logs it.
func (s *Server) handle(c *conn) {
	start := time.Now()
	rec := &observe.Conn{Listener: s.o.Name, Client: c.client.RemoteAddr().String()}
	s.o.Metrics.Opened()
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("panic serving a connection", "panic", r, "stack", string(debug.Stack()))
			rec.Result, rec.Error = ResultError, fmt.Sprint("panic: ", r)
		}
		c.close()
		if c.forced.Load() {
			rec.Result = ResultShutdown
		}
		rec.Duration = time.Since(start)
		s.o.Metrics.Closed(rec.Upstream, rec.Result)
		// The access log current at close, not at routing: a connection
		// can outlive many reloads, and a reload closes the old log's
		// file once HTTP requests on it are done.
		observe.LogConn(s.live.Load().accessLog, rec)
	}()

	client, sni, hello, err := s.open(c.client)
	// The routes current when the server name is known decide; a reload
	// after that does not move the connection.
	live := s.live.Load()
	rec.SNI = sni
	var unrouted *noRouteError
	switch {
	case errors.As(err, &unrouted):
		rec.SNI, rec.Result, rec.Error = unrouted.name, ResultNoRoute, unrouted.Error()
		return
	case err != nil:
		rec.Result, rec.Error = ResultBadHello, err.Error()
		if s.Terminates() {
			rec.Result = ResultClientTLS
		}
		return
	}
	c.mu.Lock()
	c.client = client
	c.mu.Unlock()

	route := live.routes.Match(sni)
	if route == nil {
		rec.Result, rec.Error = ResultNoRoute, fmt.Sprintf("no sni route for %q", sni)
		return
	}
	rec.Upstream = route.Upstream
	target, tc, result, err := s.connect(route, client)
	if target != nil {
		rec.Target = target.String()
	}
	if err != nil {
		rec.Result, rec.Error = result, err.Error()
		return
	}
	c.setTarget(tc)
	defer target.Release() // acquired by connect
	if c.forced.Load() {
		return // shutdown closed the client while we dialed
	}

	sp := &splicer{client: client, target: tc, idle: s.o.IdleTimeout, onCopy: s.o.Metrics.Copied}
	if len(hello) > 0 {
		// The ClientHello peeked in passthrough goes first, byte for byte.
		tc.SetWriteDeadline(time.Now().Add(s.o.IdleTimeout))
		n, err := tc.Write(hello)
		sp.count(int64(n), true)
		if err != nil {
			rec.Result, rec.Error = ResultError, fmt.Sprintf("sending the ClientHello to %s: %v", target, err)
			rec.BytesIn = sp.in.Load()
			return
		}
	}
	err = sp.run()
	rec.BytesIn, rec.BytesOut = sp.in.Load(), sp.out.Load()
	switch {
	case err == nil:
		rec.Result = ResultOK
	case errors.Is(err, errIdle):
		rec.Result, rec.Error = ResultIdle, fmt.Sprintf("no bytes either way for %s", s.o.IdleTimeout)
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		// Common and harmless at close: one side's last bytes (a TLS
		// close_notify) reach a peer that has closed already.
		rec.Result, rec.Error = ResultReset, err.Error()
	default:
		rec.Result, rec.Error = ResultError, err.Error()
	}
}

// noRouteError is a server name no SNI route takes, refused during the
// terminate handshake.
type noRouteError struct{ name string }

func (e *noRouteError) Error() string { return fmt.Sprintf("no sni route for %q", e.name) }

// refuseUnrouted ends a terminate handshake whose server name no route
// takes, right after the ClientHello: the client gets an alert, and no
// certificate or key exchange is spent on it.
func (s *Server) refuseUnrouted(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if s.live.Load().routes.Match(hello.ServerName) == nil {
		return nil, &noRouteError{name: hello.ServerName}
	}
	return nil, nil // the server's own config
}

// open reads the server name the client asks for. In passthrough it peeks
// the ClientHello and returns it to be replayed; in terminate it completes
// the handshake and returns the TLS connection. Either is bounded by the
// hello timeout.
func (s *Server) open(c net.Conn) (client net.Conn, sni string, hello []byte, err error) {
	deadline := time.Now().Add(s.o.HelloTimeout)
	if !s.Terminates() {
		c.SetReadDeadline(deadline)
		sni, hello, err = peekHello(c)
		c.SetReadDeadline(time.Time{})
		return c, sni, hello, err
	}
	tc := tls.Server(c, s.tlsConfig)
	ctx, cancel := context.WithDeadline(s.ctx, deadline)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return c, tc.ConnectionState().ServerName, nil, fmt.Errorf("client tls handshake: %w", err)
	}
	return tc, tc.ConnectionState().ServerName, nil, nil
}

// errNoTarget is an upstream with every target down or ejected.
var errNoTarget = errors.New("no target available: all are unhealthy or ejected")

// errAllFull is an upstream whose available targets are all at max_conns.
var errAllFull = errors.New("no target available: every available one is at max_conns")

// connect opens the connection to a target of route for client: TCP, the
// PROXY header, then TLS in terminate mode. A target that fails is
// reported to passive ejection and the next one is tried, as the HTTP
// proxy does: nothing of the client's has been sent yet. A target at the
// route's max_conns is skipped. The target returned is counted in flight
// (Acquire); the caller releases it.
func (s *Server) connect(route *Route, client net.Conn) (*upstream.Target, net.Conn, string, error) {
	var tried []*upstream.Target
	var last *upstream.Target
	var lastErr error
	full := false
	result := ResultNoTarget
	for range len(route.Pool.Targets()) {
		if s.ctx.Err() != nil {
			break // a forced shutdown: no more targets
		}
		t := route.Pool.Select(tried)
		if t == nil {
			break
		}
		tried = append(tried, t)
		if !t.TryAcquire(int64(route.MaxConns)) {
			full = true
			continue
		}
		last = t
		conn, res, err := s.connectTarget(route, t, client)
		if err == nil {
			t.ReportSuccess()
			return t, conn, "", nil
		}
		t.Release()
		result, lastErr = res, err
		if s.ctx.Err() != nil {
			// Cut off by shutdown, not the target's fault.
			result = ResultShutdown
			break
		}
		t.ReportFailure()
	}
	if lastErr == nil && s.ctx.Err() != nil {
		return nil, nil, ResultShutdown, fmt.Errorf("upstream %q: not connected: the listener is shutting down", route.Upstream)
	}
	if lastErr == nil {
		if full {
			return nil, nil, ResultNoTarget, fmt.Errorf("upstream %q: %w (%d)", route.Upstream, errAllFull, route.MaxConns)
		}
		return nil, nil, ResultNoTarget, fmt.Errorf("upstream %q: %w", route.Upstream, errNoTarget)
	}
	return last, nil, result, lastErr
}

// connectTarget is one attempt at target t: the dial, the PROXY header
// and the TLS handshake share one dial timeout, and all stop at a forced
// shutdown.
func (s *Server) connectTarget(route *Route, t *upstream.Target, client net.Conn) (net.Conn, string, error) {
	ctx, cancel := context.WithTimeout(s.ctx, route.dialTimeout())
	defer cancel()
	deadline, _ := ctx.Deadline()
	raw, err := route.Pool.DialContext(ctx, "tcp", t.String())
	if err != nil {
		return nil, ResultConnect, fmt.Errorf("upstream %q: connecting to %s: %w", route.Upstream, t, err)
	}
	if route.ProxyProtocol > 0 {
		h := proxyproto.HeaderProxyFromAddrs(byte(route.ProxyProtocol), client.RemoteAddr(), client.LocalAddr())
		raw.SetWriteDeadline(deadline)
		if _, err := h.WriteTo(raw); err != nil {
			raw.Close()
			return nil, ResultConnect, fmt.Errorf("upstream %q: sending the PROXY header to %s: %w", route.Upstream, t, err)
		}
		raw.SetWriteDeadline(time.Time{})
	}
	if route.TLS == nil {
		return raw, "", nil
	}
	tc, err := route.TLS.Handshake(ctx, raw, t.String())
	if err != nil {
		raw.Close()
		return nil, ResultUpstreamTLS, err // a *transport.DialError naming the upstream
	}
	return tc, "", nil
}
