package runc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/runtime"
)

var _ runtime.UsageReader = (*Runtime)(nil)

// Usage implements runtime.UsageReader. Each figure comes from the
// container's cgroup2 files where they exist (a pure v2 host; cpu.stat's
// usage_usec on a hybrid one too), else from the v1 controllers' at
// /sys/fs/cgroup/<controller>; the disk's from statfs of the sandbox's
// quota file system while it is mounted.
func (r *Runtime) Usage(ctx context.Context, id string) (runtime.Usage, error) {
	if err := checkID(id); err != nil {
		return runtime.Usage{}, err
	}
	if !r.running(id) {
		return runtime.Usage{}, fmt.Errorf("%w: usage of %s: not running", errdefs.ErrNotFound, id)
	}
	cg := r.cgroup(id)
	cpu, errCPU := cpuUsage(cg)
	mem, errMem := readCgroupInt(cg, "memory.current", "memory", "memory.usage_in_bytes")
	pids, errPids := readCgroupInt(cg, "pids.current", "pids", "pids.current")
	disk, errDisk := diskUsed(r.sandboxDir(id))
	if err := errors.Join(errCPU, errMem, errPids, errDisk); err != nil {
		return runtime.Usage{}, fmt.Errorf("usage of %s: %w", id, err)
	}
	return runtime.Usage{CPU: cpu, MemoryBytes: mem, Pids: pids, DiskBytes: disk}, nil
}

// cpuUsage is the CPU time used in cgroups path cg: usage_usec in
// cgroup2's cpu.stat (there even without the cpu controller), else v1's
// cpuacct.usage.
func cpuUsage(cg string) (time.Duration, error) {
	if v2 := cgroup2Dir(cg); v2 != "" {
		b, _ := os.ReadFile(filepath.Join(v2, "cpu.stat"))
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
				usec, err := strconv.ParseInt(v, 10, 64)
				return time.Duration(usec) * time.Microsecond, err
			}
		}
	}
	ns, err := readInt(filepath.Join("/sys/fs/cgroup/cpuacct", cg, "cpuacct.usage"))
	return time.Duration(ns), err
}

// readCgroupInt reads the number in file v2 of cgroups path cg in the
// cgroup2 hierarchy, or, where that controller is not on cgroup2, in file
// v1 of its v1 hierarchy ctrl.
func readCgroupInt(cg, v2, ctrl, v1 string) (int64, error) {
	if dir := cgroup2Dir(cg); dir != "" {
		if n, err := readInt(filepath.Join(dir, v2)); err == nil {
			return n, nil
		}
	}
	return readInt(filepath.Join("/sys/fs/cgroup", ctrl, cg, v1))
}

// readInt reads a file holding one decimal number.
func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// diskUsed is the space used on the quota file system of the sandbox whose
// directory is dir, or 0 if none is mounted at dir/disk (no quota, or not
// running): there, statfs would describe the host's file system.
func diskUsed(dir string) (int64, error) {
	mnt := filepath.Join(dir, diskMount)
	var parent, disk unix.Stat_t
	if err := unix.Stat(dir, &parent); err != nil {
		return 0, err
	}
	if err := unix.Stat(mnt, &disk); err != nil || disk.Dev == parent.Dev {
		return 0, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		return 0, err
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize, nil
}
