package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// StatusSetter receives health verdicts. *upstream.Target implements it.
type StatusSetter interface {
	SetHealthy(up bool)
}

// StatusSetterFunc is an adapter to allow the use of ordinary functions as
// status setters.
type StatusSetterFunc func(up bool)

// SetHealthy calls f(up).
func (f StatusSetterFunc) SetHealthy(up bool) { f(up) }

var _ StatusSetter = StatusSetterFunc(nil)

// startsUp is the verdict a checker starts from: the target's own when it
// can tell (a target carried over a config reload may be known down, and
// must stay so until it passes HealthyThreshold checks), else healthy, so
// traffic flows at start.
func startsUp(s StatusSetter) bool {
	if h, ok := s.(interface{ Healthy() bool }); ok {
		return h.Healthy()
	}
	return true
}

// Options configures the active checks of one upstream. Zero fields take
// the documented defaults.
type Options struct {
	// Path, with an optional query, is requested relative to each target's
	// URL, e.g. "/healthz". It defaults to DefaultPath.
	Path string
	// Interval between the starts of two checks of one target. It defaults
	// to DefaultInterval.
	Interval time.Duration
	// Timeout bounds one check. It defaults to DefaultTimeout.
	Timeout time.Duration
	// Host is sent as the Host header (HTTP/2 :authority) of every check.
	// If empty, the target URL's host:port is sent. Set it to what the
	// proxy sends (the upstream's server_name), so that a virtual-host
	// load balancer routes checks where it routes real traffic.
	Host string
	// HealthyThreshold consecutive successes mark a down target up. It
	// defaults to DefaultHealthyThreshold.
	HealthyThreshold int
	// UnhealthyThreshold consecutive failures mark an up target down. It
	// defaults to DefaultUnhealthyThreshold.
	UnhealthyThreshold int
	// Logger receives state changes. If nil, slog.Default() is used.
	Logger *slog.Logger
	// Upstream names the upstream in logs.
	Upstream string
	// OnResult, if set, is called after every check with the check's name,
	// whether this one check succeeded, how long it took and, on failure,
	// why (err is nil exactly when up is true). It runs on the check's
	// goroutine, so it must not block; metrics record results here.
	OnResult func(target string, up bool, latency time.Duration, err error)
	// Probe, if set, replaces the GET: it checks the target whose base URL
	// is u and returns nil when the target is healthy. Path, Host and the
	// client are then unused. [TCPProbe] and [TLSProbe] are the L4 tier's
	// checks; thresholds, timeout and verdicts work as for GETs.
	Probe func(ctx context.Context, u *url.URL) error
}

// Check is one target to check.
type Check struct {
	// URL is the target's base URL, scheme://host:port; Options.Path is
	// appended to it.
	URL *url.URL
	// Target receives the verdicts.
	Target StatusSetter
	// Name identifies the target in logs and OnResult. It defaults to
	// URL.Host.
	Name string
}

// Run checks every Check on its own ticker until ctx is done, then returns
// once all its goroutines have stopped; call it with go.
//
// A check is a GET of URL+Path with Timeout, sent with client (the
// upstream's verified transport; nil means http.DefaultClient). Redirects
// are not followed: 2xx and 3xx responses are successes; any other status,
// a transport error or a TLS verification error is a failure. Each target
// starts healthy, so traffic flows at start, and its first check runs at
// once. After UnhealthyThreshold consecutive failures the target is set
// down, after HealthyThreshold consecutive successes up again.
//
// Invalid options or checks are logged and skipped, never panicked on.
func Run(ctx context.Context, o Options, client *http.Client, checks []Check) {
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("upstream", o.Upstream)
	o, path, err := withDefaults(o)
	if err != nil {
		logger.Error("health checks not started", "error", err)
		return
	}
	if client == nil {
		client = http.DefaultClient
	}
	// A shallow copy shares the transport and its connection pool; only the
	// redirect policy differs, because a 3xx must be judged as itself.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	var wg sync.WaitGroup
	for i, ch := range checks {
		if ch.URL == nil || ch.Target == nil {
			logger.Error("health check skipped: missing URL or target", "check", i, "name", ch.Name)
			continue
		}
		name := ch.Name
		if name == "" {
			name = ch.URL.Host
		}
		k := &checker{
			opts:   o,
			client: &c,
			url:    joinURL(ch.URL, path),
			base:   ch.URL,
			name:   name,
			target: ch.Target,
			logger: logger.With("target", name),
			up:     startsUp(ch.Target),
		}
		wg.Go(func() { k.run(ctx) })
	}
	wg.Wait()
}

// withDefaults fills zero fields and parses Path.
func withDefaults(o Options) (Options, *url.URL, error) {
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.HealthyThreshold == 0 {
		o.HealthyThreshold = DefaultHealthyThreshold
	}
	if o.UnhealthyThreshold == 0 {
		o.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
	if o.Interval < 0 || o.Timeout < 0 || o.HealthyThreshold < 0 || o.UnhealthyThreshold < 0 {
		return o, nil, fmt.Errorf("negative interval %v, timeout %v or threshold %d/%d",
			o.Interval, o.Timeout, o.HealthyThreshold, o.UnhealthyThreshold)
	}
	// Caught here, a bad Host is one log line; sent, it would fail every
	// check and take every target down.
	if o.Host != "" && !httpguts.ValidHostHeader(o.Host) {
		return o, nil, fmt.Errorf("health check host %q: not a valid Host header", o.Host)
	}
	path, err := url.Parse(o.Path)
	if err != nil {
		return o, nil, fmt.Errorf("parsing health check path %q: %w", o.Path, err)
	}
	if path.Scheme != "" || path.Host != "" || !strings.HasPrefix(path.Path, "/") {
		return o, nil, fmt.Errorf("health check path %q: want an absolute path such as /healthz", o.Path)
	}
	return o, path, nil
}

// joinURL appends path (and its query) to the base URL's path.
func joinURL(base, path *url.URL) string {
	u := *base
	u.Path = strings.TrimSuffix(u.Path, "/") + path.Path
	u.RawPath = ""
	u.RawQuery = path.RawQuery
	u.Fragment = ""
	return u.String()
}

// checker checks one target; its counters belong to its goroutine.
type checker struct {
	opts   Options
	client *http.Client
	url    string
	base   *url.URL
	name   string
	target StatusSetter
	logger *slog.Logger

	up        bool
	successes int
	failures  int
}

func (k *checker) run(ctx context.Context) {
	k.target.SetHealthy(k.up)
	k.probe(ctx)
	tick := time.NewTicker(k.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			k.probe(ctx)
		}
	}
}

// probe runs one check and records it. A panic (say, in OnResult or a
// custom transport) is logged and the next tick still runs.
func (k *checker) probe(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			k.logger.Error("panic in health check", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	start := time.Now()
	err := k.get(ctx)
	latency := time.Since(start)
	if ctx.Err() != nil {
		return // shutting down: an aborted check is no verdict
	}
	k.record(err)
	if k.opts.OnResult != nil {
		k.opts.OnResult(k.name, err == nil, latency, err)
	}
}

// errStatus is the failure of a check answered with a status outside
// 2xx and 3xx.
var errStatus = errors.New("unhealthy status")

func (k *checker) get(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, k.opts.Timeout)
	defer cancel()
	if k.opts.Probe != nil {
		return k.opts.Probe(ctx, k.base)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return fmt.Errorf("building request for %s: %w", k.url, err)
	}
	if k.opts.Host != "" {
		req.Host = k.opts.Host
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := k.client.Do(req)
	if err != nil {
		return err // *url.Error already names the method and URL
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("GET %s: %w %d", k.url, errStatus, resp.StatusCode)
	}
	return nil
}

// record turns one result into the consecutive counts and, at a threshold,
// a state change.
func (k *checker) record(err error) {
	if err == nil {
		k.failures = 0
		k.successes++
		if !k.up && k.successes >= k.opts.HealthyThreshold {
			k.up = true
			k.target.SetHealthy(true)
			k.logger.Info("target healthy again", "successes", k.successes)
		}
		return
	}
	k.successes = 0
	k.failures++
	if k.up && k.failures >= k.opts.UnhealthyThreshold {
		k.up = false
		k.target.SetHealthy(false)
		k.logger.Warn("target unhealthy", "failures", k.failures, "reason", err)
	}
}
