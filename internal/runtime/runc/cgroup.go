package runc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Each sandbox gets a delegated cgroup v2 subtree (see the runtime package
// and docs/ARCHITECTURE.md, Isolation): the daemon makes its container's
// cgroup2 directory before runc runs, and chowns it and the files the kernel
// lists as delegatable to the sandbox's root; the limits stay host root's.
// On a hybrid host (cgroup2 at /sys/fs/cgroup/unified, the controllers on
// v1) the subtree carries no controllers; with no cgroup2 at all, sandboxes
// get no /sys/fs/cgroup.

// Limits of a sandbox's cgroup subtree, set on its root cgroup.
const (
	cgroupMaxDescendants = 4096
	cgroupMaxDepth       = 8
)

// cgroup2Root is where the host's cgroup2 hierarchy is mounted, found
// once: /sys/fs/cgroup, /sys/fs/cgroup/unified (where runc looks on a
// hybrid host), or "" if neither is a cgroup2 file system.
var cgroup2Root = sync.OnceValue(func() string {
	for _, p := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return p
		}
	}
	return ""
})

// cgroup2Dir is the host directory of cgroups path cg in the cgroup2
// hierarchy, or "" if the host has none.
func cgroup2Dir(cg string) string {
	root := cgroup2Root()
	if root == "" {
		return ""
	}
	return root + cg
}

// delegatedFiles are the files of a cgroup its delegatee may write,
// as the kernel lists them; the first three if the list cannot be read.
var delegatedFiles = sync.OnceValue(func() []string {
	b, err := os.ReadFile("/sys/kernel/cgroup/delegate")
	if err != nil {
		return []string{"cgroup.procs", "cgroup.threads", "cgroup.subtree_control"}
	}
	return strings.Fields(string(b))
})

// delegateCgroup makes dir, a container's cgroup2 directory, before runc
// puts the container in it (runc takes an existing one as it is), and
// hands it to the sandbox's root, host uid and gid uid: the directory and
// its delegatable files, those that exist (memory.* ones only where the
// memory controller is on). Its descendants and depth are capped.
func delegateCgroup(dir string, uid int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cgroup %s: %w", dir, err)
	}
	for name, n := range map[string]int{"cgroup.max.descendants": cgroupMaxDescendants, "cgroup.max.depth": cgroupMaxDepth} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprint(n)), 0); err != nil {
			return fmt.Errorf("cgroup %s: %w", dir, err)
		}
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		return fmt.Errorf("delegate cgroup %s: %w", dir, err)
	}
	for _, name := range delegatedFiles() {
		if err := os.Chown(filepath.Join(dir, name), uid, uid); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delegate cgroup %s: %w", dir, err)
		}
	}
	return nil
}

// removeCgroup removes dir, a container's cgroup2 directory, with every
// child cgroup the sandbox made in it, children first. If processes are
// left in it (a container whose runc state was lost), they are killed
// through cgroup.kill first, and removeCgroup waits for them to go (at
// most 10 s, or until ctx ends). A missing dir is no error.
func removeCgroup(ctx context.Context, dir string) error {
	if dir == "" {
		return nil
	}
	err := removeTree(dir)
	if err == nil || !errors.Is(err, unix.EBUSY) {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kill cgroup %s: %w", dir, err)
	}
	if err := waitUnpopulated(ctx, dir); err != nil {
		return err
	}
	return removeTree(dir)
}

// removeTree removes the cgroup dir and its descendants, deepest first.
func removeTree(dir string) error {
	for _, d := range cgroupTree(dir) {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove cgroup %s: %w", d, err)
		}
	}
	return nil
}

// waitUnpopulated waits until no process is left in the cgroup dir or its
// descendants: the kernel notifies a change of cgroup.events as POLLPRI.
func waitUnpopulated(ctx context.Context, dir string) error {
	f, err := os.Open(filepath.Join(dir, "cgroup.events"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	buf := make([]byte, 512)
	for {
		n, err := f.ReadAt(buf, 0)
		if n == 0 && err != nil {
			return fmt.Errorf("cgroup %s: %w", dir, err)
		}
		if strings.Contains(string(buf[:n]), "populated 0") {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("cgroup %s: processes still in it after cgroup.kill", dir)
		}
		fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLPRI}}
		if _, err := unix.Poll(fds, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
			return fmt.Errorf("cgroup %s: %w", dir, err)
		}
	}
}

// cgroupTree lists the cgroup dir and its descendants, deepest first; nil
// if dir does not exist.
func cgroupTree(dir string) []string {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, cgroupTree(filepath.Join(dir, e.Name()))...)
		}
	}
	return append(out, dir)
}
