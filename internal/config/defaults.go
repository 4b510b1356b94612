package config

import "time"

// Defaults are collected in this file so that the values a missing key stands
// for are easy to find and, for distributions, to patch.
const (
	// DefaultAdminAddr keeps the admin listener on loopback: it serves
	// metrics and the admin API, which partners must not reach.
	DefaultAdminAddr = "127.0.0.1:9090"
	// DefaultShutdownGrace is how long SIGTERM waits for in-flight requests.
	DefaultShutdownGrace = 30 * time.Second

	// DefaultReadHeaderTimeout bounds slow-loris clients.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout closes idle keep-alive connections.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultTCPIdleTimeout closes a tcp listener's connection after this
	// long with no bytes either way: AWS Network Load Balancer's value.
	DefaultTCPIdleTimeout = 350 * time.Second
	// DefaultTCPMaxConnections caps a tcp listener's open connections: each
	// holds up to ~150 KiB while its ClientHello is read, then two copy
	// buffers and a target socket, so an unbounded flood would exhaust
	// memory or file descriptors.
	DefaultTCPMaxConnections = 10000
	// DefaultMaxHeaderBytes is net/http's own default (1 MiB).
	DefaultMaxHeaderBytes = 1 << 20
	// DefaultMaxBodyBytes is API Gateway's payload limit (10 MiB).
	DefaultMaxBodyBytes = 10 << 20
	// DefaultListenerMinVersion is the lowest TLS version partners may use.
	DefaultListenerMinVersion = "1.2"

	// DefaultBalance is the load-balancing policy of an upstream.
	DefaultBalance = "round_robin"
	// DefaultDNSRefresh is how often host-name targets are re-resolved.
	DefaultDNSRefresh = 30 * time.Second
	// DefaultDialTimeout bounds TCP connect plus TLS handshake to a target.
	DefaultDialTimeout = 5 * time.Second
	// DefaultMaxIdleConnsPerTarget is the keep-alive pool size per target.
	DefaultMaxIdleConnsPerTarget = 64
	// DefaultUpstreamMinVersion is the lowest TLS version spoken to backends.
	DefaultUpstreamMinVersion = "1.2"

	// DefaultHealthInterval is the time between active checks of a target.
	DefaultHealthInterval = 10 * time.Second
	// DefaultHealthTimeout bounds one active check.
	DefaultHealthTimeout = 2 * time.Second
	// DefaultHealthyThreshold consecutive successes mark a target up.
	DefaultHealthyThreshold = 2
	// DefaultUnhealthyThreshold consecutive failures mark a target down.
	DefaultUnhealthyThreshold = 3

	// DefaultPassiveMaxFails connect/TLS failures within
	// DefaultPassiveFailWindow eject a target for DefaultPassiveEjectFor.
	DefaultPassiveMaxFails   = 3
	DefaultPassiveFailWindow = 10 * time.Second
	DefaultPassiveEjectFor   = 30 * time.Second

	// DefaultRouteTimeout is API Gateway's integration timeout (29 s).
	DefaultRouteTimeout = 29 * time.Second
	// DefaultMethod matches every HTTP method.
	DefaultMethod = "ANY"

	// DefaultStoreType is the embedded store: state survives restarts with
	// nothing else to run.
	DefaultStoreType = "bolt"
	// DefaultStorePath is the bolt file, beside the config file.
	DefaultStorePath = "drawbridge.db"

	// DefaultLogLevel is the lowest level logged.
	DefaultLogLevel = "info"
	// DefaultAccessLog is where access-log lines go.
	DefaultAccessLog = "stderr"
)

// DefaultHTTP2 offers HTTP/2 to backends, used when they select it.
const DefaultHTTP2 = true

// Store defaults.
const (
	// DefaultFlushInterval is bolt's durability window for counters.
	DefaultFlushInterval = time.Second
	// DefaultStoreTimeout bounds one Redis operation.
	DefaultStoreTimeout = 500 * time.Millisecond
	// DefaultStorePrefix is a Redis Cluster hash tag, so that every key
	// lands in one slot and scripts may touch several.
	DefaultStorePrefix = "{drawbridge}:"
	// DefaultStoreOnError refuses metered requests while the store is
	// unreachable: security by default means no unmetered traffic.
	DefaultStoreOnError = "fail_closed"
)

// ACME defaults.
const (
	// DefaultACMECA is Let's Encrypt's production directory.
	DefaultACMECA = "https://acme-v02.api.letsencrypt.org/directory"
	// DefaultACMEStorage is the folder of ACME certificates and account
	// keys, beside the bolt file (or the config file).
	DefaultACMEStorage = "acme"
)
