package auth

import (
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/drawbridge-gw/drawbridge/internal/certid"
	"github.com/drawbridge-gw/drawbridge/internal/gwresponse"
	"github.com/drawbridge-gw/drawbridge/internal/observe"
)

// ClientCertOptions configures NewClientCertCheck.
type ClientCertOptions struct {
	// Required refuses requests without a verified client certificate, and,
	// when Partners is not empty, requests whose certificate matches no
	// partner. API Gateway refuses such clients during the TLS handshake;
	// drawbridge's listener may accept them for other routes, so this
	// check answers 403 {"message":"Forbidden"} (gwresponse.InvalidAPIKey).
	// If false, such requests pass through without a Partner.
	Required bool
	// Partners maps a partner's name to how its certificate is recognised.
	Partners map[string]PartnerMatch
	// OnReject, if not nil, is called once per refused request with
	// ReasonMissing (no certificate), ReasonInvalid (no partner matches) or
	// ReasonMismatch (the API key names another partner). It must be safe
	// for concurrent use and must not block.
	OnReject func(reason string)
}

// PartnerMatch recognises one partner's client certificates; any one
// subject or fingerprint matching is enough.
type PartnerMatch struct {
	// Subjects are exact RFC 2253 subject strings, as
	// x509.Certificate.Subject.String() prints them,
	// e.g. "CN=acme client,O=Acme".
	Subjects []string
	// Fingerprints are "sha256:<hex of the certificate's DER>", hex in
	// either case, optionally with colons between bytes as openssl prints:
	// any form certid.Parse accepts, the rule the listener's revoked file
	// follows too.
	Fingerprints []string
}

// clientCertCheck is the handler NewClientCertCheck returns.
type clientCertCheck struct {
	required      bool
	anyPartner    bool
	bySubject     map[string]string
	byFingerprint map[string]string // by certid.Parse's form
	onReject      func(string)
	next          http.Handler
}

// NewClientCertCheck returns a handler that maps the client certificate
// the listener verified to a partner and records it in the request's
// Identity (Partner, CertFingerprint) and observe.Record.
//
// Only a certificate the listener verified counts
// (len(r.TLS.VerifiedChains) > 0); the listener checks the chain and
// revocation, this stage only names the partner. A subject or fingerprint
// listed for two partners is a configuration error.
func NewClientCertCheck(o ClientCertOptions, next http.Handler) (http.Handler, error) {
	if next == nil {
		return nil, errors.New("client cert check: next handler is nil")
	}
	c := &clientCertCheck{
		required:      o.Required,
		anyPartner:    len(o.Partners) > 0,
		bySubject:     make(map[string]string),
		byFingerprint: make(map[string]string),
		onReject:      o.OnReject,
		next:          next,
	}
	if c.onReject == nil {
		c.onReject = func(string) {}
	}
	var errs []error
	// Sorted so that errors come out in a stable order.
	names := make([]string, 0, len(o.Partners))
	for name := range o.Partners {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		m := o.Partners[name]
		if name == "" {
			errs = append(errs, errors.New("client cert partner with empty name"))
			continue
		}
		if len(m.Subjects) == 0 && len(m.Fingerprints) == 0 {
			errs = append(errs, fmt.Errorf("client cert partner %q: no subjects or fingerprints", name))
		}
		for _, s := range m.Subjects {
			if s == "" {
				errs = append(errs, fmt.Errorf("client cert partner %q: empty subject", name))
				continue
			}
			if other, ok := c.bySubject[s]; ok && other != name {
				errs = append(errs, fmt.Errorf("client cert partner %q: subject %q is also partner %q's", name, s, other))
				continue
			}
			c.bySubject[s] = name
		}
		for _, f := range m.Fingerprints {
			d, err := certid.Parse(f)
			if err != nil {
				errs = append(errs, fmt.Errorf("client cert partner %q: %w", name, err))
				continue
			}
			if other, ok := c.byFingerprint[d]; ok && other != name {
				errs = append(errs, fmt.Errorf("client cert partner %q: fingerprint %q is also partner %q's", name, f, other))
				continue
			}
			c.byFingerprint[d] = name
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *clientCertCheck) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
		if c.required {
			c.reject(w, r, ReasonMissing, "client cert: none verified")
			return
		}
		c.next.ServeHTTP(w, r)
		return
	}
	leaf := leafInfoOf(r.TLS.PeerCertificates[0])
	// The fingerprint is the more specific match, so it wins over a
	// subject naming another partner.
	partner, ok := c.byFingerprint[leaf.fingerprint]
	if !ok {
		partner, ok = c.bySubject[leaf.subject]
	}
	if !ok && c.required && c.anyPartner {
		c.reject(w, r, ReasonInvalid, "client cert: no partner matches")
		return
	}

	ctx := r.Context()
	id := Identity{CertFingerprint: leaf.fingerprint, Partner: partner}
	if prev := identityFrom(ctx); prev != nil {
		if prev.Partner != "" && partner != "" && prev.Partner != partner {
			c.reject(w, r, ReasonMismatch, "client cert: partner differs from api key's")
			return
		}
		merged := *prev
		merged.CertFingerprint = id.CertFingerprint
		if merged.Partner == "" {
			merged.Partner = partner
		}
		id = merged
	}
	if id.Partner != "" {
		observe.RecordFrom(ctx).Partner = id.Partner
	}
	c.next.ServeHTTP(w, r.WithContext(WithIdentity(ctx, id)))
}

func (c *clientCertCheck) reject(w http.ResponseWriter, r *http.Request, reason, detail string) {
	c.onReject(reason)
	observe.RecordFrom(r.Context()).Error = detail
	gwresponse.Write(w, gwresponse.InvalidAPIKey)
}
