package observe

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"

	"github.com/google/uuid"
)

func init() {
	// A pool of random bytes makes uuid.New cheap enough for every request
	// while staying crypto/rand-backed.
	uuid.EnableRandPool()
}

// MiddlewareOptions configures Middleware.
type MiddlewareOptions struct {
	// AccessLog receives one line per request at Info. If nil, no access
	// log is written.
	AccessLog *slog.Logger
	// Metrics records request counts and latency. If nil, none are kept.
	Metrics *Metrics
	// Listener names the listener in the access log.
	Listener string
}

// statusClientClosed is logged and counted when the partner went away
// before any answer was written (nginx's 499); nothing is sent.
const statusClientClosed = 499

// maxClientRequestID bounds an X-Request-Id taken from a client, so a
// partner cannot fill logs with arbitrary data.
const maxClientRequestID = 128

// Middleware is the outermost stage of the request path. It assigns the
// request ID (API Gateway's x-amzn-RequestId, and X-Request-Id unless the
// client sent one), counts the request, and writes the access-log line
// when the response is done.
func Middleware(o MiddlewareOptions, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := recordPool.Get().(*Record)
		rec.Start = time.Now()
		rec.RequestID = uuid.NewString()

		h := w.Header()
		h["X-Amzn-Requestid"] = []string{rec.RequestID}
		reqID := r.Header.Get("X-Request-Id")
		if reqID == "" || len(reqID) > maxClientRequestID || !printable(reqID) {
			reqID = rec.RequestID
			r.Header.Set("X-Request-Id", reqID)
		}
		h["X-Request-Id"] = []string{reqID}

		sw := &statusWriter{ResponseWriter: w, requestID: h["X-Amzn-Requestid"], clientID: h["X-Request-Id"]}
		var body *countingBody
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength < 0 {
			body = &countingBody{ReadCloser: r.Body}
			r.Body = body
		}
		if o.Metrics != nil {
			o.Metrics.inflight.Inc()
		}
		defer func() {
			// A panic below must still be logged and must not kill the
			// process; net/http would recover it but log without context.
			p := recover()
			switch {
			case p == http.ErrAbortHandler:
				// ReverseProxy aborts a response whose body copy failed
				// midway; log it, then let net/http drop the connection.
				rec.Error = "response aborted"
				defer panic(p)
			case p != nil:
				rec.Error = "panic"
				slog.Error("panic serving request", "request_id", rec.RequestID, "panic", p, "stack", string(debug.Stack()))
				if sw.wroteHeader {
					// The partner has part of an answer; ending it cleanly
					// would pass a truncated response off as complete.
					defer panic(http.ErrAbortHandler)
				} else {
					gwresponse.Write(sw, gwresponse.Default5XX)
				}
			}
			elapsed := time.Since(rec.Start)
			if !sw.wroteHeader && r.Context().Err() != nil {
				sw.status = statusClientClosed
			}
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			route := rec.Route
			if o.Metrics != nil {
				o.Metrics.inflight.Dec()
				if route == nil {
					route = o.Metrics.unmatched
				}
				route.observe(r.Method, sw.status, elapsed)
			}
			if o.AccessLog != nil {
				bytesIn := r.ContentLength
				if body != nil {
					bytesIn = body.n
				}
				logAccess(o, r, rec, sw, reqID, bytesIn, elapsed)
			}
			rec.reset()
			recordPool.Put(rec)
		}()
		next.ServeHTTP(sw, r.WithContext(WithRecord(r.Context(), rec)))
	})
}

func logAccess(o MiddlewareOptions, r *http.Request, rec *Record, sw *statusWriter, reqID string, bytesIn int64, elapsed time.Duration) {
	route := ""
	if rec.Route != nil {
		route = rec.Route.Name
	}
	if bytesIn < 0 {
		bytesIn = 0
	}
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	attrs := []slog.Attr{
		slog.String("request_id", rec.RequestID),
		slog.String("listener", o.Listener),
		slog.String("client_ip", client),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.String("proto", r.Proto),
		slog.String("route", route),
		slog.Int("status", sw.status),
		slog.Int64("bytes_in", bytesIn),
		slog.Int64("bytes_out", sw.bytes),
		slog.Float64("duration_ms", ms(elapsed)),
		slog.String("tls_client", tlsVersion(r.TLS)),
	}
	if reqID != rec.RequestID {
		attrs = append(attrs, slog.String("client_request_id", reqID))
	}
	if rec.KeyID != "" {
		attrs = append(attrs, slog.String("key_id", rec.KeyID), slog.String("plan", rec.Plan))
	}
	if rec.Partner != "" {
		attrs = append(attrs, slog.String("partner", rec.Partner))
	}
	if rec.Upstream != "" {
		attrs = append(attrs,
			slog.String("upstream", rec.Upstream),
			slog.String("target", rec.Target),
			slog.Float64("upstream_ms", ms(rec.UpstreamDuration)),
			slog.String("tls_upstream", upstreamTLS(rec.UpstreamTLS)),
		)
	}
	if rec.Error != "" {
		attrs = append(attrs, slog.String("error", rec.Error))
	}
	o.AccessLog.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func tlsVersion(cs *tls.ConnectionState) string {
	if cs == nil {
		return "none"
	}
	return tls.VersionName(cs.Version)
}

// upstreamTLS names the backend hop's TLS version; "none" when no TLS
// exchange completed (a plaintext opt-in, or a refused handshake).
func upstreamTLS(v uint16) string {
	if v == 0 {
		return "none"
	}
	return tls.VersionName(v)
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// statusWriter remembers the status and counts the bytes written. It
// implements Unwrap so http.ResponseController (used by the proxy to flush
// streaming responses) reaches the real writer.
type statusWriter struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
	// The request ID headers, put back on the final response if an
	// informational one (100 Continue sent when the body is first read)
	// carried and cleared them.
	requestID, clientID []string
}

func (w *statusWriter) WriteHeader(code int) {
	// 1xx responses (100 Continue, 103 Early Hints) are not the final status.
	if !w.wroteHeader && code >= 200 {
		w.status = code
		w.wroteHeader = true
		w.restoreIDs()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) restoreIDs() {
	h := w.ResponseWriter.Header()
	if _, ok := h["X-Amzn-Requestid"]; !ok {
		h["X-Amzn-Requestid"] = w.requestID
	}
	if _, ok := h["X-Request-Id"]; !ok {
		h["X-Request-Id"] = w.clientID
	}
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.status = http.StatusOK
		w.wroteHeader = true
		w.restoreIDs()
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush is here because ReverseProxy and some handlers check for
// http.Flusher directly rather than through ResponseController.
func (w *statusWriter) Flush() {
	if !w.wroteHeader {
		w.status = http.StatusOK
		w.wroteHeader = true
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

// countingBody counts request body bytes of unknown length (chunked).
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
