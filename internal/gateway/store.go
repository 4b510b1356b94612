package gateway

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/bolt"
	"github.com/drawbridge-gw/drawbridge/internal/store/memory"
	"github.com/drawbridge-gw/drawbridge/internal/store/redisstore"
	"github.com/drawbridge-gw/drawbridge/internal/transport"
)

// OpenStore opens the state store cfg names: memory, bolt (the default)
// or redis. The caller closes it. Secrets in the config (the Redis
// password) are passed on, never logged. With store.tls, Redis is reached
// over TLS only and its certificate verified as an upstream's is.
func OpenStore(cfg *config.Config, logger *slog.Logger) (store.Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := cfg.Store
	switch s.Type {
	case "memory":
		return memory.New(memory.Options{}), nil
	case "bolt":
		st, err := bolt.Open(s.Path, bolt.Options{FlushInterval: s.FlushInterval.D(), Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("%s:%d: store: %w", cfg.File, s.Line, err)
		}
		return st, nil
	case "redis":
		addrs := s.Addrs
		if len(addrs) == 0 && s.Addr != "" {
			// A Config not made by Load has not folded Addr into Addrs.
			addrs = []string{s.Addr}
		}
		o := redisstore.Options{
			Addrs:      addrs,
			MasterName: s.MasterName,
			Username:   s.Username,
			Password:   s.Password,
			DB:         s.DB,
			Prefix:     s.Prefix,
			Timeout:    s.Timeout.D(),
			Logger:     logger,
		}
		if s.TLS != nil {
			tc, err := storeTLS(&s, addrs)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: store: %w", cfg.File, s.TLS.Line, err)
			}
			o.TLS = tc
		}
		st, err := redisstore.New(o)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: store: %w", cfg.File, s.Line, err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("%s:%d: store: unknown type %q", cfg.File, s.Line, s.Type)
}

// storeTLS builds the verification of Redis's certificate that s.TLS
// describes, the same as an upstream's.
//
// The name verified is tls.server_name, else the host of the first address,
// for every node. It is fixed rather than taken from each dial because
// crypto/tls hides an IP address dialed from the verification (no SNI is
// sent for IPs), and Cluster and Sentinel hand out nodes by IP: one name
// lets a certificate shared by the nodes verify on all of them.
func storeTLS(s *config.Store, addrs []string) (*tls.Config, error) {
	t := s.TLS
	name := t.ServerName
	if name == "" && len(addrs) > 0 {
		host, _, err := net.SplitHostPort(addrs[0])
		if err != nil {
			return nil, fmt.Errorf("tls: server name from addr %q: %w", addrs[0], err)
		}
		name = host
	}
	var minVersion uint16
	switch t.MinVersion {
	case "", "1.2":
		minVersion = tls.VersionTLS12
	case "1.3":
		minVersion = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("tls: min_version must be 1.2 or 1.3, got %q", t.MinVersion)
	}
	return transport.NewTLSConfig(transport.Options{
		Upstream:       "store",
		ServerName:     name,
		CAFile:         t.CA,
		Pins:           t.Pins,
		SystemRoots:    t.SystemRoots,
		ClientCertFile: t.ClientCert,
		ClientKeyFile:  t.ClientKey,
		// Validation refuses insecure_skip_verify without allow_insecure;
		// requiring both here too keeps a Config built elsewhere honest.
		InsecureSkipVerify: t.InsecureSkipVerify && s.AllowInsecure,
		MinVersion:         minVersion,
	})
}
