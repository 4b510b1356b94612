package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"golang.org/x/sys/unix"

	"github.com/drawbridge-gw/drawbridge/internal/listener"
)

// LetsEncrypt is the directory of Let's Encrypt's production CA, the
// default CA.
const LetsEncrypt = certmagic.LetsEncryptProductionCA

// LetsEncryptStaging is the directory of Let's Encrypt's staging CA, for
// trying a setup without spending production rate limits.
const LetsEncryptStaging = certmagic.LetsEncryptStagingCA

// ALPNProtocol is the ALPN protocol of TLS-ALPN-01 challenges (RFC 8737):
// the HTTPS listener must offer it in its NextProtos.
const ALPNProtocol = listener.ACMETLS1Protocol

// Options configures a [Manager].
type Options struct {
	// Name names the manager's listener in logs and metrics.
	Name string
	// Domains are the exact names to get certificates for (no wildcards:
	// those need DNS-01). Required.
	Domains []string
	// Email is given to the CA for expiry notices; it may be empty.
	Email string
	// CA is the ACME directory URL. Empty means [LetsEncrypt].
	CA string
	// CARootFile is a PEM file of the roots that the ACME server's own
	// HTTPS certificate chains to, for a private ACME CA. It is trusted
	// for talking to the CA only, never for partners or backends. Empty
	// means the system roots.
	CARootFile string
	// Storage is the folder of certificates, keys and the ACME account.
	// Replicas may share it: its lock files keep them from ordering the
	// same certificate twice. Required.
	Storage string
	// ListenHost is the host the HTTPS listener is bound to; with the
	// ports it tells certmagic that the challenge ports are ours (it would
	// otherwise try to bind them itself).
	ListenHost string
	// HTTPListenHost is the host the plain-HTTP listener is bound to,
	// when it differs from ListenHost.
	HTTPListenHost string
	// TLSPort is the HTTPS listener's port, which answers TLS-ALPN-01
	// challenges through [Manager.GetCertificate]. Public CAs dial 443.
	TLSPort int
	// HTTPPort is the plain-HTTP listener's port, which answers HTTP-01
	// challenges through [Manager.HTTPHandler]. Zero disables HTTP-01, so
	// that certmagic never opens port 80 on its own. Public CAs dial 80.
	HTTPPort int
	// DisableTLSALPN turns TLS-ALPN-01 off, for a listener the CA cannot
	// reach on 443; HTTP-01 must then be on.
	DisableTLSALPN bool
	// RenewCheckInterval is how often certificates are checked for
	// renewal. Zero means certmagic's default (10 minutes); tests with
	// short-lived certificates make it shorter.
	RenewCheckInterval time.Duration
	// Logger receives certmagic's logs and the manager's. Nil means
	// [slog.Default].
	Logger *slog.Logger
	// OnCertificate, if set, is called with each certificate the manager
	// starts serving: loaded from storage, obtained or renewed.
	OnCertificate func(leaf *x509.Certificate)
	// OnResult, if set, is called after each attempt to obtain or renew a
	// certificate, with the ACME error on failure.
	OnResult func(renewal bool, err error)
}

// Manager gets, renews and serves the certificates of one listener's
// domains. Create it with [New], begin with [Manager.Start], end with
// [Manager.Stop].
type Manager struct {
	name    string
	domains []string
	logger  *slog.Logger
	o       Options

	cache  *certmagic.Cache
	magic  *certmagic.Config
	issuer *certmagic.ACMEIssuer

	// orders counts the certificate orders this manager began; tests use
	// it to prove a restart reuses the stored certificate.
	orders atomic.Int64

	stopOnce sync.Once
	mu       sync.Mutex
	cancel   context.CancelFunc
	// lastErr is the latest obtain or renewal error per domain, cleared on
	// success; Certificates reports it.
	lastErr map[string]string
}

// New checks o and builds a manager. It does not contact the CA.
func New(o Options) (*Manager, error) {
	if len(o.Domains) == 0 {
		return nil, fmt.Errorf("acme %q: no domains", o.Name)
	}
	if o.HTTPPort == 0 && o.DisableTLSALPN {
		return nil, fmt.Errorf("acme %q: no challenge left: HTTP-01 needs a plain-HTTP port when TLS-ALPN-01 is off", o.Name)
	}
	if o.Storage == "" {
		return nil, fmt.Errorf("acme %q: storage folder is required", o.Name)
	}
	if o.CA == "" {
		o.CA = LetsEncrypt
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m := &Manager{
		name:    o.Name,
		logger:  o.Logger.With("listener", o.Name, "acme_ca", o.CA),
		o:       o,
		lastErr: map[string]string{},
	}
	for _, d := range o.Domains {
		m.domains = append(m.domains, strings.ToLower(d))
	}
	var roots *x509.CertPool
	if o.CARootFile != "" {
		var err error
		if roots, err = LoadRoots(o.CARootFile); err != nil {
			return nil, fmt.Errorf("acme %q: %w", o.Name, err)
		}
	}
	if err := os.MkdirAll(o.Storage, 0o700); err != nil {
		return nil, fmt.Errorf("acme %q: storage: %w", o.Name, err)
	}
	// certmagic takes one host for both challenge ports and binds
	// host:port itself when that is free, to serve a challenge on its own
	// socket. With the two listeners on different hosts, any one host
	// would be wrong for one of them (certmagic would open a plaintext
	// socket beside ours); all addresses ("") conflict with both of our
	// sockets, so it uses ours.
	listenHost := o.ListenHost
	if o.HTTPPort != 0 && o.HTTPListenHost != o.ListenHost {
		listenHost = ""
	}
	zl := newZapLogger(m.logger)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: o.RenewCheckInterval,
		Logger:             zl,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: o.Storage},
		Logger:  zl,
		OnEvent: m.onEvent,
		// Only the events onEvent uses: certmagic then skips building
		// the data of the others, tls_get_certificate's on every partner
		// handshake among them.
		ShouldEmitFunc: func(event string) bool { return handledEvents[event] },
	})
	m.issuer = certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
		CA:     o.CA,
		Email:  o.Email,
		Agreed: true, // configuring acme is agreeing to the CA's terms
		// Challenge ports are the gateway's listeners, already bound when
		// certmagic tries them, so it serves through our handlers.
		ListenHost:              listenHost,
		AltTLSALPNPort:          o.TLSPort,
		AltHTTPPort:             o.HTTPPort,
		DisableHTTPChallenge:    o.HTTPPort == 0,
		DisableTLSALPNChallenge: o.DisableTLSALPN,
		TrustedRoots:            roots,
		Logger:                  zl,
	})
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	return m, nil
}

// LoadRoots reads a ca_root file: PEM certificates the ACME server's
// HTTPS certificate may chain to.
func LoadRoots(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading ca_root: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("ca_root %q: no PEM certificate in it", file)
	}
	return roots, nil
}

// CheckStorage reports whether the storage folder dir can be used: it is a
// writable folder, or the nearest of its parents that exists is one (so
// that [New] can create it). It creates and writes nothing, for
// `drawbridge validate`.
func CheckStorage(dir string) error {
	if dir == "" {
		return errors.New("storage folder is required")
	}
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case (errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR)) && filepath.Dir(p) != p:
			// ENOTDIR: a parent is a file, which the next round names.
			continue
		case err != nil:
			return fmt.Errorf("storage %q: %w", dir, err)
		case !fi.IsDir():
			return fmt.Errorf("storage %q: %s is not a folder", dir, p)
		}
		if err := unix.Access(p, unix.W_OK|unix.X_OK); err != nil {
			what := "cannot be written"
			if p != filepath.Clean(dir) {
				what = "cannot be created: " + p + " is not writable"
			}
			return fmt.Errorf("storage %q %s (%w)", dir, what, err)
		}
		return nil
	}
}

// Start loads any stored certificates, so that they serve at once, and
// obtains or renews in the background: a CA that is down delays only the
// names that have no certificate yet. Maintenance (renewal ahead of
// expiry, OCSP stapling) goes on until [Manager.Stop].
func (m *Manager) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	m.mu.Lock()
	m.cancel = cancel
	m.mu.Unlock()
	// Stored certificates first, synchronously: ManageAsync alone may
	// leave the first handshakes without one while its goroutines start.
	for _, d := range m.domains {
		if _, err := m.magic.CacheManagedCertificate(ctx, d); err == nil {
			m.logger.Info("serving stored ACME certificate", "domain", d)
		}
	}
	if err := m.magic.ManageAsync(ctx, m.domains); err != nil {
		return fmt.Errorf("acme %q: %w", m.name, err)
	}
	return nil
}

// Stop ends maintenance and any order in progress. Stopping twice does
// nothing more.
func (m *Manager) Stop() {
	m.stopOnce.Do(func() {
		m.mu.Lock()
		if m.cancel != nil {
			m.cancel()
		}
		m.mu.Unlock()
		m.cache.Stop()
	})
}

// Manages reports whether name (a TLS server name) is one of the
// manager's domains, so its certificate comes from ACME.
func (m *Manager) Manages(name string) bool {
	return slices.Contains(m.domains, strings.ToLower(strings.TrimSuffix(name, ".")))
}

// GetCertificate serves the managed certificate for the handshake's
// server name, and the challenge certificate to a TLS-ALPN-01 validation.
// It has the signature of [tls.Config.GetCertificate]. A name with no
// certificate yet fails the handshake (the client gets an alert); the
// reason is logged at debug, as other handshake failures are.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if listener.IsACMEChallenge(hello) && !m.Manages(hello.ServerName) {
		// Anyone can send this hello: refuse it before certmagic reads
		// storage and logs an error, since no validation of ours can be
		// for a name we do not order.
		return nil, fmt.Errorf("acme %q: TLS-ALPN-01 challenge for %q, which is not one of its domains", m.name, hello.ServerName)
	}
	cert, err := m.magic.GetCertificate(hello)
	if err != nil {
		m.logger.Debug("no ACME certificate for handshake", "server_name", hello.ServerName, "err", err)
		return nil, fmt.Errorf("acme %q: %w", m.name, err)
	}
	return cert, nil
}

// HTTPHandler answers HTTP-01 challenges and passes every other request
// to next.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	return m.issuer.HTTPChallengeHandler(next)
}

// Renew renews every domain's certificate now, even if it is not due,
// and serves the new one to new handshakes; connections already open keep
// theirs. On failure the old certificate keeps serving.
func (m *Manager) Renew(ctx context.Context) error {
	var errs []error
	for _, d := range m.domains {
		old := m.cache.AllMatchingCertificates(d)
		if err := m.magic.RenewCertSync(ctx, d, true); err != nil {
			errs = append(errs, fmt.Errorf("acme %q: renewing %s: %w", m.name, d, err))
			continue
		}
		cert, err := m.magic.CacheManagedCertificate(ctx, d)
		if err != nil {
			errs = append(errs, fmt.Errorf("acme %q: loading renewed %s: %w", m.name, d, err))
			continue
		}
		var stale []string
		for _, c := range old {
			if c.Hash() != cert.Hash() {
				stale = append(stale, c.Hash())
			}
		}
		m.cache.Remove(stale)
	}
	return errors.Join(errs...)
}

// Orders is how many certificate orders (obtain or renewal) the manager
// has begun.
func (m *Manager) Orders() int { return int(m.orders.Load()) }

// Certificate describes a certificate the manager serves, or a domain it
// has none for yet.
type Certificate struct {
	Source   string    `json:"source"` // "acme" here; "file" in the gateway's list
	Domain   string    `json:"domain,omitempty"`
	Names    []string  `json:"names,omitempty"`
	Issuer   string    `json:"issuer,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
	Serial   string    `json:"serial,omitempty"`
	// Error is the last obtain or renewal failure, until one succeeds.
	Error string `json:"error,omitempty"`
}

// Describe is a certificate's entry from source ("acme" or "file") with
// leaf's names, issuer, expiry and serial; leaf may be nil.
func Describe(source string, leaf *x509.Certificate) Certificate {
	c := Certificate{Source: source}
	if leaf != nil {
		c.Names, c.Issuer, c.NotAfter, c.Serial = leaf.DNSNames, leaf.Issuer.String(), leaf.NotAfter.UTC(), leaf.SerialNumber.Text(16)
	}
	return c
}

// Certificates describes each domain's current certificate, in the order
// of the domains.
func (m *Manager) Certificates() []Certificate {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Certificate, 0, len(m.domains))
	for _, d := range m.domains {
		c := Describe("acme", m.leaf(d))
		c.Domain, c.Error = d, m.lastErr[d]
		out = append(out, c)
	}
	return out
}

// leaf is the certificate served for d: the latest-expiring of those
// cached, as certmagic picks.
func (m *Manager) leaf(d string) *x509.Certificate {
	var best *x509.Certificate
	for _, c := range m.cache.AllMatchingCertificates(d) {
		if c.Leaf != nil && (best == nil || c.Leaf.NotAfter.After(best.NotAfter)) {
			best = c.Leaf
		}
	}
	return best
}

// handledEvents are the certmagic events onEvent acts on.
var handledEvents = map[string]bool{
	"cert_obtaining": true, "cert_obtained": true, "cert_failed": true, "cached_managed_cert": true,
}

// onEvent turns certmagic's events into metrics, log lines and the
// per-domain error Certificates reports. Returning nil lets every event
// proceed.
func (m *Manager) onEvent(ctx context.Context, event string, data map[string]any) error {
	switch event {
	case "cert_obtaining":
		m.orders.Add(1)
	case "cert_obtained":
		renewal, _ := data["renewal"].(bool)
		domain, _ := data["identifier"].(string)
		m.setErr(domain, "")
		m.logger.Info("ACME certificate obtained", "domain", domain, "renewal", renewal)
		if path, _ := data["certificate_path"].(string); path != "" && m.o.OnCertificate != nil {
			// A renewal by maintenance replaces the cached certificate
			// without a cached_managed_cert event; storage has the new one.
			if leaf, err := m.storedLeaf(ctx, path); err == nil {
				m.o.OnCertificate(leaf)
			}
		}
		if m.o.OnResult != nil {
			m.o.OnResult(renewal, nil)
		}
	case "cert_failed":
		renewal, _ := data["renewal"].(bool)
		domain, _ := data["identifier"].(string)
		err, _ := data["error"].(error)
		msg := describeError(err)
		m.setErr(domain, msg)
		what := "obtaining ACME certificate failed; retrying with backoff"
		if renewal {
			what = "renewing ACME certificate failed; the current certificate keeps serving, retrying with backoff"
		}
		m.logger.Error(what, "domain", domain, "error", msg)
		if m.o.OnResult != nil {
			m.o.OnResult(renewal, err)
		}
	case "cached_managed_cert":
		if m.o.OnCertificate == nil {
			return nil
		}
		sans, _ := data["sans"].([]string)
		for _, s := range sans {
			if leaf := m.leaf(s); leaf != nil {
				m.o.OnCertificate(leaf)
				break
			}
		}
	}
	return nil
}

// storedLeaf parses the first certificate of the PEM file at storage key.
func (m *Manager) storedLeaf(ctx context.Context, key string) (*x509.Certificate, error) {
	data, err := m.magic.Storage.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM data", key)
	}
	return x509.ParseCertificate(block.Bytes)
}

func (m *Manager) setErr(domain, msg string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if msg == "" {
		delete(m.lastErr, domain)
		return
	}
	m.lastErr[domain] = msg
}

// describeError is err with the ACME problem (RFC 8555 section 6.7) made
// plain when there is one: its type and detail say what the CA refused.
func describeError(err error) string {
	if err == nil {
		return "unknown error"
	}
	var p acme.Problem
	if errors.As(err, &p) {
		return fmt.Sprintf("%s: %s (%s)", p.Type, p.Detail, err)
	}
	return err.Error()
}

// Stored reads the certificates stored for domains under storage for the
// CA ca (empty: [LetsEncrypt]), without contacting the CA or writing
// anything: for `drawbridge doctor`. A domain with nothing stored has an
// entry with Error set.
func Stored(ctx context.Context, ca, storage string, domains []string) []Certificate {
	if ca == "" {
		ca = LetsEncrypt
	}
	fs := &certmagic.FileStorage{Path: storage}
	issuerKey := (&certmagic.ACMEIssuer{CA: ca}).IssuerKey()
	out := make([]Certificate, 0, len(domains))
	for _, d := range domains {
		d = strings.ToLower(d)
		c := Certificate{Source: "acme"}
		data, err := fs.Load(ctx, certmagic.StorageKeys.SiteCert(issuerKey, d))
		if err == nil {
			var leaf *x509.Certificate
			if block, _ := pem.Decode(data); block == nil {
				err = errors.New("no PEM data")
			} else if leaf, err = x509.ParseCertificate(block.Bytes); err == nil {
				c = Describe("acme", leaf)
			}
		}
		c.Domain = d
		if err != nil {
			c.Error = err.Error()
		}
		out = append(out, c)
	}
	return out
}
