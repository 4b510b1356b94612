package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Defaults of CORSOptions.
var (
	// DefaultCORSMethods are the CORS-safelisted methods, which browsers
	// send without asking anyway.
	DefaultCORSMethods = []string{"GET", "HEAD", "POST"}
	// DefaultCORSHeaders are the headers API Gateway's console enables
	// with "Enable CORS".
	DefaultCORSHeaders = []string{"Content-Type", "X-Amz-Date", "Authorization", "X-Api-Key", "X-Amz-Security-Token"}
)

// CORSOptions configures NewCORS, as API Gateway's "Enable CORS" does for
// a resource.
type CORSOptions struct {
	// AllowOrigins are the origins allowed to call ("https://app.example",
	// scheme and host, port if not the default, no path), compared without
	// regard to case, or the single entry "*" for any origin. Required.
	AllowOrigins []string
	// AllowMethods are sent in Access-Control-Allow-Methods. If empty,
	// DefaultCORSMethods (GET, HEAD, POST).
	AllowMethods []string
	// AllowHeaders are the request headers a page may send, sent in
	// Access-Control-Allow-Headers. If empty, DefaultCORSHeaders
	// (API Gateway's: Content-Type, X-Amz-Date, Authorization, X-Api-Key,
	// X-Amz-Security-Token).
	AllowHeaders []string
	// ExposeHeaders are the response headers a page may read beyond the
	// safelisted ones, sent in Access-Control-Expose-Headers on actual
	// requests. If empty, none is sent.
	ExposeHeaders []string
	// MaxAge is how long a browser may cache a preflight answer,
	// Access-Control-Max-Age in whole seconds. Zero sends none (browsers
	// then default to 5 seconds).
	MaxAge time.Duration
	// AllowCredentials sends Access-Control-Allow-Credentials: true, so
	// pages may send cookies and client certificates. It cannot be
	// combined with the "*" origin, which browsers reject.
	AllowCredentials bool
}

// cors is the handler NewCORS returns. Header values are computed once.
type cors struct {
	anyOrigin   bool
	origins     map[string]bool
	methods     []string
	headers     []string
	expose      []string
	maxAge      []string
	credentials bool
	next        http.Handler
}

// Header values shared by every response; net/http never modifies them.
var (
	valueTrue       = []string{"true"}
	valueStar       = []string{"*"}
	valueVaryOrigin = "Origin"
)

// NewCORS returns a handler that answers CORS preflight requests (OPTIONS
// with Origin and Access-Control-Request-Method) itself, as API Gateway's
// mock OPTIONS integration does, and adds the CORS headers to actual
// requests from allowed origins. Put it outermost in a route's chain:
// preflights carry no API key.
//
// A preflight from an origin that is not allowed is answered 204 without
// any Access-Control-Allow-* header; the browser then refuses the actual
// request. Actual requests from such origins pass to next unchanged, as
// CORS is enforced by browsers, not servers.
//
// The headers on actual requests replace any the backend sent, so a
// backend with its own CORS support cannot produce duplicate
// Access-Control-Allow-Origin headers, which browsers reject.
func NewCORS(o CORSOptions, next http.Handler) (http.Handler, error) {
	if next == nil {
		return nil, errors.New("cors: next handler is nil")
	}
	c := &cors{origins: make(map[string]bool), credentials: o.AllowCredentials, next: next}
	var errs []error
	if len(o.AllowOrigins) == 0 {
		errs = append(errs, errors.New("cors: no allowed origins"))
	}
	for _, origin := range o.AllowOrigins {
		if origin == "*" {
			c.anyOrigin = true
			continue
		}
		if err := checkOrigin(origin); err != nil {
			errs = append(errs, fmt.Errorf("cors: origin %q: %w", origin, err))
			continue
		}
		c.origins[strings.ToLower(origin)] = true
	}
	if c.anyOrigin && len(c.origins) > 0 {
		errs = append(errs, errors.New(`cors: origin "*" listed with other origins; use either "*" or a list`))
	}
	if c.anyOrigin && o.AllowCredentials {
		errs = append(errs, errors.New(`cors: origin "*" cannot be combined with allow_credentials; browsers refuse it, so list the origins`))
	}
	methods := o.AllowMethods
	if len(methods) == 0 {
		methods = DefaultCORSMethods
	}
	for _, m := range methods {
		if !validToken(m) {
			errs = append(errs, fmt.Errorf("cors: method %q is not an HTTP token", m))
		}
	}
	headers := o.AllowHeaders
	if len(headers) == 0 {
		headers = DefaultCORSHeaders
	}
	for _, h := range headers {
		if h != "*" && !validToken(h) {
			errs = append(errs, fmt.Errorf("cors: allow header %q is not a header name", h))
		}
	}
	for _, h := range o.ExposeHeaders {
		if h != "*" && !validToken(h) {
			errs = append(errs, fmt.Errorf("cors: expose header %q is not a header name", h))
		}
	}
	if o.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("cors: negative max_age %v", o.MaxAge))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.methods = []string{strings.Join(methods, ", ")}
	c.headers = []string{strings.Join(headers, ", ")}
	if len(o.ExposeHeaders) > 0 {
		c.expose = []string{strings.Join(o.ExposeHeaders, ", ")}
	}
	if secs := int64(o.MaxAge / time.Second); secs > 0 {
		c.maxAge = []string{strconv.FormatInt(secs, 10)}
	}
	return c, nil
}

// checkOrigin accepts an origin as browsers serialise it (RFC 6454):
// scheme "://" host [":" port], nothing else.
func checkOrigin(origin string) error {
	if origin == "null" {
		return errors.New(`"null" is the origin of sandboxed and file pages, and any site can produce it`)
	}
	u, err := url.Parse(origin)
	if err != nil {
		return errors.New("not scheme://host[:port]")
	}
	switch {
	case u.Scheme == "" || u.Host == "":
		return errors.New("not scheme://host[:port]")
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(origin, "/"):
		return errors.New("an origin has no path, query or credentials: want scheme://host[:port]")
	}
	return nil
}

func validToken(s string) bool {
	return s != "" && httpguts.ValidHeaderFieldName(s)
}

// allowed returns the Access-Control-Allow-Origin value for origin, or nil.
func (c *cors) allowed(origin string) []string {
	if c.anyOrigin {
		return valueStar
	}
	if c.origins[strings.ToLower(origin)] {
		return []string{origin}
	}
	return nil
}

func (c *cors) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		c.next.ServeHTTP(w, r)
		return
	}
	h := w.Header()
	h.Add("Vary", valueVaryOrigin)
	allow := c.allowed(origin)

	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		if allow != nil {
			h["Access-Control-Allow-Origin"] = allow
			h["Access-Control-Allow-Methods"] = c.methods
			h["Access-Control-Allow-Headers"] = c.headers
			if c.maxAge != nil {
				h["Access-Control-Max-Age"] = c.maxAge
			}
			if c.credentials {
				h["Access-Control-Allow-Credentials"] = valueTrue
			}
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}

	if allow == nil {
		c.next.ServeHTTP(w, r)
		return
	}
	cw := &corsWriter{ResponseWriter: w, c: c, allow: allow}
	cw.apply()
	c.next.ServeHTTP(cw, r)
}

// corsWriter puts the gateway's CORS headers back just before the
// response headers are sent, replacing any that next (the backend) added.
type corsWriter struct {
	http.ResponseWriter
	c     *cors
	allow []string
	wrote bool
}

func (cw *corsWriter) apply() {
	h := cw.ResponseWriter.Header()
	h["Access-Control-Allow-Origin"] = cw.allow
	if cw.c.credentials {
		h["Access-Control-Allow-Credentials"] = valueTrue
	} else {
		delete(h, "Access-Control-Allow-Credentials")
	}
	if cw.c.expose != nil {
		h["Access-Control-Expose-Headers"] = cw.c.expose
	} else {
		delete(h, "Access-Control-Expose-Headers")
	}
	// Preflight-only headers make no sense on an actual response.
	delete(h, "Access-Control-Allow-Methods")
	delete(h, "Access-Control-Allow-Headers")
	delete(h, "Access-Control-Max-Age")
}

func (cw *corsWriter) WriteHeader(code int) {
	if !cw.wrote {
		cw.apply()
		// 1xx responses are followed by the real one.
		cw.wrote = code >= 200 || code == http.StatusSwitchingProtocols
	}
	cw.ResponseWriter.WriteHeader(code)
}

func (cw *corsWriter) Write(b []byte) (int, error) {
	if !cw.wrote {
		cw.apply()
		cw.wrote = true
	}
	return cw.ResponseWriter.Write(b)
}

// Flush lets streamed responses through; http.ResponseController finds
// the other optional methods through Unwrap.
func (cw *corsWriter) Flush() {
	if !cw.wrote {
		cw.apply()
		cw.wrote = true
	}
	http.NewResponseController(cw.ResponseWriter).Flush()
}

// Unwrap is for http.ResponseController.
func (cw *corsWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }
