package listener

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PlainHTTPOptions configures a [PlainHTTP] listener.
type PlainHTTPOptions struct {
	// Name is the HTTPS listener's name, for logs.
	Name string
	// Addr is host:port to listen on, usually 0.0.0.0:80.
	Addr string
	// HTTPSPort is the port redirects point to; 443 is left out of the URL.
	HTTPSPort int
	// Challenge, if set, wraps the redirect so that ACME HTTP-01
	// validations are answered (see acme.Manager.HTTPHandler).
	Challenge func(next http.Handler) http.Handler
	// ServesName reports whether the HTTPS listener has a certificate for
	// host (a lower-case name or an IP address, without port or
	// brackets), such as [Server.ServesName]. Only those hosts are
	// redirected; others get 404, so the listener is no open redirector
	// for names pointed at it. Nil redirects every well-formed host.
	ServesName func(host string) bool
	// Logger receives the listener's logs. Nil means [slog.Default].
	Logger *slog.Logger
}

// PlainHTTP is a listener's plain-HTTP socket. It never serves the API:
// it answers ACME HTTP-01 challenges and redirects every other request to
// the same host and path over HTTPS with 308, which keeps the method and
// body (RFC 9110, section 15.4.9).
type PlainHTTP struct {
	name string
	addr string
	srv  *http.Server

	mu sync.Mutex
	ln net.Listener
}

// NewPlainHTTP builds the listener; [PlainHTTP.Listen] binds it.
func NewPlainHTTP(o PlainHTTPOptions) *PlainHTTP {
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("listener", o.Name, "plain_http", true)
	var h http.Handler = redirectToHTTPS(o.HTTPSPort, o.ServesName)
	if o.Challenge != nil {
		h = o.Challenge(h)
	}
	return &PlainHTTP{
		name: o.Name,
		addr: o.Addr,
		srv: &http.Server{
			Handler: h,
			// Nothing here needs a body or a slow exchange: a challenge
			// is one small GET, a redirect one short answer. Bounding the
			// whole read and write keeps a trickling client from pinning
			// a goroutine and a socket.
			ReadHeaderTimeout: plainHTTPTimeout,
			ReadTimeout:       plainHTTPTimeout,
			WriteTimeout:      plainHTTPTimeout,
			IdleTimeout:       DefaultIdleTimeout,
			MaxHeaderBytes:    plainHTTPMaxHeaderBytes,
			// "OPTIONS *" reaches the redirect, which refuses it, rather
			// than net/http's 200 for a server that has no methods here.
			DisableGeneralOptionsHandler: true,
			ErrorLog:                     log.New(errorLogWriter{logger}, "", 0),
		},
	}
}

// plainHTTPTimeout bounds reading a whole request, and writing its
// answer, on the plain-HTTP listener.
const plainHTTPTimeout = 10 * time.Second

// plainHTTPMaxHeaderBytes is ample for a browser's or a CA's request
// headers, far below net/http's 1 MB default.
const plainHTTPMaxHeaderBytes = 16 << 10

// redirectToHTTPS answers 308 with the request's URL made https, for a
// request in origin form (a path) to a host the listener serves.
func redirectToHTTPS(httpsPort int, serves func(string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			// The body is the client's to send again to the HTTPS URL
			// (308 keeps it); closing after the answer keeps net/http
			// from reading and discarding it first.
			w.Header().Set("Connection", "close")
		}
		// Only a path is copied into the Location: an opaque or absolute
		// target ("x:.evil.example/p", "http:@evil.example/") or "*"
		// would otherwise be glued after the host and change it.
		if r.URL.Opaque != "" || r.URL.Scheme != "" || r.URL.Host != "" || !strings.HasPrefix(r.URL.Path, "/") {
			http.Error(w, "Bad Request: the request target must be a path", http.StatusBadRequest)
			return
		}
		host, ok := requestHost(r.Host)
		if !ok {
			http.Error(w, "Bad Request: missing or malformed Host header", http.StatusBadRequest)
			return
		}
		if serves != nil && !serves(host) {
			http.NotFound(w, r)
			return
		}
		if httpsPort != 0 && httpsPort != 443 {
			host = net.JoinHostPort(host, strconv.Itoa(httpsPort))
		} else if strings.Contains(host, ":") {
			host = "[" + host + "]" // IPv6 literal
		}
		u := url.URL{Scheme: "https", Host: host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
		http.Redirect(w, r, u.String(), http.StatusPermanentRedirect)
	})
}

// requestHost is the host of a Host header without port, brackets or a
// trailing dot, lower-cased; ok is false unless it is an IP address or a
// DNS name.
func requestHost(hostport string) (host string, ok bool) {
	host = hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", false
		}
		return ip.String(), true
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" || len(host) > 253 {
		return "", false
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return "", false
		}
	}
	return host, true
}

// Listen binds the address.
func (p *PlainHTTP) Listen() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return fmt.Errorf("listener %q: http_addr: already listening on %s", p.name, p.ln.Addr())
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("listener %q: http_addr: %w", p.name, err)
	}
	p.ln = ln
	return nil
}

// Addr is the bound address, or nil before Listen.
func (p *PlainHTTP) Addr() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return nil
	}
	return p.ln.Addr()
}

// Serve serves until Shutdown, which makes it return nil.
func (p *PlainHTTP) Serve() error {
	p.mu.Lock()
	ln := p.ln
	p.mu.Unlock()
	if ln == nil {
		return fmt.Errorf("listener %q: http_addr: Serve before Listen", p.name)
	}
	if err := p.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("listener %q: http_addr: %w", p.name, err)
	}
	return nil
}

// Shutdown stops the listener, waiting for requests in flight until ctx
// is done.
func (p *PlainHTTP) Shutdown(ctx context.Context) error {
	err := p.srv.Shutdown(ctx)
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
	}
	p.mu.Unlock()
	return err
}
