package doctor

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/gateway"
)

// checkStore checks the hop to a Redis store: that it answers, over TLS
// verified as the gateway verifies it when store.tls is set, and what it
// holds. Memory and bolt stores are in the process or on disk, so they have
// no hop (and a running gateway holds the bolt file's lock).
func checkStore(ctx context.Context, cfg *config.Config, timeout time.Duration) []Hop {
	s := cfg.Store
	if s.Type != "redis" {
		return nil
	}
	addrs := s.Addrs
	if len(addrs) == 0 && s.Addr != "" {
		addrs = []string{s.Addr}
	}
	h := Hop{Kind: KindStore, Name: "redis", Target: strings.Join(addrs, ",")}
	if s.MasterName != "" {
		h.Target = fmt.Sprintf("%s (sentinel master %q)", h.Target, s.MasterName)
	}
	st, err := gateway.OpenStore(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		h.Status, h.Detail, h.Fix = Fail, oneLine(err), "fix the store section of the config"
		return []Hop{h}
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pinger, ok := st.(interface{ Ping(context.Context) error })
	if ok {
		if err := pinger.Ping(ctx); err != nil {
			h.Status, h.Detail = Fail, oneLine(err)
			h.Fix = "start Redis or correct store.addr" + tlsHint(s) +
				"; until it answers, throttles and quotas follow store.on_error (" + s.OnError + ")"
			return []Hop{h}
		}
	}
	keys, kerr := st.ListKeys(ctx)
	plans, perr := st.ListPlans(ctx)
	if kerr != nil || perr != nil {
		h.Status, h.Detail = Fail, oneLine(cmp.Or(kerr, perr))
		h.Fix = "check store.password and store.prefix, and that this user may run scripts and read the keys"
		return []Hop{h}
	}
	h.Status = OK
	h.Detail = fmt.Sprintf("answers; %s, %s under prefix %q%s", count(len(keys), "key"), count(len(plans), "plan"), s.Prefix, tlsDetail(s))
	if len(plans) == 0 && len(cfg.Plans) == 0 {
		h.Status, h.Fix = Warn, "no usage plans: create one (plans: in the config, or the admin API) before keys"
	}
	return []Hop{h}
}

func tlsHint(s config.Store) string {
	if s.TLS == nil {
		return ""
	}
	return ", and check store.tls (ca, server_name) against the server's certificate"
}

func tlsDetail(s config.Store) string {
	if s.TLS == nil {
		return ", plaintext"
	}
	return ", TLS verified"
}

// count is "1 key" or "2 keys".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
