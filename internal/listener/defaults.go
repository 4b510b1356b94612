package listener

import (
	"crypto/tls"
	"time"
)

// Defaults are collected here so the values a zero [Options] field stands
// for are in one place.
const (
	// DefaultMinVersion is the lowest TLS version accepted when
	// Options.MinVersion is zero.
	DefaultMinVersion uint16 = tls.VersionTLS12

	// DefaultReadHeaderTimeout applies when Options.ReadHeaderTimeout is
	// zero. A partner-facing listener without one can be held open by
	// clients that trickle header bytes (slowloris).
	DefaultReadHeaderTimeout = 10 * time.Second

	// DefaultIdleTimeout applies when Options.IdleTimeout is zero.
	DefaultIdleTimeout = 120 * time.Second

	// DefaultKeepAlive is the TCP keep-alive idle time on accepted
	// connections, so peers that vanish without a FIN are eventually noticed.
	DefaultKeepAlive = 30 * time.Second

	// watchDebounce is how long Watch waits after the last file event
	// before reloading, so that a cert and key replaced one after the other
	// are read as a pair.
	watchDebounce = 100 * time.Millisecond
)
