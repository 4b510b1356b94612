package l4

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil"
	"github.com/drawbridge-gw/drawbridge/internal/upstream"
)

// TestMaxConns: a target with max_conns connections open is skipped; with
// every target full the connection is closed and logged as no_target,
// and once one closes the next connection goes through again.
func TestMaxConns(t *testing.T) {
	t.Parallel()
	a := startBackend(t, "a", false, "api.example.com")
	b := startBackend(t, "b", false, "api.example.com")
	p := pool(t, "onprem", upstream.PassiveOptions{}, a.addr(), b.addr())
	g := startServer(t, Options{}, map[string]*Route{"*": {Upstream: "onprem", Pool: p, MaxConns: 1}})
	roots := poolOf(a, b)

	// Two connections fill both targets, one each.
	var open []*session
	for i := range 2 {
		s, err := dialTLS(t, g.addr(), "api.example.com", roots)
		if err != nil {
			t.Fatalf("connection %d within the cap: %v", i, err)
		}
		io.WriteString(s.tls, "held ")
		open = append(open, s)
	}
	testutil.WaitFor(t, "both targets busy", func() bool {
		return p.Targets()[0].InFlight() == 1 && p.Targets()[1].InFlight() == 1
	})
	if s, err := dialTLS(t, g.addr(), "api.example.com", roots); err == nil {
		s.raw.Close()
		t.Fatal("connection over every target's cap: got a handshake, want it closed")
	}
	e := g.waitEntry(t, 1)
	if e["result"] != ResultNoTarget || !strings.Contains(e["error"].(string), "max_conns") {
		t.Errorf("access log: got %v, want result %s with an error naming max_conns", e, ResultNoTarget)
	}

	// One closes: its target takes the next connection.
	first, err := open[0].exchange("done")
	if err != nil {
		t.Fatalf("held connection: %v", err)
	}
	freed := strings.Fields(first)[0] // backend=a or backend=b
	testutil.WaitFor(t, "the freed target to be released", func() bool {
		return p.Targets()[0].InFlight()+p.Targets()[1].InFlight() == 1
	})
	answer, _ := roundTrip(t, g.addr(), "api.example.com", roots, "again")
	if !strings.HasPrefix(answer, freed+" ") {
		t.Errorf("connection after one closed: got %q, want the freed target (%s)", answer, freed)
	}
	if got, err := open[1].exchange("done"); err != nil || !strings.HasSuffix(got, "got=held done") {
		t.Errorf("second held connection: got %q, %v", got, err)
	}
}

// TestMaxConnections: a connection over the listener's max_connections is
// closed at accept with nothing sent, logged and counted; once one
// closes, the next is served.
func TestMaxConnections(t *testing.T) {
	t.Parallel()
	back := startBackend(t, "onprem", false, "api.example.com")
	g := startServer(t, Options{MaxConnections: 1}, map[string]*Route{"*": {Upstream: "onprem", Pool: pool(t, "onprem", upstream.PassiveOptions{}, back.addr())}})
	held, err := dialTLS(t, g.addr(), "api.example.com", poolOf(back))
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the connection to be active", func() bool {
		return g.counter(t, "drawbridge_l4_active_connections", map[string]string{"listener": "nlb"}) == 1
	})
	over, err := net.DialTimeout("tcp", g.addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetDeadline(time.Now().Add(10 * time.Second))
	if got, _ := io.ReadAll(over); len(got) != 0 {
		t.Errorf("connection over max_connections: got %q, want it closed with nothing sent", got)
	}
	e := g.waitEntryFor(t, over.LocalAddr().String())
	if e["result"] != ResultFull || !strings.Contains(e["error"].(string), "max_connections (1)") {
		t.Errorf("access log: got %v, want result %s naming max_connections (1)", e, ResultFull)
	}
	if got := g.counter(t, "drawbridge_l4_connections_total", map[string]string{"listener": "nlb", "result": ResultFull}); got != 1 {
		t.Errorf("drawbridge_l4_connections_total{result=%s}: got %v, want 1", ResultFull, got)
	}

	if answer, err := held.exchange("done"); err != nil || !strings.HasSuffix(answer, "got=done") {
		t.Fatalf("held connection: got %q, %v", answer, err)
	}
	testutil.WaitFor(t, "the held connection to close", func() bool {
		return g.counter(t, "drawbridge_l4_active_connections", map[string]string{"listener": "nlb"}) == 0
	})
	if answer, _ := roundTrip(t, g.addr(), "api.example.com", poolOf(back), "next"); !strings.HasSuffix(answer, "got=next") {
		t.Errorf("connection after one closed: got %q, want it served", answer)
	}
}
