package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/runtime"
)

// TestSandboxesAreIsolated: two sandboxes see neither each other's files,
// processes or cgroups, nor the host's files.
func TestSandboxesAreIsolated(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	a, b := d.Client.Get("iso-a"), d.Client.Get("iso-b")
	mustExec(t, a, "echo secret-a > /workspace/secret; sleep 123457 >/dev/null 2>&1 &")
	mustExec(t, b, "true")
	mustExec(t, a, "mkdir /sys/fs/cgroup/cg-secret-a")

	// A sees its own file and process, so the checks below can fail.
	if res := mustExec(t, a, "cat /workspace/secret; ps -eo args | grep -c '^sleep 123457'"); res.Stdout != "secret-a\n1\n" {
		t.Fatalf("a's own view: %q", res.Stdout)
	}
	if res := mustExec(t, b, "cat /workspace/secret"); res.ExitCode == 0 {
		t.Errorf("b read a's file: %q", res.Stdout)
	}
	if res := mustExec(t, b, "ps -eo args"); strings.Contains(res.Stdout, "123457") {
		t.Errorf("b sees a's process:\n%s", res.Stdout)
	}
	// Nor each other's cgroups: b's cgroup namespace is its own subtree.
	if res := mustExec(t, b, "ls /sys/fs/cgroup; cat /proc/self/cgroup"); res.ExitCode != 0 || strings.Contains(res.Stdout, "cg-secret-a") ||
		strings.Contains(res.Stdout, "..") || strings.Contains(res.Stdout, "sandboxd") || !strings.Contains(res.Stdout, "0::/") {
		t.Errorf("b's cgroups: exit %d %q", res.ExitCode, res.Stdout)
	}
	// b's pid namespace holds only its agent and the command itself.
	if res := mustExec(t, b, "ls /proc | grep -c '^[0-9]'"); atoi(t, res.Stdout) > 4 {
		t.Errorf("b sees %s processes", res.Stdout)
	}

	// Host paths: the daemon's state and token, a's socket and layer, a
	// marker in the host's /root.
	marker := fmt.Sprintf("/root/sandboxd-e2e-marker-%d", os.Getpid())
	if err := os.WriteFile(marker, []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(marker) })
	for _, p := range []string{
		filepath.Join(d.DataDir, "state.db"),
		filepath.Join(d.DataDir, "token"),
		filepath.Join(d.DataDir, "sandboxes", "iso-a", "agent.sock"),
		filepath.Join(d.DataDir, "sandboxes", "iso-a", "upper", "workspace", "secret"),
		marker,
	} {
		if res := mustExec(t, b, "cat "+p); strings.Contains(res.Stdout, "secret") || res.ExitCode == 0 {
			t.Errorf("sandbox reached host path %s: exit %d %q", p, res.ExitCode, res.Stdout)
		}
	}
	// Nor through /proc: pid 1 is the sandbox's own agent.
	if res := mustExec(t, b, "cat /proc/1/cmdline | tr '\\0' ' '; ls /proc/1/root/"+strings.TrimPrefix(d.DataDir, "/")); !strings.HasPrefix(res.Stdout, "/.sandbox/agent") || res.ExitCode == 0 {
		t.Errorf("pid 1 / its root: exit %d %q", res.ExitCode, res.Stdout)
	}
}

// TestUserNamespaceAndPrivileges: root in a sandbox is an unprivileged host
// uid, the image still looks owned by root, and the kernel surface is cut
// down by capabilities and seccomp.
func TestUserNamespaceAndPrivileges(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("priv")
	res := mustExec(t, sb, "cat /proc/self/uid_map; id -u; stat -c %U:%G /usr/bin/python3 /etc/passwd /workspace")
	f := strings.Fields(res.Stdout)
	if len(f) != 7 || f[0] != "0" || f[2] != "65536" || f[3] != "0" || f[4] != "root:root" || f[5] != "root:root" || f[6] != "root:root" {
		t.Fatalf("uid map / ownership: %q", res.Stdout)
	}
	if hostUID := uint64(atoi(t, f[1])); hostUID < uint64(d.UIDBase) || hostUID >= uint64(d.UIDBase)+uidRangeSlots*runtime.IDMapSize {
		t.Errorf("container root is host uid %d, outside the daemon's range (%d up)", hostUID, d.UIDBase)
	}
	// The agent's host process runs as that uid.
	pid, _ := os.ReadFile(filepath.Join(d.DataDir, "sandboxes", "priv", "init.pid"))
	status, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/status")
	if err != nil || !strings.Contains(string(status), "Uid:\t"+f[1]+"\t") {
		t.Errorf("host view of the agent's uid: %v\n%s", err, status)
	}
	// Files written in the sandbox are owned by its root and editable.
	if res := mustExec(t, sb, "echo hi > /etc/motd-test && stat -c %U /etc/motd-test && echo more >> /usr/bin/python3 && echo modified"); res.Stdout != "root\nmodified\n" {
		t.Errorf("writes over the image: %q %q", res.Stdout, res.Stderr)
	}

	denied := []struct{ name, cmd string }{
		{"mount", "mount -t tmpfs none /mnt"},
		{"unshare user", "unshare -U true"},
		{"unshare mount", "unshare -m true"},
		{"ptrace", `python3 -c 'import ctypes,sys; sys.exit(0 if ctypes.CDLL(None).ptrace(0,0,0,0)==0 else 1)'`},
		{"keyctl", `python3 -c 'import ctypes,sys; sys.exit(0 if ctypes.CDLL(None).syscall(250,0,-3,0,0,0)>0 else 1)'`},
		{"bpf", `python3 -c 'import ctypes,sys; sys.exit(0 if ctypes.CDLL(None).syscall(321,0,0,0)>=0 else 1)'`},
		{"kernel module", `python3 -c 'import ctypes,sys; sys.exit(0 if ctypes.CDLL(None).syscall(175,0,0,0)==0 else 1)'`},
		{"sysrq", "echo h > /proc/sysrq-trigger"},
		{"kernel param", "echo 1 > /proc/sys/kernel/panic"},
		{"raw disk", "ls /dev/vda /dev/sda 2>/dev/null | grep ."},
		{"chroot escape tool", "nsenter -t 1 -m true"},
	}
	for _, c := range denied {
		if res := mustExec(t, sb, c.cmd); res.ExitCode == 0 {
			t.Errorf("%s was allowed: %q %q", c.name, res.Stdout, res.Stderr)
		}
	}
	// Masked paths read empty (the host's are not); the capability set is
	// Docker's.
	if b, _ := os.ReadFile("/proc/interrupts"); len(b) == 0 {
		t.Fatal("host /proc/interrupts is empty: the masking check below would prove nothing")
	}
	if res := mustExec(t, sb, "wc -c < /proc/interrupts; ls /sys/firmware | wc -l; grep CapEff /proc/self/status"); res.Stdout != "0\n0\nCapEff:\t00000000a80425fb\n" {
		t.Errorf("masked paths / caps: %q", res.Stdout)
	}
	// Isolated network: loopback only, and lookups fail fast.
	res = mustExec(t, sb, "ip -o link | awk '{print $2}'; time -p getent hosts example.com; true")
	if !strings.HasPrefix(res.Stdout, "lo:\n") || strings.Count(res.Stdout, ":\n") != 1 {
		t.Errorf("interfaces: %q", res.Stdout)
	}
	if res.DurationMs > 5000 {
		t.Errorf("a name lookup took %d ms", res.DurationMs)
	}
}

// TestLimitsContainHogs: a memory hog dies by the memory limit and a fork
// loop stops at the pids limit, while the daemon and other sandboxes carry
// on and the sandbox itself stays usable.
func TestLimitsContainHogs(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 3*time.Minute)
	hog, err := d.Client.Create(ctx, "hog", &api.CreateSandboxRequest{Resources: &api.Resources{MemoryMB: 128, Pids: 64}})
	if err != nil {
		t.Fatal(err)
	}
	other := d.Client.Get("bystander")
	mustExec(t, other, "true")

	res := mustExec(t, hog, `python3 -c 'b = bytearray(512 << 20); b[::4096] = b"x" * len(b[::4096]); print("survived")'`)
	if res.ExitCode != 137 || strings.Contains(res.Stdout, "survived") {
		t.Errorf("memory hog: exit %d %q %q", res.ExitCode, res.Stdout, res.Stderr)
	}
	// A fork loop: children that sleep until the limit refuses more.
	res = mustExec(t, hog, `python3 -c '
import os, time, signal
os.setpgrp()  # a group of its own: the kill below spares the shell
n = 0
try:
    while n < 1000:
        if os.fork() == 0:
            time.sleep(60); os._exit(0)
        n += 1
except OSError as e:
    print(n, e.errno, flush=True)
os.killpg(0, signal.SIGKILL)
'`)
	if f := strings.Fields(res.Stdout); len(f) != 2 || atoi(t, f[0]) >= 64 || atoi(t, f[0]) < 10 || f[1] != "11" {
		t.Errorf("fork loop: %q %q (want fewer than 64 forks, then EAGAIN)", res.Stdout, res.Stderr)
	}
	for _, sb := range []string{"hog", "bystander"} {
		if res := mustExec(t, d.Client.Get(sb), "echo alive"); res.Stdout != "alive\n" {
			t.Errorf("%s after the hogs: %q", sb, res.Stdout)
		}
	}
}

// TestHostUsersCannotReachSandboxes: an unprivileged host user reads
// neither a sandbox's files (through its layer or its mounted rootfs) nor
// the daemon's state, and cannot run a sandbox's setuid binary.
func TestHostUsersCannotReachSandboxes(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("private")
	if res := mustExec(t, sb, "echo s3cret > /workspace/notes; cp /bin/cat /workspace/suid-cat; chmod 4755 /workspace/suid-cat; echo ok"); res.Stdout != "ok\n" {
		t.Fatalf("setup: %+v", res)
	}
	asNobody := func(args ...string) (string, error) {
		out, err := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--"}, args...)...).CombinedOutput()
		return string(out), err
	}
	// The check can fail: nobody may read a world-readable file elsewhere.
	if out, err := asNobody("cat", "/etc/hostname"); err != nil {
		t.Fatalf("setpriv does not work here: %v %s", err, out)
	}
	dir := filepath.Join(d.DataDir, "sandboxes", "private")
	for _, p := range []string{
		filepath.Join(dir, "upper", "workspace", "notes"),
		filepath.Join(dir, "rootfs", "workspace", "notes"),
		filepath.Join(d.DataDir, "state.db"),
		filepath.Join(d.DataDir, "token"),
	} {
		if out, err := asNobody("cat", p); err == nil || strings.Contains(out, "s3cret") {
			t.Errorf("host user nobody read %s: %q", p, out)
		}
	}
	if out, err := asNobody(filepath.Join(dir, "rootfs", "workspace", "suid-cat"), "/etc/shadow"); err == nil {
		t.Errorf("host user ran the sandbox's setuid binary: %q", out)
	}
	for _, f := range []string{"state.db", "state.db-wal", "token"} {
		if fi, err := os.Stat(filepath.Join(d.DataDir, f)); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", f, fi.Mode().Perm())
		}
	}
	// Inside, the agent's memory and environment are out of reach.
	if res := mustExec(t, sb, "cat /proc/1/environ || head -c1 /proc/1/mem"); res.ExitCode == 0 {
		t.Errorf("sandbox read its agent's memory or environment: %q", res.Stdout)
	}
}
