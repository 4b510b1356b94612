package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/internal/counters"
)

const (
	// DefaultPrefix starts every key drawbridge writes. Its hash tag puts
	// them all in one Cluster slot, which the multi-key scripts need.
	DefaultPrefix = "{drawbridge}:"
	// DefaultTimeout bounds each operation, retries included: long enough
	// for a loaded Redis on the LAN, short enough that a request does not
	// hang when Redis is gone and the failure mode can decide.
	DefaultTimeout = 500 * time.Millisecond
)

// Options configures a Store.
type Options struct {
	// Addrs are host:port addresses. One address is a single node; several
	// are Cluster nodes, or Sentinels when MasterName is set.
	Addrs []string
	// MasterName is the Sentinel master's name; empty means no Sentinel.
	MasterName string
	// Username and Password authenticate to Redis; they are never logged.
	// Sentinels are reached without a password.
	Username, Password string
	// DB is the database number; Cluster only has 0.
	DB int
	// Prefix starts every key. If empty, DefaultPrefix is used. On Cluster
	// it must contain a hash tag such as "{drawbridge}".
	Prefix string
	// Timeout bounds each operation. If zero, DefaultTimeout is used.
	Timeout time.Duration
	// TLS, if not nil, makes every connection TLS with a clone of this
	// config, to Sentinels and Cluster nodes too; nil means plaintext.
	// There is no fallback: a failed handshake fails the operation with
	// store.ErrUnavailable. When TLS.ServerName is empty, each connection
	// sends the host of the address it dials as SNI. Verification is the
	// config's business: build it with transport.NewTLSConfig.
	TLS *tls.Config
	// Logger receives a warning when Redis becomes unreachable and a note
	// when it is back, once per change rather than once per request. If
	// nil, slog.Default() is used. (go-redis's own log, which is
	// process-wide, goes to slog.Default() at debug level.)
	Logger *slog.Logger
}

// Store is a store.Store in Redis. It is safe for concurrent use, also by
// several processes sharing one Redis.
type Store struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	log     *slog.Logger
	down    atomic.Bool
	meter   *meterBatcher

	keysKey, keyHashKey, plansKey string

	// days names the UTC day a request is counted on.
	days timeName
	// args keeps the arguments of metering calls.
	args meterArgs
}

var _ store.Store = (*Store)(nil)

// New returns a Store for o. It does not contact Redis, so a gateway can
// start while Redis is down; operations return store.ErrUnavailable until
// it is up.
func New(o Options) (*Store, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("redis store: no addresses")
	}
	for _, a := range o.Addrs {
		if a == "" {
			return nil, errors.New("redis store: empty address")
		}
	}
	if o.Timeout < 0 {
		return nil, fmt.Errorf("redis store: negative timeout %v", o.Timeout)
	}
	if o.DB < 0 {
		return nil, fmt.Errorf("redis store: negative db %d", o.DB)
	}
	prefix := o.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	cluster := o.MasterName == "" && len(o.Addrs) > 1
	if cluster {
		if !hasHashTag(prefix) {
			return nil, fmt.Errorf("redis store: prefix %q has no hash tag such as {drawbridge}; Cluster needs one so that each script's keys share a slot", prefix)
		}
		if o.DB != 0 {
			return nil, fmt.Errorf("redis store: db %d on Cluster, which only has db 0", o.DB)
		}
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	quietLibrary.Do(func() { redis.SetLogger(debugLogger{}) })
	var tlsConfig *tls.Config
	if o.TLS != nil {
		// go-redis keeps the config it is given; a clone keeps the
		// caller's later changes out of live connections.
		tlsConfig = o.TLS.Clone()
	}

	uo := &redis.UniversalOptions{
		Addrs:      o.Addrs,
		MasterName: o.MasterName,
		Username:   o.Username,
		Password:   o.Password,
		DB:         o.DB,
		ClientName: "drawbridge",
		TLSConfig:  tlsConfig,
		// The operation's context carries Timeout; the socket timeouts
		// equal it so that a slow reply ends the operation instead of
		// being retried, which could run a counting script twice.
		ContextTimeoutEnabled: true,
		DialTimeout:           timeout,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		// A refused connection means Redis is down: say so at once rather
		// than redialing until the deadline, so that every request does
		// not wait Timeout before the failure mode applies. One retry
		// covers a pooled connection that a restarted Redis closed.
		DialerRetries: 1,
		MaxRetries:    1,
		// Maintenance notifications are a Redis Enterprise feature; asking
		// plain Redis for them only costs a round trip per connection.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	client := redis.NewUniversalClient(uo)
	// Metering has a client of its own that never retries: go-redis
	// resends a whole pipeline when a connection fails after some replies
	// were read, and each script that had replied would count twice. A
	// stale pooled connection then fails one batch (the failure mode
	// applies) instead.
	mo := *uo
	mo.MaxRetries = -1
	meterClient := redis.NewUniversalClient(&mo)
	s := &Store{
		client:     client,
		prefix:     prefix,
		timeout:    timeout,
		log:        log,
		keysKey:    prefix + "keys",
		keyHashKey: prefix + "keyhash",
		plansKey:   prefix + "plans",
		days:       timeName{layout: counters.DayFormat, per: 24 * 60 * 60},
	}
	s.meter = newMeterBatcher(s, meterClient)
	s.args.s = s
	return s, nil
}

// quietLibrary routes go-redis's own log, which is process-wide, once.
var quietLibrary sync.Once

// debugLogger sends go-redis's log to slog.Default at debug level. go-redis
// logs every failed dial, which while Redis is down would be a line per
// request; the Store logs each change of availability instead.
type debugLogger struct{}

func (debugLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}

// hasHashTag reports whether keys starting with prefix hash by a Cluster
// hash tag inside prefix: the first "{" followed, within prefix, by a "}"
// with at least one byte between.
func hasHashTag(prefix string) bool {
	i := strings.IndexByte(prefix, '{')
	if i < 0 {
		return false
	}
	j := strings.IndexByte(prefix[i+1:], '}')
	return j > 0
}

// Ping checks that Redis answers, for health checks and doctor.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	return s.check(ctx, "pinging redis", s.client.Ping(ctx).Err())
}

// Close releases the connections. The store must not be used afterwards.
func (s *Store) Close() error {
	s.meter.close()
	s.meter.client.Close()
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("closing redis client: %w", err)
	}
	return nil
}

func (s *Store) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// check turns err from a Redis call done as op into the store's errors:
// nil stays nil, anything that means Redis cannot serve us wraps
// store.ErrUnavailable, and a reply error from a working server (a bug)
// is wrapped alone. Callers handle redis.Nil before calling check.
func (s *Store) check(ctx context.Context, op string, err error) error {
	if err == nil {
		s.up()
		return nil
	}
	return s.fail(ctx, op, err)
}

// checkOp is check with op = fmt.Sprintf(format, arg), formatted only on
// failure: the success path of a counting call runs on every request.
func (s *Store) checkOp(ctx context.Context, err error, format, arg string) error {
	if err == nil {
		s.up()
		return nil
	}
	return s.fail(ctx, fmt.Sprintf(format, arg), err)
}

// up notes a successful call, logging once when Redis is back. Hot paths
// call it and fail directly, so that they format op only on failure.
func (s *Store) up() {
	if s.down.Load() && s.down.CompareAndSwap(true, false) {
		s.log.Info("redis store available again")
	}
}

// fail is check for an err that is not nil.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		// The caller gave up; Redis may be fine.
		return fmt.Errorf("%s: %w", op, err)
	}
	if !unavailable(err) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if s.down.CompareAndSwap(false, true) {
		s.log.Warn("redis store unavailable", "op", op, "error", err.Error())
	}
	return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
}

// unavailable reports whether err means Redis cannot serve requests now, as
// opposed to a reply error from a working server.
func unavailable(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		// Network errors, timeouts, EOF, a closed client or pool.
		return true
	}
	switch {
	case redis.IsLoadingError(err), redis.IsReadOnlyError(err),
		redis.IsClusterDownError(err), redis.IsTryAgainError(err),
		redis.IsMasterDownError(err), redis.IsMaxClientsError(err),
		redis.IsNoReplicasError(err), redis.IsOOMError(err),
		redis.IsAuthError(err), redis.IsPermissionError(err),
		redis.HasErrorPrefix(err, "BUSY"):
		return true
	}
	return false
}
