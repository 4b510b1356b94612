package doctor

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/acme"
	"github.com/drawbridge-gw/drawbridge/internal/config"
)

// checkACME reports each ACME domain of a listener: the certificate in
// its storage folder, read without contacting the CA. The gateway renews
// a third of a certificate's lifetime before it ends, so one within
// ExpiryWarning of its end means renewals are failing.
func checkACME(ctx context.Context, lc config.Listener, now time.Time) []Hop {
	a := lc.TLS.ACME
	if a == nil {
		return nil
	}
	var hops []Hop
	unreachable := challengeProblem(lc)
	for _, c := range acme.Stored(ctx, a.CA, a.Storage, a.Domains) {
		h := Hop{Kind: KindListener, Name: lc.Name, Target: c.Domain}
		if c.Serial == "" {
			h.Status = Warn
			h.Detail = "acme: no certificate stored yet in " + quote(a.Storage)
			h.Fix = fmt.Sprintf("the gateway orders it from %s when it starts: %s must resolve to this gateway, and the CA must reach it on port 443 (TLS-ALPN-01) or on http_addr at port 80 (HTTP-01); its log says why an order failed", a.CA, c.Domain)
			hops = append(hops, h)
			continue
		}
		left := c.NotAfter.Sub(now)
		days := fmt.Sprintf("%d days left", int(left/(24*time.Hour)))
		h.Status = OK
		h.Detail = fmt.Sprintf("acme cert %s, issuer %s, %s", strings.Join(c.Names, " "), c.Issuer, days)
		const fix = "renewal is overdue: look for \"renewing ACME certificate failed\" in the gateway's log (it has the CA's error), check that the CA is reachable and the name still resolves to this gateway"
		switch {
		case left <= 0:
			h.Status, h.Detail, h.Fix = Fail, fmt.Sprintf("acme cert %s expired %s", strings.Join(c.Names, " "), day(c.NotAfter)), fix
		case left < ExpiryWarning:
			h.Status, h.Detail, h.Fix = Warn, h.Detail+" (expires "+day(c.NotAfter)+")", fix
		}
		if unreachable != "" && h.Status == OK {
			h.Status, h.Fix = Warn, unreachable
			h.Detail += ", renewal cannot be validated"
		}
		hops = append(hops, h)
	}
	return hops
}

// challengeProblem says why a public CA could not validate the listener's
// names, or returns "". Public CAs validate TLS-ALPN-01 on port 443 and
// HTTP-01 on port 80 only (RFC 8737, RFC 8555 section 8.3); a private CA
// may be told other ports, so only the default CA is judged.
func challengeProblem(lc config.Listener) string {
	if lc.TLS.ACME.CA != config.DefaultACMECA {
		return ""
	}
	_, tlsPort, _ := net.SplitHostPort(lc.Addr)
	_, httpPort, _ := net.SplitHostPort(lc.HTTPAddr)
	if tlsPort == "443" || httpPort == "80" {
		return ""
	}
	return fmt.Sprintf("Let's Encrypt validates on port 443 (TLS-ALPN-01) or port 80 (HTTP-01), and this listener has neither (addr %s, http_addr %q): listen on :443, add http_addr: 0.0.0.0:80, or forward those ports here", lc.Addr, lc.HTTPAddr)
}
