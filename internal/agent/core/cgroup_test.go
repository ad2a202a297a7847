package core_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

// startIn starts bash -c script in g and returns its pid; the test reaps
// it.
func startIn(t *testing.T, r *core.Reaper, g *core.Group, script string) int {
	t.Helper()
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	p, exited, err := r.Start(g, "/bin/bash", []string{"bash", "-c", script}, &os.ProcAttr{
		Files: []*os.File{devnull, devnull, devnull}, Sys: &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { <-exited }()
	return p.Pid
}

func reaper(t *testing.T, cg *core.Cgroups) *core.Reaper {
	r := core.NewReaper(cg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// TestGroupKill: a group's kill ends what its process started however it
// left the tree (double fork, setsid, env -i), waits for it, and removes
// the group; a group left with processes is removed once they are gone.
func TestGroupKill(t *testing.T) {
	testutil.RequiresCgroups(t)
	root := testutil.CgroupRoot(t)
	cg, err := core.OpenCgroups(root, true)
	if err != nil {
		t.Fatal(err)
	}
	r := reaper(t, cg)
	g, err := cg.New("proc", nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := startIn(t, r, g, "(setsid env -i /bin/sleep 60 &); sleep 60")
	deadline := time.Now().Add(5 * time.Second)
	for len(g.Pids()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	pids := g.Pids()
	if len(pids) < 2 || !slices.Contains(pids, pid) {
		t.Fatalf("group holds %v; want its own process and the escaped one", pids)
	}
	if u := g.Usage(); u.MemoryBytes <= 0 {
		t.Errorf("usage %+v: want some memory", u)
	}
	g.Kill()
	for _, p := range pids {
		if err := unix.Kill(p, 0); err == nil && !zombie(p) {
			t.Errorf("process %d outlived the kill", p)
		}
	}
	if entries, _ := os.ReadDir(root); len(dirs(entries)) != 1 { // the agent's leaf
		t.Errorf("groups left after the kill: %v", entries)
	}

	// Abandoned with a process: removed at the next New once it is gone.
	h, _ := cg.New("proc", nil)
	startIn(t, r, h, "sleep 0.2")
	h.Remove()
	time.Sleep(500 * time.Millisecond)
	if _, err := cg.New("proc", nil); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(root); len(dirs(entries)) != 2 {
		t.Errorf("groups: %v; want the agent's leaf and the last one", dirs(entries))
	}
}

// TestProcessGroupFallback: without cgroups, a group kills the process
// groups of its processes.
func TestProcessGroupFallback(t *testing.T) {
	cg := &core.Cgroups{}
	r := reaper(t, cg)
	g, _ := cg.New("proc", nil)
	pid := startIn(t, r, g, "sleep 60 & sleep 60")
	time.Sleep(100 * time.Millisecond)
	g.Kill()
	time.Sleep(100 * time.Millisecond)
	if err := unix.Kill(pid, 0); err == nil && !zombie(pid) {
		t.Errorf("process %d outlived the kill", pid)
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

func dirs(entries []os.DirEntry) []string {
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}
