package l4

import (
	"io"
	"strings"
	"testing"

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
