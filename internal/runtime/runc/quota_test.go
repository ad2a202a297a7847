package runc_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/agentclient"
	"github.com/sandboxd/sandboxd/internal/runtime"
	"github.com/sandboxd/sandboxd/internal/runtime/runc"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

func agentExec(t *testing.T, inst *runtime.Instance, cmd string) *api.ExecResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := agentclient.New(inst.Socket)
	defer c.Close()
	res, err := c.Exec(ctx, agentapi.ExecRequest{ExecRequest: api.ExecRequest{Command: cmd}})
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	return res
}

// usedBytes is the host space taken by the files under dir, not counting
// other file systems mounted there (the sandbox's rootfs and disk). Not the
// host's free space: other processes write to the same disk meanwhile.
func usedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var root unix.Stat_t
	if err := unix.Stat(dir, &root); err != nil {
		t.Fatal(err)
	}
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Dev != root.Dev {
			return filepath.SkipDir
		}
		n += st.Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDiskQuota fills a sandbox's 32 MiB disk: the writer gets ENOSPC, the
// host loses at most the quota, the sandbox's files survive a restart, and
// destroy leaves neither mount nor loop device.
func TestDiskQuota(t *testing.T) {
	testutil.RequiresRoot(t)
	ctx := context.Background()
	dir := testutil.TempDir(t)
	rt, err := runc.New(runc.Config{Dir: dir, Agent: testutil.AgentBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	const id = "rt-quota"
	t.Cleanup(func() { _ = rt.Destroy(ctx, id) })
	spec := runtime.Spec{ID: id, Image: testutil.BusyboxImage(t), UIDBase: 1_000_000_000 + 9*runtime.IDMapSize,
		Resources: runtime.Resources{DiskMB: 32}}
	before := usedBytes(t, dir)
	inst, err := rt.Start(ctx, spec)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	// While it runs, its disk shows as a mount and a loop device.
	left := strings.Join(runc.Leftovers(dir, id), " ")
	if !strings.Contains(left, "/dev/loop") || !strings.Contains(left, "/disk") {
		t.Fatalf("running sandbox's leftovers %q: want its loop device and disk mount", left)
	}
	for _, f := range strings.Fields(left) {
		if dev, ok := strings.CutPrefix(f, "/dev/"); ok {
			dio, _ := os.ReadFile("/sys/block/" + dev + "/loop/dio")
			t.Logf("%s: direct I/O %s", dev, strings.TrimSpace(string(dio)))
		}
	}
	agentExec(t, inst, "echo kept > /workspace/kept")
	res := agentExec(t, inst, "dd if=/dev/zero of=/workspace/big bs=1M count=100")
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "No space left") {
		t.Fatalf("dd past the quota: exit %d, stderr %q; want ENOSPC", res.ExitCode, res.Stderr)
	}
	if used := usedBytes(t, dir) - before; used > 40<<20 {
		t.Errorf("host lost %d MiB to a 32 MiB quota", used>>20)
	} else {
		t.Logf("host space taken: %d MiB", used>>20)
	}
	if err := rt.Stop(ctx, id); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if left := runc.Leftovers(dir, id); strings.Contains(strings.Join(left, " "), "/dev/loop") {
		t.Errorf("stopped sandbox keeps a loop device: %v", left)
	}
	// A later Start keeps the first size, whatever it is asked for.
	spec.Resources.DiskMB = 1024
	if inst, err = rt.Start(ctx, spec); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if got := agentExec(t, inst, "cat /workspace/kept").Stdout; got != "kept\n" {
		t.Errorf("file after restart = %q", got)
	}
	res = agentExec(t, inst, "rm /workspace/big && df -k /workspace | tail -1")
	if f := strings.Fields(res.Stdout); len(f) < 2 || len(f[1]) > 5 {
		t.Errorf("df after restart: %q; want a size of about 32 MiB", res.Stdout)
	}
	img := filepath.Join(dir, "sandboxes", id, "disk.img")
	if _, err := os.Stat(img); err != nil {
		t.Fatalf("disk file: %v", err)
	}
	if err := rt.Destroy(ctx, id); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if left := runc.Leftovers(dir, id); len(left) > 0 {
		t.Errorf("left after destroy: %v", left)
	}
}
