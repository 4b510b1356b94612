package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"
	"github.com/drawbridge-gw/drawbridge/internal/observe"
	"github.com/drawbridge-gw/drawbridge/internal/router"
	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

// Options configures one route's proxy stage.
type Options struct {
	// Route names the route in logs.
	Route string
	// Pool is where requests go. Required.
	Pool *upstream.Pool
	// Transport makes the verified connections to Pool's targets. Required.
	Transport http.RoundTripper
	// Metrics records upstream latency and errors. If nil, none are kept.
	Metrics *observe.UpstreamMetrics
	// HostHeader is the Host sent to the backend. If empty, the target's
	// host:port is sent. Set it to the upstream's server_name so an IP
	// target still gets the virtual host the on-prem load balancer expects.
	HostHeader string
	// UpstreamPath rewrites the path from the route's parameters. If nil,
	// the partner's path is sent unchanged. The query string always is.
	UpstreamPath *router.Template
	// Timeout bounds the whole backend exchange, headers and body. It
	// defaults to 29 s, API Gateway's integration timeout.
	Timeout time.Duration
	// MaxBodyBytes caps the request body; more gets 413. It defaults to
	// 10 MiB, API Gateway's payload limit.
	MaxBodyBytes int64
	// Logger receives upstream failures with their reason. If nil,
	// slog.Default() is used.
	Logger *slog.Logger
	// StatusMap maps the backend's status to the partner's, as API
	// Gateway's integration responses of an http (not http_proxy)
	// integration do; 0 means no integration response matches, which
	// API Gateway answers with 500 Internal server error
	// (API_CONFIGURATION_ERROR). If nil, the backend's status passes
	// through.
	StatusMap func(status int) int
}

// Defaults follow API Gateway's limits.
const (
	DefaultTimeout      = 29 * time.Second
	DefaultMaxBodyBytes = 10 << 20
)

// Handler is one route's proxy stage.
type Handler struct {
	opts    Options
	reverse *httputil.ReverseProxy
	logger  *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// New builds the proxy stage for one route.
func New(o Options) (*Handler, error) {
	if o.Pool == nil {
		return nil, fmt.Errorf("route %q: no upstream pool", o.Route)
	}
	if o.Transport == nil {
		return nil, fmt.Errorf("route %q: upstream %q: no transport", o.Route, o.Pool.Name())
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	h := &Handler{opts: o, logger: o.Logger}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	h.reverse = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      &balancer{pool: o.Pool, next: o.Transport, metrics: o.Metrics},
		BufferPool:     bufferPool{},
		ErrorHandler:   h.handleError,
		ModifyResponse: modifyResponse(o.StatusMap),
		// A negative FlushInterval would flush after every write; ReverseProxy
		// already flushes at once for streaming responses (no Content-Length
		// or text/event-stream), which is what partners need, so keep 0.
		FlushInterval: 0,
		ErrorLog:      slog.NewLogLogger(h.logger.Handler(), slog.LevelDebug),
	}
	return h, nil
}

// ServeHTTP forwards r to a target of the upstream.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := observe.RecordFrom(r.Context())
	rec.Upstream = h.opts.Pool.Name()

	if r.ContentLength > h.opts.MaxBodyBytes {
		rec.Error = "request body too large"
		gwresponse.Write(w, gwresponse.RequestTooLarge)
		return
	}
	if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
		// Unknown length (chunked): enforce the cap while streaming.
		r.Body = http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes)
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	h.reverse.ServeHTTP(w, r.WithContext(ctx))
}

func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	out := pr.Out
	// The balancer fills in the target's scheme and host:port. Targets
	// carry no path, so the partner's path (or the rewritten one) is the
	// whole path.
	if h.opts.UpstreamPath != nil {
		out.URL.Path, out.URL.RawPath = h.opts.UpstreamPath.Expand(pr.In)
	}
	out.Host = h.opts.HostHeader
	makeReplayable(out)

	// ReverseProxy removed the partner's X-Forwarded-For, -Host and -Proto
	// and Forwarded before Rewrite. API Gateway appends the caller to an
	// X-Forwarded-For it received, so the chain is kept and SetXForwarded
	// appends the client address: only the rightmost entry is set by
	// drawbridge, every entry left of it is whatever the partner sent, and
	// a backend must not trust those. Other headers that name a client
	// address are dropped rather than passed on with a partner's choice
	// in them; Forwarded again in case ReverseProxy ever stops doing it.
	if prior, ok := pr.In.Header["X-Forwarded-For"]; ok {
		out.Header["X-Forwarded-For"] = prior
	}
	out.Header.Del("Forwarded")
	out.Header.Del("X-Real-Ip")
	pr.SetXForwarded()
	if addr, ok := pr.In.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(addr.String()); err == nil {
			out.Header["X-Forwarded-Port"] = []string{port}
		}
	}
}

// modifyResponse is remapGatewayHeaders, then statusMap if any. Protocol
// switches (101) are never mapped.
func modifyResponse(statusMap func(int) int) func(*http.Response) error {
	if statusMap == nil {
		return remapGatewayHeaders
	}
	return func(resp *http.Response) error {
		if resp.StatusCode >= 200 {
			s := statusMap(resp.StatusCode)
			if s == 0 {
				// ReverseProxy closes the body and calls handleError.
				return fmt.Errorf("%w: backend status %d", errNoIntegrationResponse, resp.StatusCode)
			}
			if s != resp.StatusCode {
				resp.StatusCode, resp.Status = s, ""
				if gwresponse.Bodiless(s) {
					// These carry no body: writing the backend's would
					// fail and abort the response.
					resp.Body.Close()
					resp.Body, resp.ContentLength = http.NoBody, 0
					resp.Header.Del("Content-Length")
					resp.Header.Del("Transfer-Encoding")
				}
			}
		}
		return remapGatewayHeaders(resp)
	}
}

// remapGatewayHeaders renames a backend's x-amzn-RequestId as API Gateway
// does, so the partner sees the gateway's request ID and can still find
// the backend's. A backend echoing X-Request-Id would send the partner a
// second copy of the one the gateway already set, so that echo is dropped.
func remapGatewayHeaders(resp *http.Response) error {
	if v, ok := resp.Header["X-Amzn-Requestid"]; ok {
		delete(resp.Header, "X-Amzn-Requestid")
		resp.Header["X-Amzn-Remapped-X-Amzn-Requestid"] = v
	}
	delete(resp.Header, "X-Request-Id")
	return nil
}

// handleError maps a failed exchange to the partner's answer, once, and
// logs the real reason, which the partner never sees.
func (h *Handler) handleError(w http.ResponseWriter, r *http.Request, err error) {
	rec := observe.RecordFrom(r.Context())
	fail := classify(r.Context(), err)
	rec.Error = fail.reason
	if fail.metric != "" && h.opts.Metrics != nil {
		h.opts.Metrics.Error(fail.metric)
	}
	if fail.typ == "" {
		// The partner went away; there is no one to answer.
		return
	}
	if fail.log {
		h.logger.Warn("upstream request failed",
			"request_id", rec.RequestID,
			"route", h.opts.Route,
			"upstream", h.opts.Pool.Name(),
			"target", rec.Target,
			"reason", fail.reason,
			"error", err.Error())
	}
	gwresponse.Write(w, fail.typ)
}

// bufferPool lends ReverseProxy its 32 KiB copy buffers so that each
// request does not allocate one.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

var errNoTarget = errors.New("no available target: every target is down or ejected")

// errNoIntegrationResponse: the route's status_map has no pattern for the
// backend's status and no default (an API configuration error on AWS).
var errNoIntegrationResponse = errors.New("no integration response matches and there is no default")
