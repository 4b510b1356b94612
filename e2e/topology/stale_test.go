package topology

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRemoveStaleNamespaces: a crashed run's namespaces (their PID is
// dead) and /etc/netns folders are removed; a live run's are kept.
func TestRemoveStaleNamespaces(t *testing.T) {
	requireTools(t)
	// A PID that was alive a moment ago and is not any more.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Process.Kill(); live.Wait() })

	staleName := fmt.Sprintf("%s%d-edge", nsPrefix, dead.Process.Pid)
	liveName := fmt.Sprintf("%s%d-edge", nsPrefix, live.Process.Pid)
	for _, name := range []string{staleName, liveName} {
		t.Cleanup(func() { removeNamespace(name) })
		mustRun(t, "ip", "netns", "add", name)
		if err := os.MkdirAll(filepath.Join("/etc/netns", name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join("/etc/netns", name, "hosts"), []byte("127.0.0.1 localhost\n"))
	}

	removeStaleNamespaces(t)

	for _, c := range []struct {
		name string
		want bool
	}{{staleName, false}, {liveName, true}} {
		for _, path := range []string{filepath.Join("/run/netns", c.name), filepath.Join("/etc/netns", c.name)} {
			_, err := os.Stat(path)
			if exists := err == nil; exists != c.want {
				t.Errorf("after removeStaleNamespaces, %s exists = %v, want %v", path, exists, c.want)
			}
		}
	}
}
