package l4

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
)

// errPeeked stops crypto/tls once the ClientHello is read: the handshake
// is the target's to answer.
var errPeeked = errors.New("l4: ClientHello read; handshake left to the target")

// errHelloTooBig is a ClientHello larger than maxHelloBytes.
var errHelloTooBig = errors.New("ClientHello too large")

// errNoWrite refuses what crypto/tls would send to the client (an alert
// after errPeeked): in passthrough, only the target ever writes TLS to
// the client.
var errNoWrite = errors.New("l4: peeking connection is read-only")

// recordingConn is a read-only view of a client connection that keeps
// every byte read, so that after peeking they can be replayed to the
// target exactly as the client sent them.
type recordingConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	room := maxHelloBytes - c.buf.Len()
	if room <= 0 {
		return 0, errHelloTooBig
	}
	if len(p) > room {
		p = p[:room]
	}
	n, err := c.Conn.Read(p)
	c.buf.Write(p[:n])
	return n, err
}

func (c *recordingConn) Write([]byte) (int, error) { return 0, errNoWrite }

// peekHello reads the client's ClientHello without answering it, and
// returns the server name it asks for ("" for none) and every byte read,
// which the target must receive first. The caller bounds the read with a
// deadline on c.
//
// crypto/tls does the parsing: a server handshake over a recording,
// read-only view of c stops in GetConfigForClient, which sees the parsed
// hello. So SNI is read exactly as a Go TLS server reads it.
func peekHello(c net.Conn) (sni string, hello []byte, err error) {
	rc := &recordingConn{Conn: c}
	var info *tls.ClientHelloInfo
	cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		info = h
		return nil, errPeeked
	}}
	err = tls.Server(rc, cfg).Handshake()
	if info == nil {
		if err == nil {
			err = errors.New("no ClientHello")
		}
		return "", nil, fmt.Errorf("reading the TLS ClientHello: %w", err)
	}
	return info.ServerName, rc.buf.Bytes(), nil
}
