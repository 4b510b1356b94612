package listener

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a [Server]. The zero value of each field means the
// default stated on it.
type Options struct {
	// Name identifies the listener in logs, errors and metrics.
	Name string
	// Addr is the host:port to listen on; port 0 picks a free port.
	Addr string
	// CertFile and KeyFile are PEM files. CertFile may hold a chain, leaf
	// first. Keys may be RSA, ECDSA or Ed25519. They may both be empty
	// when Managed is set.
	CertFile, KeyFile string
	// Managed, if set, serves certificates obtained at run time (ACME) to
	// the names it manages, and the TLS-ALPN-01 challenge certificate to
	// an ACME validation (the listener then offers ALPN "acme-tls/1"). Any
	// other name gets the file certificate; without one, its handshake
	// fails with an alert.
	Managed ManagedCerts
	// MinVersion is tls.VersionTLS12 or tls.VersionTLS13. Zero means
	// [DefaultMinVersion]; anything older is refused.
	MinVersion uint16
	// ReadHeaderTimeout bounds the TLS handshake plus reading the request
	// headers. Zero means [DefaultReadHeaderTimeout].
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request. Zero means [DefaultIdleTimeout].
	IdleTimeout time.Duration
	// MaxHeaderBytes limits request header size. Zero means
	// [http.DefaultMaxHeaderBytes] (1 MB).
	MaxHeaderBytes int
	// Logger receives the listener's logs. Nil means [slog.Default].
	Logger *slog.Logger
	// OnCertLoaded, if set, is called with the leaf each time a certificate
	// is (re)loaded (metrics: expiry), including the first load in [New].
	// It must not call [Certs.Reload].
	OnCertLoaded func(listener string, leaf *x509.Certificate)

	// ClientCAFile is a PEM truststore of the CAs whose client certificates
	// are accepted (partner mTLS). Every certificate in it must be a CA.
	// Empty means no client certificates are requested.
	ClientCAFile string
	// ClientAuth is [ClientAuthOptional] (the default when ClientCAFile is
	// set: a certificate is requested and verified if given; routes decide
	// whether they require one) or [ClientAuthRequire] (the handshake fails
	// without a valid certificate). It must be empty without ClientCAFile.
	ClientAuth string
	// RevokedFile is an optional file of revoked client certificate
	// fingerprints, one "sha256:<hex of the DER certificate>" per line
	// ([Fingerprint]; # comments and blank lines allowed). A revoked
	// certificate fails the handshake. It needs ClientCAFile.
	//
	// ClientCAFile and RevokedFile are re-read with the certificate
	// ([Certs.Reload], [Certs.Watch]) and apply to new handshakes only:
	// a connection established before a certificate was revoked keeps
	// working until it closes (see [Certs.Revoked]).
	RevokedFile string
}

// Server is one HTTPS listener. Create it with [New], bind with
// [Server.Listen], run [Server.Serve] and stop with [Server.Shutdown].
type Server struct {
	name    string
	addr    string
	logger  *slog.Logger
	certs   *Certs
	managed ManagedCerts
	// noCertWarn limits the warnings of handshakes refused for a managed
	// name without a certificate (see noManagedCert).
	noCertWarn rateLimit
	handler    swapHandler
	srv        *http.Server
	lc         net.ListenConfig

	// tlsBase is what each handshake's config is cloned from when client
	// certificates are requested (see configForClient).
	tlsBase    *tls.Config
	clientAuth tls.ClientAuthType

	mu sync.Mutex
	ln net.Listener
}

// New loads the certificate and builds the server. It does not bind the
// address; see [Server.Listen]. A nil h serves 404 until [Server.SetHandler].
func New(o Options, h http.Handler) (*Server, error) {
	if o.Addr == "" {
		return nil, fmt.Errorf("listener %q: address is required", o.Name)
	}
	minVersion := o.MinVersion
	switch minVersion {
	case 0:
		minVersion = DefaultMinVersion
	case tls.VersionTLS12, tls.VersionTLS13:
	default:
		return nil, fmt.Errorf("listener %q: minimum TLS version %s is not allowed; use TLS 1.2 or 1.3",
			o.Name, tls.VersionName(o.MinVersion))
	}
	if o.ReadHeaderTimeout < 0 || o.IdleTimeout < 0 || o.MaxHeaderBytes < 0 {
		return nil, fmt.Errorf("listener %q: timeouts and header size must not be negative", o.Name)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("listener", o.Name)

	clientAuth, err := clientAuthType(o)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", o.Name, err)
	}
	certs, err := loadCerts(&Certs{certFile: o.CertFile, keyFile: o.KeyFile,
		clientCAFile: o.ClientCAFile, revokedFile: o.RevokedFile,
		managedOnly: o.Managed != nil && o.CertFile == "" && o.KeyFile == ""})
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", o.Name, err)
	}
	if o.OnCertLoaded != nil {
		name := o.Name
		certs.setOnLoad(func(leaf *x509.Certificate) { o.OnCertLoaded(name, leaf) })
	}

	s := &Server{
		name:       o.Name,
		addr:       o.Addr,
		logger:     logger,
		certs:      certs,
		managed:    o.Managed,
		noCertWarn: rateLimit{interval: noCertWarnInterval},
		clientAuth: clientAuth,
		lc: net.ListenConfig{
			KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: DefaultKeepAlive},
		},
	}
	s.SetHandler(h)

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	s.tlsBase = &tls.Config{
		MinVersion:     minVersion,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: certs.GetCertificate,
	}
	if o.Managed != nil {
		s.tlsBase.NextProtos = append(s.tlsBase.NextProtos, ACMETLS1Protocol)
		s.tlsBase.GetCertificate = s.getCertificate
	}
	tlsConfig := s.tlsBase
	if o.ClientCAFile != "" {
		tlsConfig = s.tlsBase.Clone()
		tlsConfig.GetConfigForClient = s.configForClient
	}
	s.srv = &http.Server{
		Handler:   &s.handler,
		TLSConfig: tlsConfig,
		// Set explicitly so that GODEBUG=http2server=0 cannot silently
		// turn HTTP/2 off for partners.
		Protocols:         &protocols,
		ReadHeaderTimeout: orDefault(o.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		IdleTimeout:       orDefault(o.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    o.MaxHeaderBytes,
		ErrorLog:          log.New(errorLogWriter{logger}, "", 0),
	}
	return s, nil
}

// configForClient gives each handshake the client CAs current at that
// moment, so that reloading the CA file needs no restart, and a
// VerifyConnection that knows the peer's address for its log line.
//
// Session resumption does not bypass either: crypto/tls re-checks a
// resumed session's chains against this config's ClientCAs, and calls
// VerifyConnection on resumed connections too.
func (s *Server) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if s.managed != nil && IsACMEChallenge(hello) && s.managed.Manages(hello.ServerName) {
		// The CA's validator has no client certificate to give. The
		// connection can only get the challenge certificate, and
		// net/http closes it after the handshake since it negotiated a
		// protocol other than HTTP (TestACMEConnectionNeverReachesHandler).
		// Other names, and listeners without ACME, get no exemption.
		return s.tlsBase, nil
	}
	cas := s.certs.clientCAs.Load()
	if cas == nil {
		return nil, errors.New("listener: no client CAs loaded")
	}
	var remote string
	if hello != nil && hello.Conn != nil {
		remote = hello.Conn.RemoteAddr().String()
	}
	// Session ticket keys stay those of the server's own config, since
	// this one sets none (see tls.Config.GetConfigForClient).
	cfg := s.tlsBase.Clone()
	cfg.ClientCAs = cas.pool
	cfg.ClientAuth = s.clientAuth
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		return s.verifyClient(cs, remote)
	}
	return cfg, nil
}

// verifyClient refuses revoked client certificates. It runs after the
// chain was verified, so the leaf is one of our partners'.
func (s *Server) verifyClient(cs tls.ConnectionState, remote string) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	leaf := cs.PeerCertificates[0]
	fp := Fingerprint(leaf)
	if !s.certs.revokedFingerprint(fp) {
		return nil
	}
	// Info, not debug like other handshake failures: an operator wants to
	// see a revoked partner still trying.
	s.logger.Info("refused revoked client certificate", "fingerprint", fp,
		"subject", leaf.Subject.String(), "remote", remote, "resumed", cs.DidResume)
	return fmt.Errorf("client certificate %s (%s) is revoked", fp, leaf.Subject)
}

func orDefault(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// Listen binds the address, so that bind errors surface before serving.
// After it returns, [Server.Addr] is the bound address.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listenLocked()
}

func (s *Server) listenLocked() error {
	if s.ln != nil {
		return fmt.Errorf("listener %q: already listening on %s", s.name, s.ln.Addr())
	}
	ln, err := s.lc.Listen(context.Background(), "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listener %q: %w", s.name, err)
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
// [Server.Listen] first if it has not been called. It returns nil after a
// clean shutdown. As with [http.Server.Serve], it returns as soon as
// Shutdown starts; wait for Shutdown to know in-flight requests are done.
func (s *Server) Serve() error {
	s.mu.Lock()
	if s.ln == nil {
		if err := s.listenLocked(); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	ln := s.ln
	s.mu.Unlock()
	// Empty file names: the certificate comes from TLSConfig.GetCertificate
	// so that reloads reach new handshakes.
	err := s.srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("listener %q: %w", s.name, err)
}

// Shutdown stops accepting connections, closes idle ones, and waits for
// in-flight requests to finish. If ctx is done first, it closes the
// remaining connections and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	// Shutdown only closes listeners Serve has started using; close ours in
	// case Serve was never called.
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Unlock()
	if err != nil {
		s.srv.Close()
		return fmt.Errorf("listener %q: shutting down: %w", s.name, err)
	}
	return nil
}

// Certs returns the server's certificate holder, for [Certs.Reload] (on
// SIGHUP) and [Certs.Watch].
func (s *Server) Certs() *Certs { return s.certs }

// SetHandler atomically replaces the handler for requests that start after
// it returns. Connections are not touched. A nil h serves 404.
func (s *Server) SetHandler(h http.Handler) {
	if h == nil {
		h = http.NotFoundHandler()
	}
	s.handler.p.Store(&h)
}

// swapHandler is an http.Handler whose target can be replaced while
// requests are being served.
type swapHandler struct {
	p atomic.Pointer[http.Handler]
}

func (h *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*h.p.Load()).ServeHTTP(w, r)
}

// errorLogWriter routes http.Server's ErrorLog to slog. Almost everything
// it reports is about misbehaving clients (scanners failing the TLS
// handshake, bad HTTP/2 prefaces), which would flood the log at a higher
// level, so it logs at debug. Handler panics are the exception.
type errorLogWriter struct {
	logger *slog.Logger
}

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	level := slog.LevelDebug
	if strings.Contains(msg, "panic serving") {
		level = slog.LevelError
	}
	w.logger.Log(context.Background(), level, msg)
	return len(p), nil
}

// ServesName reports whether the listener has a certificate for host (a
// name or an IP address, without port): a name its managed source manages,
// or one its current file certificate covers, wildcards included.
func (s *Server) ServesName(host string) bool {
	if s.managed != nil && s.managed.Manages(host) {
		return true
	}
	leaf := s.certs.Leaf()
	return leaf != nil && leaf.VerifyHostname(host) == nil
}

// Name is the listener's name from its config.
func (s *Server) Name() string { return s.name }
