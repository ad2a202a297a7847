package core

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Cgroups is the cgroup v2 subtree the daemon delegates to the agent
// (mounted at /sys/fs/cgroup inside a sandbox, its root the sandbox's own
// cgroup). Everything the agent starts runs in a Group of its own: a
// command and whatever it starts, a background process, a terminal, a code
// context. The kernel keeps a process in its parent's group whatever it
// does (double-forks, env -i, setsid), so killing a Group (cgroup.kill)
// ends all of it at once, and its cpu.stat and members give its usage.
//
// Where no cgroup2 hierarchy is writable (the agent run by hand, without
// privileges) groups fall back to process groups: Kill signals the process
// group of each process the group was given, and what left it survives.
type Cgroups struct {
	root string // the subtree's directory; "" for process groups
	leaf string // the agent's own leaf, if it moved there; "" if not
	seq  atomic.Uint64

	mu        sync.Mutex
	abandoned []string // groups to remove once they are empty; guarded by mu
}

// AgentLeaf is the name of the leaf the agent moves itself into, so that
// the subtree's root holds no process and every other group is a sibling.
const AgentLeaf = "agent"

// OpenCgroups returns the agent's cgroups under root, a cgroup2 directory
// the agent may write to. With moveSelf, the agent (the calling process)
// first moves into root/AgentLeaf. A root that is not a writable cgroup2
// directory gives process groups, and the reason.
func OpenCgroups(root string, moveSelf bool) (*Cgroups, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return &Cgroups{}, fmt.Errorf("cgroups at %s: %w", root, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return &Cgroups{}, fmt.Errorf("cgroups at %s: not a cgroup2 file system", root)
	}
	if err := unix.Access(filepath.Join(root, "cgroup.procs"), unix.W_OK); err != nil {
		return &Cgroups{}, fmt.Errorf("cgroups at %s: not delegated to the agent: %w", root, err)
	}
	c := &Cgroups{root: root}
	if moveSelf {
		leaf := filepath.Join(root, AgentLeaf)
		if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return &Cgroups{}, fmt.Errorf("cgroups: the agent's leaf: %w", err)
		}
		if err := writePid(leaf, os.Getpid()); err != nil {
			return &Cgroups{}, fmt.Errorf("cgroups: move the agent to its leaf: %w", err)
		}
		c.leaf = leaf
	}
	return c, nil
}

// Enabled reports whether groups are cgroups (not process groups).
func (c *Cgroups) Enabled() bool { return c != nil && c.root != "" }

// New makes a new, empty group named after kind (a word: "proc",
// "term"...), under parent if it is not nil. It also removes abandoned
// groups that have emptied since.
func (c *Cgroups) New(kind string, parent *Group) (*Group, error) {
	g := &Group{cg: c}
	if !c.Enabled() {
		return g, nil
	}
	c.sweep()
	dir := c.root
	if parent != nil && parent.dir != "" {
		dir = parent.dir
	}
	g.dir = filepath.Join(dir, kind+"-"+strconv.FormatUint(c.seq.Add(1), 10))
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		return nil, fmt.Errorf("new cgroup: %w", err)
	}
	return g, nil
}

// sweep removes the abandoned groups that are empty now.
func (c *Cgroups) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.abandoned = slices.DeleteFunc(c.abandoned, func(dir string) bool { return removeTree(dir) == nil })
}

// Group is one cgroup of the agent's subtree (or, without cgroups, the
// process groups of the processes it was given).
type Group struct {
	cg  *Cgroups
	dir string // "" without cgroups

	mu    sync.Mutex
	pgids []int // without cgroups: the process groups to signal; guarded by mu
}

// Add moves process pid into g. Without cgroups, g remembers pid's process
// group (pid must lead one: started with Setpgid or Setsid).
func (g *Group) Add(pid int) error {
	if g.dir == "" {
		g.mu.Lock()
		g.pgids = append(g.pgids, pid)
		g.mu.Unlock()
		return nil
	}
	return writePid(g.dir, pid)
}

// Pids lists the processes in g and the groups below it.
func (g *Group) Pids() []int {
	if g.dir == "" {
		return nil
	}
	var out []int
	_ = filepath.WalkDir(g.dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			out = append(out, readPids(path)...)
		}
		return nil
	})
	return out
}

// Signal sends sig to every process in g.
func (g *Group) Signal(sig unix.Signal) {
	if g.dir == "" {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, pg := range g.pgids {
			_ = unix.Kill(-pg, sig)
		}
		return
	}
	for _, pid := range g.Pids() {
		if pid > 1 {
			_ = unix.Kill(pid, sig)
		}
	}
}

// killWait bounds how long Kill waits for the killed processes to be gone.
const killWait = 2 * time.Second

// Kill ends every process in g and below it at once (cgroup.kill: a
// process forking meanwhile is killed with its child), waits for them to
// be gone (at most killWait), and removes g. g may not be used after.
func (g *Group) Kill() {
	if g.dir == "" {
		g.Signal(unix.SIGKILL)
		return
	}
	if err := os.WriteFile(filepath.Join(g.dir, "cgroup.kill"), []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		// A kernel without cgroup.kill (before 5.14): one by one.
		g.Signal(unix.SIGKILL)
	}
	g.waitEmpty(killWait)
	g.Remove()
}

// Remove removes g once it is empty: at once if it is, else after its last
// process is gone. Its processes keep running.
func (g *Group) Remove() {
	if g.dir == "" || removeTree(g.dir) == nil {
		return
	}
	g.cg.mu.Lock()
	g.cg.abandoned = append(g.cg.abandoned, g.dir)
	g.cg.mu.Unlock()
}

// waitEmpty waits until g holds no process, or for timeout. The kernel
// says when with a change of cgroup.events ("populated 0"), which wakes a
// poll(2) on the file (POLLPRI) once it has been read.
func (g *Group) waitEmpty(timeout time.Duration) {
	fd, err := unix.Open(filepath.Join(g.dir, "cgroup.events"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return // a group that is gone holds nothing
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 256)
	for {
		n, err := unix.Pread(fd, buf, 0)
		left := time.Until(deadline)
		if err != nil || !bytes.Contains(buf[:max(n, 0)], []byte("populated 1")) || left <= 0 {
			return
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
		_, _ = unix.Poll(pfd, int(min(left, 100*time.Millisecond)/time.Millisecond)+1)
	}
}

// Usage is what a group's processes used: CPU time since the group was
// made, and the memory they hold now.
type Usage struct {
	CPUMs       int64
	MemoryBytes int64
}

// Usage reads g's usage: cpu.stat's usage_usec, and memory.current where
// the memory controller is on (else the resident memory of its processes).
func (g *Group) Usage() Usage {
	var u Usage
	if g.dir == "" {
		return u
	}
	cpu, _ := os.ReadFile(filepath.Join(g.dir, "cpu.stat"))
	for line := range strings.Lines(string(cpu)) {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			u.CPUMs = n / 1000
		}
	}
	if b, err := os.ReadFile(filepath.Join(g.dir, "memory.current")); err == nil {
		u.MemoryBytes, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return u
	}
	page := int64(os.Getpagesize())
	for _, pid := range g.Pids() {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
		if f := strings.Fields(string(b)); err == nil && len(f) > 1 {
			rss, _ := strconv.ParseInt(f[1], 10, 64)
			u.MemoryBytes += rss * page
		}
	}
	return u
}

// readPids reads the cgroup.procs of dir.
func readPids(dir string) []int {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")) // a group gone holds none
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// writePid moves pid into the cgroup dir. A process gone meanwhile is not
// an error.
func writePid(dir string, pid int) error {
	err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// removeTree removes the cgroup dir and the groups below it, deepest
// first; it fails if any of them holds a process.
func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}
