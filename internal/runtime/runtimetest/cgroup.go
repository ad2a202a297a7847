package runtimetest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/runtime"
)

// testCgroup checks the delegated cgroup2 subtree (see package runtime):
// the sandbox sees only its own cgroups, mounted read-write at
// /sys/fs/cgroup; its root makes child cgroups, moves processes into them
// and kills them through cgroup.kill; it cannot write its own limits nor
// pass the number and depth of descendants it may have; its init may move
// into a child cgroup and still be found (Attach, SetHostname); and
// Destroy leaves nothing, child cgroups included (Env.Leftovers).
func testCgroup(t *testing.T, env Env, newRuntime Factory) {
	if !hostHasCgroup2() {
		t.Skip("the host has no cgroup2 hierarchy")
	}
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
	sep := -1
	for i, f := range mi {
		if f == "-" {
			sep = i
			break
		}
	}
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

	// The limits stay the host's.
	out = exec(t, inst, `cd /sys/fs/cgroup
for f in cgroup.max.descendants cgroup.max.depth cgroup.kill cgroup.freeze cgroup.type memory.max memory.high pids.max cpu.max; do
	[ -e $f ] || continue
	if echo 1 > $f; then echo "wrote $f"; fi
done 2>/dev/null
cat cgroup.max.descendants cgroup.max.depth`)
	if out != "4096\n8\n" {
		t.Errorf("writes to the sandbox's own cgroup limits: %q, want none and 4096, 8", out)
	}

	// The init moves itself into a leaf, as the agent may: the runtime
	// still knows it for its container's (see Attach below).
	if out := exec(t, inst, "mkdir /sys/fs/cgroup/agent && echo 1 > /sys/fs/cgroup/agent/cgroup.procs && grep '^0::' /proc/1/cgroup"); out != "0::/agent\n" {
		t.Errorf("init moved to a leaf: %q", out)
	}

	// Depth: 8 levels, not 9. A process left in a nested child for
	// Destroy to deal with.
	out = exec(t, inst, `cd /sys/fs/cgroup
mkdir -p d/2/3/4/5/6/7/8 && echo depth8
mkdir d/2/3/4/5/6/7/8/9 2>/dev/null || echo no9
sleep 1000 >/dev/null 2>&1 &
echo $! > d/2/3/cgroup.procs && echo parked`)
	if out != "depth8\nno9\nparked\n" {
		t.Errorf("cgroup depth: %q", out)
	}
	// Descendants: 4096 in all, whatever the agent made itself.
	out = exec(t, inst, `cd /sys/fs/cgroup; mkdir m
seq 1 5000 | sed 's,^,m/,' | xargs mkdir 2>/dev/null
find . -mindepth 1 -type d | wc -l
mkdir m/over 2>/dev/null || echo refused`)
	if out != "4096\nrefused\n" {
		t.Errorf("cgroup descendants: %q, want 4096 and refused", out)
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
