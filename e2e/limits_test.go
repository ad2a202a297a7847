package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/daemon"
	"github.com/sandboxd/sandboxd/internal/runtime/runc"
	"github.com/sandboxd/sandboxd/sandbox"
)

// hostBytes is the host disk space that the files under dir take, on
// dir's own file system: mounts below it (a sandbox's rootfs, its quota
// disk) are not counted again, the quota disk counts by its image file. It
// sees only what one daemon (its data directory) takes, whatever other
// tests write meanwhile.
func hostBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var root unix.Stat_t
	if err := unix.Stat(dir, &root); err != nil {
		t.Fatal(err)
	}
	var n int64
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		var st unix.Stat_t
		if err != nil || unix.Lstat(p, &st) != nil {
			return nil // gone meanwhile
		}
		if st.Dev != root.Dev {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		n += st.Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// diskState says whether a sandbox's quota file system is mounted and has a
// loop device, from the host's mount table and /sys/block.
func diskState(d *Daemon, id string) (mounted, looped bool) {
	for _, l := range runc.Leftovers(d.DataDir, id) {
		mounted = mounted || strings.HasSuffix(l, "/sandboxes/"+id+"/disk")
		looped = looped || strings.HasPrefix(l, "/dev/loop")
	}
	return mounted, looped
}

// waitDiskDown waits until sandbox id's disk is neither mounted nor bound
// to a loop device.
func waitDiskDown(t *testing.T, d *Daemon, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, l := diskState(d, id)
		if !m && !l {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox %s's disk still up (mounted %v, loop device %v): %v", id, m, l, runc.Leftovers(d.DataDir, id))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDiskQuota: a sandbox that writes past its diskMB gets ENOSPC, the
// host loses no more than the quota, another sandbox writes on; files
// survive the container's loss and a daemon restart; destroy leaves no
// disk file, mount or loop device.
func TestDiskQuota(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 3*time.Minute)
	full, err := d.Client.Create(ctx, "quota-full", &api.CreateSandboxRequest{Resources: &api.Resources{DiskMB: 64}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := full.Info(ctx)
	if err != nil || info.Resources.DiskMB != 64 {
		t.Fatalf("info: %+v %v; want diskMB 64", info, err)
	}
	other := d.Client.Get("quota-other") // the daemon's default quota
	if info, err := other.Info(ctx); err == nil || info != nil {
		t.Fatalf("quota-other exists before use")
	}
	mustExec(t, other, "true")
	if info, err := other.Info(ctx); err != nil || info.Resources.DiskMB != daemon.DefaultDiskMB {
		t.Fatalf("default quota: %+v %v; want diskMB %d", info, err, daemon.DefaultDiskMB)
	}
	if m, l := diskState(d, "quota-full"); !m || !l {
		t.Fatalf("running sandbox's disk: mounted %v, loop device %v; want both", m, l)
	}
	mustExec(t, full, "echo kept > /workspace/kept")

	// Writes forever (well: 1 GiB, 16 times the quota, so that a broken
	// quota fails the test instead of filling the host's disk).
	before := hostBytes(t, d.DataDir)
	res := mustExec(t, full, "dd if=/dev/zero of=/workspace/big bs=1M count=1024")
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "No space left") {
		t.Fatalf("dd past the quota: exit %d, stderr %q; want ENOSPC", res.ExitCode, res.Stderr)
	}
	// The quota's 64 MiB, and room for the file system's own blocks.
	lost := hostBytes(t, d.DataDir) - before
	t.Logf("the host lost %d MiB to the full sandbox", lost>>20)
	if lost > 128<<20 {
		t.Errorf("the host lost %d MiB to a sandbox with a 64 MiB quota", lost>>20)
	}
	if res := mustExec(t, full, "df -m /workspace | tail -1"); !strings.Contains(res.Stdout, " 100% ") && !strings.Contains(res.Stdout, " 99% ") {
		t.Errorf("df in the full sandbox: %q", res.Stdout)
	}
	if res := mustExec(t, other, "dd if=/dev/zero of=/workspace/f bs=1M count=16 2>&1 && echo wrote"); !strings.Contains(res.Stdout, "wrote") {
		t.Errorf("the other sandbox cannot write: %q %q", res.Stdout, res.Stderr)
	}
	// A streamed upload counts against the quota too.
	_, err = full.WriteFileStream(ctx, "/workspace/upload", bytes.NewReader(make([]byte, 8<<20)), nil)
	if !errors.Is(err, sandbox.ErrResourceExhausted) {
		t.Errorf("upload into a full sandbox: %v; want ErrResourceExhausted", err)
	}
	mustExec(t, full, "rm /workspace/big")

	// The container is lost: the daemon stops the sandbox, unmounting its
	// disk; the next call mounts it again with the files.
	killContainer(t, d, "quota-full")
	waitDiskDown(t, d, "quota-full")
	if res := mustExec(t, full, "cat /workspace/kept"); res.Stdout != "kept\n" {
		t.Errorf("file after the container's loss: %q", res.Stdout)
	}
	// The same across a daemon restart that finds the container gone.
	d.Stop()
	killContainer(t, d, "quota-full")
	d.start()
	waitDiskDown(t, d, "quota-full")
	full = d.Client.Get("quota-full")
	if res := mustExec(t, full, "cat /workspace/kept; df -m /workspace | tail -1"); !strings.HasPrefix(res.Stdout, "kept\n") {
		t.Errorf("file after restart: %q", res.Stdout)
	}

	img := filepath.Join(d.DataDir, "sandboxes", "quota-full", "disk.img")
	if _, err := os.Stat(img); err != nil {
		t.Fatalf("disk file: %v", err)
	}
	if err := full.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if left := runc.Leftovers(d.DataDir, "quota-full"); len(left) > 0 {
		t.Errorf("left after destroy: %v", left)
	}
	if _, err := os.Stat(img); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("disk file after destroy: %v", err)
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(b, []byte("/sandboxes/quota-full/")) {
		t.Errorf("mountinfo still lists the destroyed sandbox")
	}
}

// killContainer kills a sandbox's container from outside, as the OOM killer or
// an operator would.
func killContainer(t *testing.T, d *Daemon, id string) {
	t.Helper()
	pid, err := os.ReadFile(filepath.Join(d.DataDir, "sandboxes", id, "init.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := os.FindProcess(atoi(t, string(pid))); err == nil {
		_ = p.Kill()
	}
}

// TestBadDiskMB: a quota too small or negative is refused.
func TestBadDiskMB(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, time.Minute)
	for _, mb := range []int64{-1, 8} {
		_, err := d.Client.Create(ctx, "bad-disk", &api.CreateSandboxRequest{Resources: &api.Resources{DiskMB: mb}})
		if !errors.Is(err, sandbox.ErrValidation) {
			t.Errorf("diskMB %d: %v; want ErrValidation", mb, err)
		}
	}
}

// TestNoDefaultQuota: with --disk-mb 0 a sandbox's files share the host's
// disk (no disk file), unless it asks for a quota.
func TestNoDefaultQuota(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t, func(c *daemon.Config) { c.DiskMB = -1 })
	mustExec(t, d.Client.Get("noquota"), "echo x > /workspace/f")
	if _, err := os.Stat(filepath.Join(d.DataDir, "sandboxes", "noquota", "disk.img")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("disk file without a quota: %v", err)
	}
	if m, l := diskState(d, "noquota"); m || l {
		t.Errorf("no quota, yet a disk mount (%v) or loop device (%v)", m, l)
	}
}

// TestOOM: a sandbox with 64 MiB of memory loses the command that
// allocates 200 MiB (exit 137), and answers the next call.
func TestOOM(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	sb, err := d.Client.Create(ctx, "oom", &api.CreateSandboxRequest{Resources: &api.Resources{MemoryMB: 64}})
	if err != nil {
		t.Fatal(err)
	}
	// bytes * n writes every page (a bytearray of zeros might not).
	res := mustExec(t, sb, `python3 -c 'b = b"\x01" * (200 << 20); print(len(b))'`)
	if res.ExitCode != 137 {
		t.Errorf("200 MiB in 64 MiB: exit %d, stdout %q, stderr %q; want 137", res.ExitCode, res.Stdout, res.Stderr)
	}
	if res := mustExec(t, sb, "echo alive"); res.Stdout != "alive\n" {
		t.Errorf("after the OOM kill: %q", res.Stdout)
	}
}

// TestForkBomb: the pids limit stops a process that forks without end,
// and the sandbox works once the bomb is gone.
func TestForkBomb(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	sb, err := d.Client.Create(ctx, "forkbomb", &api.CreateSandboxRequest{Resources: &api.Resources{Pids: 64}})
	if err != nil {
		t.Fatal(err)
	}
	// Children stay (holding their pids) until fork fails, then all go.
	const bomb = `python3 - <<'EOF'
import os, signal
kids = []
try:
    while True:
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        kids.append(pid)
except OSError as e:
    print("stopped", len(kids), e.errno)
for k in kids:
    os.kill(k, signal.SIGKILL)
    os.waitpid(k, 0)
EOF`
	res := mustExec(t, sb, bomb)
	var n, errno int
	if _, err := fmt.Sscanf(res.Stdout, "stopped %d %d", &n, &errno); err != nil || n >= 64 || errno != int(unix.EAGAIN) {
		t.Fatalf("fork bomb: %q %q (%v); want it stopped below 64 processes with EAGAIN", res.Stdout, res.Stderr, err)
	}
	// The classic one, in a session of its own, cut by a timeout: the
	// limit holds, the timeout kills the command's cgroup whole (see
	// TestKillLeavesNothing), deleting the session goes through, and the
	// sandbox works again.
	bombs, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "bombs"})
	if err != nil {
		t.Fatal(err)
	}
	res, err = bombs.Exec(ctx, `bomb() { bomb | bomb & }; bomb; sleep 30`, &sandbox.ExecOptions{Timeout: 3 * time.Second})
	switch {
	case err == nil:
		if res.ExitCode != 124 || !strings.Contains(res.Stderr, "Resource temporarily unavailable") {
			t.Errorf("classic fork bomb: exit %d, stderr %.200q; want 124 (timed out) after failed forks", res.ExitCode, res.Stderr)
		}
	case errors.Is(err, sandbox.ErrInternal), errors.Is(err, sandbox.ErrUnavailable):
		// The agent itself may die at the limit (its Go runtime cannot
		// make a thread); the container then starts again on next use.
		t.Logf("the agent was lost to the bomb: %v", err)
	default:
		t.Fatalf("classic fork bomb: %v", err)
	}
	switch err := sb.DeleteSession(ctx, "bombs"); {
	case err == nil, errors.Is(err, sandbox.ErrSessionNotFound):
	case errors.Is(err, sandbox.ErrInternal), errors.Is(err, sandbox.ErrUnavailable):
		// Lost to the bomb during the delete: the container starts
		// again, without the session, on next use.
		t.Logf("the agent was lost to the bomb: %v", err)
	default:
		t.Fatalf("delete the bomb's session: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := sb.Exec(ctx, "echo alive; ls /proc | grep -c '^[0-9]'", nil)
		if err == nil && strings.HasPrefix(res.Stdout, "alive\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox did not recover from the fork bomb: %+v %v", res, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAgentLimits: past --max-processes and --max-sessions, calls get 429
// RESOURCE_EXHAUSTED naming the limit; freeing one makes room.
func TestAgentLimits(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t, func(c *daemon.Config) { c.AgentLimits = agentapi.Limits{Processes: 2, Sessions: 1} })
	ctx := ctxT(t, 2*time.Minute)
	sb := d.Client.Get("agentlimits")
	var procs []*sandbox.Process
	for i := 0; i < 2; i++ {
		p, err := sb.StartProcess(ctx, "sleep 60", nil)
		if err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
		procs = append(procs, p)
	}
	_, err := sb.StartProcess(ctx, "sleep 60", nil)
	var se *sandbox.Error
	if !errors.Is(err, sandbox.ErrResourceExhausted) || !errors.As(err, &se) || se.HTTPStatus != 429 || !strings.Contains(err.Error(), "--max-processes") {
		t.Fatalf("third process: %v; want 429 RESOURCE_EXHAUSTED naming --max-processes", err)
	}
	if _, err := procs[0].Kill(ctx, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := sb.StartProcess(ctx, "sleep 60", nil)
		if err == nil {
			break
		}
		if !errors.Is(err, sandbox.ErrResourceExhausted) || time.Now().After(deadline) {
			t.Fatalf("process after a kill: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	if _, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "one"}); err != nil {
		t.Fatal(err)
	}
	_, err = sb.CreateSession(ctx, api.CreateSessionRequest{ID: "two"})
	if !errors.Is(err, sandbox.ErrResourceExhausted) || !strings.Contains(err.Error(), "--max-sessions") {
		t.Fatalf("second session: %v; want RESOURCE_EXHAUSTED naming --max-sessions", err)
	}
	mustExec(t, sb, "true") // the default session is not counted
	if err := sb.DeleteSession(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "two"}); err != nil {
		t.Errorf("session after a delete: %v", err)
	}
}

// TestMaxSandboxes: past --max-sandboxes, a create gets 429
// RESOURCE_EXHAUSTED; destroying one makes room.
func TestMaxSandboxes(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t, func(c *daemon.Config) { c.MaxSandboxes = 2 })
	ctx := ctxT(t, 2*time.Minute)
	mustExec(t, d.Client.Get("max-a"), "true")
	mustExec(t, d.Client.Get("max-b"), "true")
	_, err := d.Client.Get("max-c").Exec(ctx, "true", nil)
	var se *sandbox.Error
	if !errors.Is(err, sandbox.ErrResourceExhausted) || !errors.As(err, &se) || se.HTTPStatus != 429 {
		t.Fatalf("third sandbox: %v; want 429 RESOURCE_EXHAUSTED", err)
	}
	if _, err := d.Client.Create(ctx, "max-c", nil); !errors.Is(err, sandbox.ErrResourceExhausted) {
		t.Fatalf("third sandbox by PUT: %v; want RESOURCE_EXHAUSTED", err)
	}
	if err := d.Client.Get("max-a").Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, d.Client.Get("max-c"), "true")
}

// TestRequestSizeLimits: a JSON body past 32 MiB is 413 PAYLOAD_TOO_LARGE;
// header lines past 64 KiB are 431.
func TestRequestSizeLimits(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, time.Minute)
	// Raw, so that the SDK's JSON encoding of 33 MiB does not slow the test.
	body := io.MultiReader(strings.NewReader(`{"command": "echo `), bytes.NewReader(bytes.Repeat([]byte("a"), 33<<20)), strings.NewReader(`"}`))
	req, err := http.NewRequestWithContext(ctx, "POST", d.URL+"/v1/sandboxes/sizes/exec", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e api.Error
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || e.Code != api.CodePayloadTooLarge {
		t.Errorf("33 MiB exec body: %d %+v; want 413 PAYLOAD_TOO_LARGE", resp.StatusCode, e)
	}
	req, err = http.NewRequestWithContext(ctx, "GET", d.URL+"/v1/sandboxes", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.Token)
	req.Header.Set("X-Big", strings.Repeat("b", daemon.MaxHeaderBytes+8<<10)) // net/http allows 4 KiB of slack
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("%d KiB of headers: status %d; want 431", daemon.MaxHeaderBytes>>10, resp.StatusCode)
	}
}
