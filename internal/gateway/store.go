package gateway

import (
	"fmt"
	"log/slog"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/bolt"
	"github.com/drawbridge-gw/drawbridge/internal/store/memory"
	"github.com/drawbridge-gw/drawbridge/internal/store/redisstore"
)

// OpenStore opens the state store cfg names: memory, bolt (the default)
// or redis. The caller closes it. Secrets in the config (the Redis
// password) are passed on, never logged.
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
		st, err := redisstore.New(redisstore.Options{
			Addrs:      s.Addrs,
			MasterName: s.MasterName,
			Username:   s.Username,
			Password:   s.Password,
			DB:         s.DB,
			Prefix:     s.Prefix,
			Timeout:    s.Timeout.D(),
			Logger:     logger,
		})
		if err != nil {
			return nil, fmt.Errorf("%s:%d: store: %w", cfg.File, s.Line, err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("%s:%d: store: unknown type %q", cfg.File, s.Line, s.Type)
}
