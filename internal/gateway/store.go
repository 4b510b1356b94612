package gateway

import (
	"errors"

	"github.com/drawbridge-gw/drawbridge/internal/config"
	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// OpenStore opens the state store cfg names (memory, bolt or redis).
// The caller closes it.
func OpenStore(cfg *config.Config) (store.Store, error) {
	return nil, errors.New("store: not wired yet")
}
