package testutil

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Ports for a server a test starts later (a child process, a config file)
// must not come from listening on ":0" and closing: those come from the
// kernel's ephemeral range, which every outgoing connection and every other
// ":0" listener of the parallel test processes draws from too, so the port
// can be taken before the server binds it (seen in CI as "address already
// in use"). Ports below the ephemeral range are never handed out by the
// kernel on its own; PickPort draws one of those at random and checks it is
// free, so only another PickPort caller choosing the same one out of
// thousands could collide.

var (
	pickedMu sync.Mutex
	picked   = map[int]bool{} // this process never hands a port out twice
)

// lowestPickablePort is above the well-known and commonly configured
// service ports.
const lowestPickablePort = 10000

// PickPort returns a loopback TCP port that is free now and outside the
// kernel's ephemeral range.
func PickPort() (int, error) {
	hi := ephemeralLow()
	if hi <= lowestPickablePort+100 {
		// No room below the ephemeral range (some containers use
		// 1024-65535): fall back to the kernel's choice, racy as it is.
		return kernelPort()
	}
	pickedMu.Lock()
	defer pickedMu.Unlock()
	for range 200 {
		p := lowestPickablePort + rand.IntN(hi-lowestPickablePort)
		if picked[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		picked[p] = true
		return p, nil
	}
	return 0, errors.New("no free port found below the ephemeral range after 200 tries")
}

// kernelPort is a port the kernel hands out for ":0", free at the call.
func kernelPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("picking a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// FreePort is PickPort for tests: it fails the test when no port is found.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := PickPort()
	if err != nil {
		t.Fatalf("picking a free port: %v", err)
	}
	return p
}

// FreeAddr is "127.0.0.1:PORT" for a FreePort: where nothing listens until
// the test starts something there.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// ephemeralLow is the first port of the kernel's ephemeral range, or
// Linux's default when it cannot be read. It is read once.
var ephemeralLow = sync.OnceValue(func() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
})
