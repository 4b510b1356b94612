package doctor

import (
	"context"
	"fmt"
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
		hops = append(hops, h)
	}
	return hops
}
