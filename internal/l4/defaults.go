package l4

import "time"

// Defaults are collected here so the values a zero option stands for are
// easy to find.
const (
	// DefaultHelloTimeout bounds how long a client may take to send its
	// ClientHello (passthrough) or to complete the handshake (terminate),
	// so idle sockets cannot pile up before routing.
	DefaultHelloTimeout = 10 * time.Second
	// DefaultIdleTimeout closes a connection with no bytes either way for
	// this long: AWS Network Load Balancer's TCP idle timeout.
	DefaultIdleTimeout = 350 * time.Second
	// DefaultDialTimeout bounds connecting to one target.
	DefaultDialTimeout = 5 * time.Second
)

// maxHelloBytes bounds what is read while looking for the ClientHello:
// crypto/tls takes a ClientHello of up to 64 KiB, plus record headers.
const maxHelloBytes = 64<<10 + 1024

// copyBufferBytes is the size of each direction's copy buffer.
const copyBufferBytes = 32 << 10
