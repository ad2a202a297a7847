package runc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/internal/testutil"
)

// testCgroup2Dir returns a fresh cgroup2 directory for the test (removed
// with it) and its cgroups path, skipping where the host has no cgroup2.
func testCgroup2Dir(t *testing.T) (dir, cg string) {
	t.Helper()
	testutil.RequiresRoot(t)
	testutil.Requires(t, cgroup2Root() != "", "the host has no cgroup2 hierarchy")
	cg = fmt.Sprintf("/sandboxd-test-%d/%s", os.Getpid(), strings.ToLower(t.Name()))
	dir = cgroup2Dir(cg)
	t.Cleanup(func() {
		_ = removeCgroup(context.Background(), dir)
		_ = os.Remove(filepath.Dir(dir))
	})
	return dir, cg
}

// TestDelegateCgroup: the directory and the kernel's delegatable files go to
// the sandbox's root; the limits stay root's and are set.
func TestDelegateCgroup(t *testing.T) {
	dir, _ := testCgroup2Dir(t)
	const uid = 1_000_000_000
	if err := delegateCgroup(dir, uid); err != nil {
		t.Fatal(err)
	}
	for name, owner := range map[string]uint32{
		".": uid, "cgroup.procs": uid, "cgroup.threads": uid, "cgroup.subtree_control": uid,
		"cgroup.max.descendants": 0, "cgroup.max.depth": 0, "cgroup.kill": 0, "cgroup.type": 0,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != owner || st.Gid != owner {
			t.Errorf("%s owned by %d:%d, want %d", name, st.Uid, st.Gid, owner)
		}
	}
	for name, want := range map[string]string{"cgroup.max.descendants": "4096\n", "cgroup.max.depth": "8\n"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	// Again over the existing directory (a start after a crash).
	if err := delegateCgroup(dir, uid); err != nil {
		t.Fatal(err)
	}
}

// TestRemoveCgroup: a cgroup with nested children and a process in one of
// them goes, process killed, children first; inCgroup sees the process in
// the cgroup's subtree only.
func TestRemoveCgroup(t *testing.T) {
	dir, cg := testCgroup2Dir(t)
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(dir, "a", "b", "cgroup.procs"), []byte(fmt.Sprint(pid)), 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cg   string
		want bool
	}{{cg, true}, {cg + "/a", true}, {cg + "/a/b", true}, {cg + "/c", false}, {cg + "/a/b/x", false}, {cg + "x", false}, {filepath.Dir(cg) + "/other", false}} {
		if got := inCgroup(pid, tc.cg); got != tc.want {
			t.Errorf("inCgroup(%d, %s) = %v, want %v", pid, tc.cg, got, tc.want)
		}
	}
	if err := removeCgroup(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Errorf("process ended with %v, want SIGKILL", cmd.ProcessState)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("process still running after removeCgroup")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cgroup left: %v", err)
	}
	if err := removeCgroup(context.Background(), dir); err != nil {
		t.Errorf("removing a missing cgroup: %v", err)
	}
}
