// Package dnstest runs a real DNS server on loopback for tests that need a
// host name whose address changes while a gateway runs.
package dnstest

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// Server is a tiny authoritative DNS server on loopback UDP that answers
// A queries for one name from a list the test can change, NXDOMAIN for other
// names, and SERVFAIL for everything while failing is set.
type Server struct {
	name    string
	conn    net.PacketConn
	queries atomic.Int64

	mu      sync.Mutex
	answers []netip.Addr
	failing bool
}

// Start serves name (a fully qualified name such as "backend.test.") on a
// free UDP port of 127.0.0.1 until the test ends.
func Start(t testing.TB, name string) *Server {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening for DNS: %v", err)
	}
	s := &Server{conn: conn, name: name}
	t.Cleanup(func() { conn.Close() })
	go s.serve()
	return s
}

// Addr is the server's host:port, for a resolver setting.
func (s *Server) Addr() string { return s.conn.LocalAddr().String() }

// Set changes the answers: the A records, or SERVFAIL when failing.
func (s *Server) Set(failing bool, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing = failing
	s.answers = s.answers[:0]
	for _, ip := range ips {
		s.answers = append(s.answers, netip.MustParseAddr(ip))
	}
}

func (s *Server) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp, err := s.answer(buf[:n]); err == nil {
			s.conn.WriteTo(resp, from)
		}
	}
}

func (s *Server) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	s.queries.Add(1)
	s.mu.Lock()
	failing, answers := s.failing, slices.Clone(s.answers)
	s.mu.Unlock()

	rcode := dnsmessage.RCodeSuccess
	switch {
	case failing:
		rcode = dnsmessage.RCodeServerFailure
	case !strings.EqualFold(q.Name.String(), s.name):
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired,
		RecursionAvailable: true, RCode: rcode,
	})
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if rcode == dnsmessage.RCodeSuccess && q.Type == dnsmessage.TypeA {
		for _, ip := range answers {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 1}
			if err := b.AResource(rh, dnsmessage.AResource{A: ip.As4()}); err != nil {
				return nil, err
			}
		}
	}
	return b.Finish()
}

// Queries counts the questions answered so far.
func (s *Server) Queries() int64 { return s.queries.Load() }
