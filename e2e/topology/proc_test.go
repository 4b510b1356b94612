package topology

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/testutil"
)

// proc is a process running inside a namespace, with its output kept for
// the test and for diagnostics.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, set before done is closed
}

// startIn starts bin with args inside the namespace via `ip netns exec`,
// which execs the program itself: the pid is the program's, and signals
// reach it directly. The process is stopped in t.Cleanup.
func startIn(t *testing.T, ns, name, dir string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// Dies with the test binary, so a killed test leaves no process behind.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	return p
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) error {
	return p.cmd.Process.Signal(sig)
}

// stop ends the process: SIGTERM, then SIGKILL if it has not exited within
// five seconds. It is safe to call more than once.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// kill ends the process at once, as a crash would.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// waitOutput waits until the process has printed s, failing the test if
// it exits first or the timeout passes.
func (p *proc) waitOutput(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%s to print %q", p.name, s), timeout, func() bool {
		if p.exited() {
			t.Fatalf("%s exited (%v) before printing %q:\n%s", p.name, p.err, s, p.out.String())
		}
		return strings.Contains(p.out.String(), s)
	})
}

// waitUntil polls cond every 100 ms until it holds, failing the test
// after timeout. The waits here are for real processes and the kernel,
// some bounded by a cache's lifetime (Go re-reads /etc/hosts every 5 s),
// hence a timeout per call rather than testutil.WaitFor's fixed one.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// buildBinaries builds drawbridge and the app server into dir, from the
// module's root.
func buildBinaries(t *testing.T, dir string) (drawbridge, app string) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from the test's folder: %v", err)
	}
	drawbridge, app = filepath.Join(dir, "drawbridge"), filepath.Join(dir, "app")
	for _, b := range []struct{ out, pkg string }{{drawbridge, "./cmd/drawbridge"}, {app, "./e2e/topology/cmd/app"}} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return drawbridge, app
}

// requireTools skips the test when it cannot run here, and fails it
// instead under CI=true, where .ci/run has installed everything.
func requireTools(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces)")
	}
	for _, tool := range []string{"ip", "nginx", "tcpdump", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("the topology test needs %s in CI (.ci/run installs them and runs as root)", strings.Join(missing, ", "))
	}
	t.Skipf("the topology test needs %s; run it as root: sudo go test ./e2e/topology -v", strings.Join(missing, ", "))
}
