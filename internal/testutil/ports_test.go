package testutil

import (
	"net"
	"strconv"
	"testing"
)

func TestPickPort(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for range 50 {
		p := FreePort(t)
		if low > lowestPickablePort+100 && (p < lowestPickablePort || p >= low) {
			t.Fatalf("FreePort() = %d, want in [%d, %d): below the ephemeral range", p, lowestPickablePort, low)
		}
		if seen[p] {
			t.Fatalf("FreePort() handed out %d twice", p)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d from FreePort is not free: %v", p, err)
		}
		ln.Close()
	}
}
