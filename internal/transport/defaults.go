package transport

import (
	"crypto/tls"
	"time"
)

// Defaults applied when the matching Options field is zero.
const (
	DefaultMinVersion          = tls.VersionTLS12
	DefaultDialTimeout         = 5 * time.Second
	DefaultMaxIdleConnsPerHost = 64
	// DefaultIdleConnTimeout is how long an idle backend connection is kept,
	// the same as http.DefaultTransport.
	DefaultIdleConnTimeout = 90 * time.Second
)

// nextProtos offers HTTP/2 first; a backend that does not select it via
// ALPN gets HTTP/1.1.
var nextProtos = []string{"h2", "http/1.1"}
