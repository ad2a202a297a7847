package runtimetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

// testCgroup checks the delegated cgroup2 subtree (see package runtime):
// the sandbox sees only its own cgroups, mounted read-write at
// /sys/fs/cgroup; its root makes child cgroups, moves processes into them
// and kills them through cgroup.kill; it cannot write its own limits nor
// pass the number and depth of descendants it may have; its init may move
// into a child cgroup and still be found (Attach, SetHostname); and
// Destroy leaves nothing, child cgroups included (Env.Leftovers).
func testCgroup(t *testing.T, env Env, newRuntime Factory) {
	testutil.Requires(t, hostHasCgroup2(), "the host has no cgroup2 hierarchy")
	ctx := context.Background()
	rt := newRuntime(t, env.Dir)
	const id = "rt-cgroup"
	t.Cleanup(func() { _ = rt.Destroy(ctx, id) })
	inst, err := rt.Start(ctx, spec(id, env, 6))
	if err != nil {
		t.Fatalf("start: %v", err)
	}

	// Its own cgroup namespace: every hierarchy's path is at or below the
	// namespace's root, never above it ("/.." ...) nor a host path.
	out := exec(t, inst, "cat /proc/self/cgroup; echo --; grep ' /sys/fs/cgroup ' /proc/self/mountinfo; echo --; ls /sys/fs/cgroup")
	parts := strings.Split(out, "--\n")
	if len(parts) != 3 {
		t.Fatalf("cgroup view: %q", out)
	}
	v2 := false
	for _, line := range strings.Fields(parts[0]) {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || !strings.HasPrefix(f[2], "/") || strings.Contains(f[2], "..") || strings.Contains(f[2], "sandboxd") {
			t.Errorf("/proc/self/cgroup line %q: not within its own namespace", line)
		}
		v2 = v2 || f[0] == "0"
	}
	if !v2 {
		t.Errorf("/proc/self/cgroup has no cgroup2 line: %q", parts[0])
	}
	// mountinfo: ID parent dev root mountpoint options ... - type source super-options
	mi := strings.Fields(parts[1])
	sep := slices.Index(mi, "-")
	if len(mi) < 6 || sep < 0 || sep+1 >= len(mi) || mi[3] != "/" || mi[sep+1] != "cgroup2" {
		t.Errorf("/sys/fs/cgroup mount: %q, want cgroup2 with root /", parts[1])
	} else {
		for _, o := range []string{"rw", "nosuid", "nodev", "noexec"} {
			if !strings.Contains(","+mi[5]+",", ","+o+",") {
				t.Errorf("/sys/fs/cgroup mount options %s lack %s", mi[5], o)
			}
		}
	}
	if ls := strings.Fields(parts[2]); !slices.Contains(ls, "cgroup.procs") || slices.Contains(ls, "sandboxd") || slices.Contains(ls, "unified") {
		t.Errorf("/sys/fs/cgroup lists %v: want the sandbox's own cgroup", ls)
	}

	// A child cgroup, a process moved into it, killed through it.
	out = exec(t, inst, `cd /sys/fs/cgroup; mkdir x
sleep 1000 >/dev/null 2>&1 &
p=$!
echo $p > x/cgroup.procs
[ "$(cat x/cgroup.procs)" = "$p" ] && echo moved
echo 1 > x/cgroup.kill
wait $p
echo "exit $?"
rmdir x && echo removed`)
	if out != "moved\nexit 137\nremoved\n" {
		t.Errorf("child cgroup, move, cgroup.kill: %q", out)
	}

	// The limits stay the host's, and the sandbox's cgroups are bounded
	// in number and depth.
	out = exec(t, inst, `cd /sys/fs/cgroup
for f in cgroup.max.descendants cgroup.max.depth cgroup.kill cgroup.freeze cgroup.type memory.max memory.high pids.max cpu.max; do
	[ -e $f ] || continue
	if echo 1 > $f; then echo "wrote $f"; fi
done 2>/dev/null
cat cgroup.max.descendants cgroup.max.depth`)
	var maxDesc, maxDepth int
	if _, err := fmt.Sscanf(out, "%d\n%d\n", &maxDesc, &maxDepth); err != nil || strings.Contains(out, "wrote") ||
		maxDesc < 16 || maxDesc > 10000 || maxDepth < 4 || maxDepth > 64 {
		t.Fatalf("writes to the sandbox's own cgroup limits, then its max descendants and depth: %q (%v)", out, err)
	}

	// The init is in a leaf (the agent moves itself into one; with another
	// init, the test moves it): the runtime still knows it for its
	// container's (see Attach below).
	if out := exec(t, inst, "mkdir -p /sys/fs/cgroup/agent && echo 1 > /sys/fs/cgroup/agent/cgroup.procs && grep '^0::' /proc/1/cgroup"); out != "0::/agent\n" {
		t.Errorf("init moved to a leaf: %q", out)
	}

	// Depth: maxDepth levels, no more. A process left in a nested child
	// for Destroy to deal with.
	deep := "d" + strings.Repeat("/d", maxDepth-1)
	out = exec(t, inst, fmt.Sprintf(`cd /sys/fs/cgroup
mkdir -p %[1]s && echo deepest
mkdir %[1]s/over 2>/dev/null || echo refused
sleep 1000 >/dev/null 2>&1 &
echo $! > d/d/cgroup.procs && echo parked`, deep))
	if out != "deepest\nrefused\nparked\n" {
		t.Errorf("cgroup depth %d: %q", maxDepth, out)
	}
	// Descendants: maxDesc in all, whatever the agent made itself.
	out = exec(t, inst, fmt.Sprintf(`cd /sys/fs/cgroup; mkdir m
seq 1 %d | sed 's,^,m/,' | xargs mkdir 2>/dev/null
find . -mindepth 1 -type d | wc -l
mkdir m/over 2>/dev/null || echo refused`, maxDesc+100))
	if want := fmt.Sprintf("%d\nrefused\n", maxDesc); out != want {
		t.Errorf("cgroup descendants: %q, want %q", out, want)
	}

	rt2 := newRuntime(t, env.Dir) // as after a daemon restart
	if inst2, err := rt2.Attach(ctx, id); err != nil || inst2.Pid != inst.Pid {
		t.Errorf("attach with the init in a child cgroup: %+v, %v", inst2, err)
	}
	if hs, ok := rt2.(runtime.HostnameSetter); ok {
		if err := hs.SetHostname(ctx, id, "rt-cgroup-renamed"); err != nil {
			t.Errorf("set hostname with the init in a child cgroup: %v", err)
		}
	}
	if err := rt2.Destroy(ctx, id); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if left := env.Leftovers(id); len(left) > 0 {
		t.Errorf("left after destroy: %d, first %s", len(left), left[0])
	}
}

// hostHasCgroup2 tells whether cgroup2 is mounted where a pure v2 host
// (/sys/fs/cgroup) or a hybrid one (/sys/fs/cgroup/unified) has it.
func hostHasCgroup2() bool {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return true
		}
	}
	return false
}
