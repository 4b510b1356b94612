package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestUpgradePassesThrough: a 101 Switching Protocols answer (WebSocket)
// reaches the partner, bytes flow both ways, and the target's in-flight
// count returns to zero when the connection ends.
func TestUpgradePassesThrough(t *testing.T) {
	t.Parallel()
	cert := newCert(t)
	b := newBackend(t, cert, false, func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("backend hijack: %v", err)
			return
		}
		defer conn.Close()
		fmt.Fprint(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString("echo:" + line)
		rw.Flush()
	})
	e := newEnv(t, envOptions{targets: []string{b.srv.URL}, pin: cert})

	conn, err := net.Dial("tcp", strings.TrimPrefix(e.front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the upgrade answer: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("upgrade: got %d %s, want 101", resp.StatusCode, body)
	}
	fmt.Fprint(conn, "hello\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo:hello\n" {
		t.Fatalf("through the upgraded connection: got %q, %v", line, err)
	}
	conn.Close()
	target := e.pool.Targets()[0]
	waitFor(t, "in-flight back to 0", func() bool { return target.InFlight() == 0 })
}
