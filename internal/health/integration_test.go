package health

import "github.com/drawbridge-gw/drawbridge/internal/upstream"

// The lead wires pool targets straight into checks.
var _ StatusSetter = (*upstream.Target)(nil)
