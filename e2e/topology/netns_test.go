package topology

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nsPrefix starts every namespace this package creates; the PID that
// follows it tells a live run's namespaces from a crashed run's.
const nsPrefix = "dbtopo"

// staleNS matches the namespaces of any run: dbtopo<PID>-<role>.
var staleNS = regexp.MustCompile(`^` + nsPrefix + `(\d+)-`)

// Roles of the namespaces; each is a "host" of the topology.
const (
	rolePartner = "partner"
	roleEdge    = "edge"
	roleLB      = "onprem-lb"
	roleApp1    = "app1"
	roleApp2    = "app2"
)

// link is a veth pair between two namespaces, each end with an address.
type link struct {
	aRole, aIface, aAddr string // aAddr is CIDR, e.g. 10.201.1.2/24
	bRole, bIface, bAddr string
}

// The addresses of the topology. All are inside 10.201.0.0/16 and exist
// only inside the namespaces, so no traffic of this test can leave them.
const (
	partnerAddr   = "10.201.1.2"
	edgeAddr      = "10.201.1.1" // drawbridge's partner listener
	edgeLBSide    = "10.201.2.1"
	lbAddr        = "10.201.2.2" // onprem-lb.internal at first
	lbNewAddr     = "10.201.2.3" // where the LB moves to
	app1Addr      = "10.201.3.2"
	app2Addr      = "10.201.4.2"
	lbName        = "onprem-lb.internal"
	gatewayPort   = "8443"
	appPort       = "8443"
	partnerSubnet = "10.201.1.0/24"
	wholeRange    = "10.201.0.0/16"

	// The L4 tier's ports: drawbridge's tcp listeners on edgeAddr, and the
	// LB's port that expects a PROXY protocol header.
	l4PassPort          = "9443" // passthrough, routed by SNI
	l4TermPort          = "9444" // terminate, re-encrypted, PROXY v2
	lbProxyProtocolPort = "8444"
	// adminAddr is drawbridge's admin listener, on the edge's own loopback.
	adminAddr = "127.0.0.1:9090"
)

var links = []link{
	{rolePartner, "to-edge", partnerAddr + "/24", roleEdge, "to-partner", edgeAddr + "/24"},
	{roleEdge, "to-lb", edgeLBSide + "/24", roleLB, "to-edge", lbAddr + "/24"},
	{roleLB, "to-app1", "10.201.3.1/24", roleApp1, "to-lb", app1Addr + "/24"},
	{roleLB, "to-app2", "10.201.4.1/24", roleApp2, "to-lb", app2Addr + "/24"},
}

// topology is one run's set of namespaces.
type topology struct {
	t     *testing.T
	ns    map[string]string // role -> namespace name
	hosts string            // what the edge's hosts file says, for diagnostics
}

// nsName is the namespace of a role in this run.
func (tp *topology) nsName(role string) string { return tp.ns[role] }

// newTopology creates the namespaces and links, and registers their
// teardown (processes killed, namespaces and /etc/netns files removed)
// before creating anything, so a failure half-way still cleans up.
func newTopology(t *testing.T) *topology {
	t.Helper()
	removeStaleNamespaces(t)
	tp := &topology{t: t, ns: map[string]string{}}
	for _, role := range []string{rolePartner, roleEdge, roleLB, roleApp1, roleApp2} {
		tp.ns[role] = fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), role)
	}
	t.Cleanup(func() {
		for _, name := range tp.ns {
			if err := removeNamespace(name); err != nil {
				t.Errorf("teardown: %v", err)
			}
		}
	})
	for _, role := range []string{rolePartner, roleEdge, roleLB, roleApp1, roleApp2} {
		mustRun(t, "ip", "netns", "add", tp.ns[role])
		mustRun(t, "ip", "-n", tp.ns[role], "link", "set", "lo", "up")
		// IPv4 only: without IPv6 the links carry no router solicitations
		// or multicast reports, only the test's own traffic and ARP.
		// Where the kernel has no IPv6 the files are absent; fine too.
		exec.Command("ip", "netns", "exec", tp.ns[role], "sh", "-c",
			"echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6").Run()
	}
	for _, l := range links {
		// Both ends are created directly inside their namespaces, so the
		// interface names never meet in the root namespace, where a
		// concurrent run could hold the same ones.
		mustRun(t, "ip", "link", "add", l.aIface, "netns", tp.ns[l.aRole], "type", "veth",
			"peer", "name", l.bIface, "netns", tp.ns[l.bRole])
		for _, end := range [][3]string{{l.aRole, l.aIface, l.aAddr}, {l.bRole, l.bIface, l.bAddr}} {
			mustRun(t, "ip", "-n", tp.ns[end[0]], "addr", "add", end[2], "dev", end[1])
			mustRun(t, "ip", "-n", tp.ns[end[0]], "link", "set", end[1], "up")
		}
	}
	// The partner routes the whole range to the edge, and the LB routes
	// the partner's subnet back through it: only the edge's refusal to
	// forward keeps the partner away from the LB, which is what the
	// test asserts.
	mustRun(t, "ip", "-n", tp.ns[rolePartner], "route", "add", wholeRange, "via", edgeAddr)
	mustRun(t, "ip", "-n", tp.ns[roleLB], "route", "add", partnerSubnet, "via", edgeLBSide)
	mustRun(t, "ip", "netns", "exec", tp.ns[roleEdge], "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward")
	return tp
}

// hostsFile is the edge's /etc/hosts as `ip netns exec` shows it.
func (tp *topology) hostsFile() string {
	return filepath.Join("/etc/netns", tp.ns[roleEdge], "hosts")
}

// setEdgeHosts makes lbName resolve to addr in the edge namespace. The
// file is rewritten in place (truncate and write, never rename): `ip netns
// exec` bind-mounts it over /etc/hosts, and a bind mount keeps pointing at
// the old inode when the path is replaced.
func (tp *topology) setEdgeHosts(addr string) {
	tp.t.Helper()
	if err := os.MkdirAll(filepath.Dir(tp.hostsFile()), 0o755); err != nil {
		tp.t.Fatal(err)
	}
	content := fmt.Sprintf("127.0.0.1 localhost\n%s %s\n", addr, lbName)
	if err := os.WriteFile(tp.hostsFile(), []byte(content), 0o644); err != nil {
		tp.t.Fatalf("writing the edge's hosts file: %v", err)
	}
	tp.hosts = content
}

// sysctl reads a /proc/sys file inside the role's namespace.
func (tp *topology) sysctl(role, path string) string {
	tp.t.Helper()
	return strings.TrimSpace(mustRun(tp.t, "ip", "netns", "exec", tp.ns[role], "cat", path))
}

// removeNamespace kills every process left in the namespace, deletes it
// and its /etc/netns folder. A namespace that is already gone is fine.
func removeNamespace(name string) error {
	var errs []error
	if _, err := os.Stat(filepath.Join("/run/netns", name)); err == nil {
		out, _ := exec.Command("ip", "netns", "pids", name).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		// A killed process may hold the namespace for a moment; deleting
		// it only unmounts the name, so this cannot hang.
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", name, err, out))
		}
	}
	if err := os.RemoveAll(filepath.Join("/etc/netns", name)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeStaleNamespaces deletes the namespaces of earlier runs that died
// without their cleanup (killed test binary): those whose PID is no longer
// alive. A concurrent run's namespaces are left alone.
func removeStaleNamespaces(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return // no namespace at all yet
	}
	for _, e := range entries {
		m := staleNS.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		t.Logf("removing namespace %s left by a crashed run (pid %d)", e.Name(), pid)
		if err := removeNamespace(e.Name()); err != nil {
			t.Logf("removing stale namespace: %v", err)
		}
	}
}

// mustRun runs a command, failing the test with its output if it fails.
func mustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// dialerIn returns a DialContext whose sockets live in the namespace, so
// the test process can be the partner (or probe from the edge) without a
// helper process. A socket belongs to the namespace of the thread that
// created it, for its whole life.
func dialerIn(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := inNamespace(ns, func() error {
			var err error
			conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
}

// inNamespace runs fn on an OS thread switched into the named network
// namespace. Dialing an IP address creates its socket on the calling
// goroutine, hence on this locked thread. If switching back fails, the
// thread stays locked and the runtime discards it when fn's goroutine
// ends, so no goroutine ever runs in the wrong namespace by accident.
func inNamespace(ns string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening this thread's namespace: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening namespace %s: %w", ns, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering namespace %s: %w", ns, err)
	}
	defer func() {
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return fn()
}
