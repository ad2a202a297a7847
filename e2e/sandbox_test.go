package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/runtime/runc"
	"github.com/sandboxd/sandboxd/sandbox"
)

func mustExec(t *testing.T, sb *sandbox.Sandbox, cmd string) *api.ExecResult {
	t.Helper()
	res, err := sb.Exec(ctxT(t, 2*time.Minute), cmd, nil)
	if err != nil {
		t.Fatalf("exec %q: %v", cmd, err)
	}
	return res
}

func TestExec(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("demo")
	cases := []struct {
		cmd            string
		exit           int
		stdout, stderr string // stderr: substring
	}{
		{cmd: `python3 -c 'print(2+2)'`, stdout: "4\n"},
		{cmd: `echo out; echo err >&2; (exit 3)`, exit: 3, stdout: "out\n", stderr: "err"},
		{cmd: `no-such-command-xyz`, exit: 127, stderr: "not found"},
		{cmd: `printf 'no newline'`, stdout: "no newline"},
		{cmd: `pwd; hostname`, stdout: "/workspace\ndemo\n"},
		{cmd: `sh -c 'kill -9 $$'`, exit: 137},
		{cmd: `python3 -c 'import pandas, numpy, matplotlib, IPython; print("ok")'`, stdout: "ok\n"},
		{cmd: `node -e 'console.log(process.versions.node.split(".")[0] >= 20)'`, stdout: "true\n"},
	}
	for _, c := range cases {
		res := mustExec(t, sb, c.cmd)
		if res.ExitCode != c.exit || res.Success != (c.exit == 0) || res.Stdout != c.stdout || !strings.Contains(res.Stderr, c.stderr) {
			t.Errorf("%s: got exit %d success %v stdout %q stderr %q; want exit %d stdout %q stderr containing %q",
				c.cmd, res.ExitCode, res.Success, res.Stdout, res.Stderr, c.exit, c.stdout, c.stderr)
		}
	}
}

func TestExecOptions(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("opts")
	ctx := ctxT(t, time.Minute)
	in := "line one\nline two\n"
	res, err := sb.Exec(ctx, `wc -l; echo "$GREETING"; pwd`, &sandbox.ExecOptions{
		Stdin: &in, Env: map[string]string{"GREETING": "hello there"}, Cwd: "/tmp",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "2\nhello there\n/tmp\n" {
		t.Errorf("stdin/env/cwd: %q", res.Stdout)
	}
	// Without stdin, input is empty rather than the daemon's.
	if res := mustExec(t, sb, `cat; echo "[$GREETING]"`); res.Stdout != "[]\n" {
		t.Errorf("no stdin, per-call env leaked: %q", res.Stdout)
	}
	res, err = sb.Exec(ctx, `echo started; sleep 30; echo never`, &sandbox.ExecOptions{Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 124 || res.Stdout != "started\n" || !strings.Contains(res.Stderr, "Command timed out after 500 ms") {
		t.Errorf("timeout: %+v", res)
	}
	if res.DurationMs > 10_000 {
		t.Errorf("timeout took %d ms", res.DurationMs)
	}
	if _, err := sb.Exec(ctx, "true", &sandbox.ExecOptions{Cwd: "/no/such/dir"}); !errors.Is(err, sandbox.ErrValidation) {
		t.Errorf("missing cwd: %v, want ErrValidation", err)
	}
	if _, err := sb.Exec(ctx, "", nil); !errors.Is(err, sandbox.ErrValidation) {
		t.Errorf("empty command: %v, want ErrValidation", err)
	}
}

func TestAuthAndValidation(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, time.Minute)
	for _, tok := range []string{"", "wrong"} {
		c, err := sandbox.NewClient(sandbox.Options{URL: d.URL, Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Get("demo").Exec(ctx, "true", nil); !errors.Is(err, sandbox.ErrUnauthorized) {
			t.Errorf("token %q: %v, want ErrUnauthorized", tok, err)
		}
		if _, err := c.List(ctx, sandbox.ListOptions{}); !errors.Is(err, sandbox.ErrUnauthorized) {
			t.Errorf("list with token %q: %v, want ErrUnauthorized", tok, err)
		}
	}
	// Nothing was created by the refused calls.
	if list, err := d.Client.List(ctx, sandbox.ListOptions{}); err != nil || len(list) != 0 {
		t.Errorf("after refused calls: %v %v", list, err)
	}
	for _, id := range []string{"-bad", "bad-", "has_underscore", "a.b", strings.Repeat("a", 64), "sp ace"} {
		if _, err := d.Client.Get(id).Exec(ctx, "true", nil); !errors.Is(err, sandbox.ErrValidation) {
			t.Errorf("id %q: %v, want ErrValidation", id, err)
		}
	}
	// Uppercase IDs are lowercased.
	if res := mustExec(t, d.Client.Get("MiXeD"), "hostname"); res.Stdout != "mixed\n" {
		t.Errorf("uppercase id: hostname %q", res.Stdout)
	}
	if _, err := d.Client.Get("never-made").Info(ctx); !errors.Is(err, sandbox.ErrSandboxNotFound) {
		t.Errorf("info of unknown: %v, want ErrSandboxNotFound", err)
	}
	if _, err := d.Client.Get("never-made").Info(ctx); !errors.Is(err, sandbox.ErrSandboxNotFound) {
		t.Errorf("GET created the sandbox: %v", err)
	}
	// Health and metrics need no token.
	for _, p := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get(d.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %s", p, resp.Status)
		}
	}
}

func TestCreateOptionsAndLifecycle(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	sb, err := d.Client.Create(ctx, "opts", &api.CreateSandboxRequest{
		Env:       map[string]string{"PROJECT": "alpha"},
		Cwd:       "/tmp",
		Resources: &api.Resources{MemoryMB: 256, Pids: 100, CPUs: 0.5},
		Labels:    map[string]string{"team": "a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res := mustExec(t, sb, `echo "$PROJECT"; pwd`); res.Stdout != "alpha\n/tmp\n" {
		t.Errorf("env/cwd from create: %q", res.Stdout)
	}
	info, err := sb.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Status != api.StatusRunning || info.Resources.MemoryMB != 256 || info.Resources.Pids != 100 || info.Labels["team"] != "a" || info.SleepAfter != "10m" {
		t.Errorf("info = %+v", info)
	}
	// The limits are the container's cgroup's.
	cg := runc.CgroupPath(d.DataDir, "opts")
	for file, want := range map[string]string{
		"/sys/fs/cgroup/memory" + cg + "/memory.limit_in_bytes": strconv.Itoa(256 << 20),
		"/sys/fs/cgroup/pids" + cg + "/pids.max":                "100",
		"/sys/fs/cgroup/cpu" + cg + "/cpu.cfs_quota_us":         "50000",
	} {
		b, err := os.ReadFile(file)
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s = %q, %v; want %s", file, b, err, want)
		}
	}
	// PUT again with other resources: refused, and nothing changes
	// (TestCreateExistingOptions has the rest of the rule).
	if _, err := d.Client.Create(ctx, "opts", &api.CreateSandboxRequest{Resources: &api.Resources{MemoryMB: 512}}); !errors.Is(err, sandbox.ErrOptionsConflict) {
		t.Errorf("second PUT with other resources: %v; want SANDBOX_OPTIONS_CONFLICT", err)
	}
	if info, _ := sb.Info(ctx); info.Resources.MemoryMB != 256 {
		t.Errorf("second PUT changed resources: %+v", info.Resources)
	}
	// PATCH.
	keep := true
	sleep := "1h"
	upd, err := sb.Update(ctx, api.UpdateSandboxRequest{KeepAlive: &keep, SleepAfter: &sleep, Labels: &map[string]string{"team": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if !upd.KeepAlive || upd.SleepAfter != "1h" || upd.Labels["team"] != "b" {
		t.Errorf("patch: %+v", upd)
	}
	bad := "soon"
	if _, err := sb.Update(ctx, api.UpdateSandboxRequest{SleepAfter: &bad}); !errors.Is(err, sandbox.ErrValidation) {
		t.Errorf("bad sleepAfter: %v", err)
	}
	if _, err := d.Client.Get("nope").Update(ctx, api.UpdateSandboxRequest{KeepAlive: &keep}); !errors.Is(err, sandbox.ErrSandboxNotFound) {
		t.Errorf("patch unknown: %v", err)
	}
	// Bad create options.
	for name, req := range map[string]*api.CreateSandboxRequest{
		"image":   {Image: "../etc"},
		"missing": {Image: "no-such-image"},
		"memory":  {Resources: &api.Resources{MemoryMB: -1}},
		"network": {Network: "host"},
		"cwd":     {Cwd: "relative"},
	} {
		if _, err := d.Client.Create(ctx, "bad-"+name, req); !errors.Is(err, sandbox.ErrValidation) {
			t.Errorf("create with bad %s: %v, want ErrValidation", name, err)
		}
	}
	// Labels filter the list.
	mustExec(t, d.Client.Get("other"), "true")
	list, err := d.Client.List(ctx, sandbox.ListOptions{Labels: map[string]string{"team": "b"}})
	if err != nil || len(list) != 1 || list[0].ID != "opts" {
		t.Errorf("list by label: %v %v", list, err)
	}
	// Child cgroups made in the sandbox, one with a process in it: the
	// leftovers check sees them while they exist.
	if res := mustExec(t, sb, "mkdir -p /sys/fs/cgroup/job/a/b && { sleep 1000 >/dev/null 2>&1 & echo $! > /sys/fs/cgroup/job/a/b/cgroup.procs; }"); res.ExitCode != 0 {
		t.Fatalf("child cgroups: %s", res.Stderr)
	}
	if left := runc.Leftovers(d.DataDir, "opts"); !slices.ContainsFunc(left, func(p string) bool { return strings.HasSuffix(p, cg+"/job/a/b") }) {
		t.Errorf("leftovers of a running sandbox miss its child cgroups: %v", left)
	}
	// Destroy leaves nothing, and is idempotent.
	if err := sb.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sb.Destroy(ctx); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
	if left := runc.Leftovers(d.DataDir, "opts"); len(left) > 0 {
		t.Errorf("left after destroy: %v", left)
	}
	if _, err := sb.Info(ctx); !errors.Is(err, sandbox.ErrSandboxNotFound) {
		t.Errorf("info after destroy: %v", err)
	}
	// The ID can be used again: a new, empty sandbox.
	if res := mustExec(t, sb, "echo $PROJECT; ls /workspace | wc -l"); res.Stdout != "\n0\n" {
		t.Errorf("recreated sandbox: %q", res.Stdout)
	}
}

func TestConcurrentFirstUseCreatesOnce(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := d.Client.Get("race").Exec(ctxT(t, 2*time.Minute), fmt.Sprintf("echo %d >> /workspace/log", i), nil)
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if res := mustExec(t, d.Client.Get("race"), "wc -l < /workspace/log"); res.Stdout != fmt.Sprintf("%d\n", n) {
		t.Errorf("lines = %q, want %d", res.Stdout, n)
	}
	if got := metric(t, d, "sandboxd_create_duration_seconds_count"); got != "1" {
		t.Errorf("sandboxes created = %s, want 1", got)
	}
}

// metric returns the value of an unlabelled series from /metrics.
func metric(t testing.TB, d *Daemon, name string) string {
	t.Helper()
	for _, line := range strings.Split(metricsText(t, d), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

func TestRestartKeepsSandboxes(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	a, b := d.Client.Get("keep-a"), d.Client.Get("keep-b")
	mustExec(t, a, "echo alpha > /workspace/data; mkdir -p /root/deep && echo x > /root/deep/f")
	mustExec(t, b, "echo beta > /workspace/data")

	// A graceful restart: containers survive and are re-attached.
	d.Restart()
	if res := mustExec(t, d.Client.Get("keep-a"), "cat /workspace/data /root/deep/f"); res.Stdout != "alpha\nx\n" {
		t.Errorf("after restart: %q", res.Stdout)
	}
	// Containers gone while the daemon was away (as after a host reboot):
	// the files are still there and the sandbox starts again on use.
	d.Stop()
	for _, id := range []string{"keep-a", "keep-b"} {
		pid, err := os.ReadFile(filepath.Join(d.DataDir, "sandboxes", id, "init.pid"))
		if err != nil {
			t.Fatal(err)
		}
		if p, err := os.FindProcess(atoi(t, string(pid))); err == nil {
			_ = p.Kill()
		}
	}
	d.start()
	if res := mustExec(t, d.Client.Get("keep-b"), "cat /workspace/data"); res.Stdout != "beta\n" {
		t.Errorf("after container loss: %q", res.Stdout)
	}
	list, err := d.Client.List(ctx, sandbox.ListOptions{})
	if err != nil || len(list) != 2 {
		t.Fatalf("list after restart: %v %v", list, err)
	}
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAgentLossRecovers kills a sandbox's agent from outside: the daemon
// notices at once (it watches the container's init), marks the sandbox
// stopped, and the next call starts it again with its files.
func TestAgentLossRecovers(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("crash")
	mustExec(t, sb, "echo kept > /workspace/f")
	pid, err := os.ReadFile(filepath.Join(d.DataDir, "sandboxes", "crash", "init.pid"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := os.FindProcess(atoi(t, string(pid)))
	_ = p.Kill()
	ctx := ctxT(t, time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := sb.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Status == api.StatusStopped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %s 10 s after the container died", info.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if res := mustExec(t, sb, "cat /workspace/f"); res.Stdout != "kept\n" {
		t.Errorf("after agent loss: %+v", res)
	}
}

// TestOutputIsByteExact: output that is not UTF-8, or holds NUL bytes,
// reaches the SDK byte for byte.
func TestOutputIsByteExact(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	res := mustExec(t, d.Client.Get("bytes"), `printf 'a\0b\xff\xfe\xc3'; printf '\xe2\x82' >&2`)
	if res.Stdout != "a\x00b\xff\xfe\xc3" || res.Stderr != "\xe2\x82" {
		t.Errorf("stdout %q stderr %q", res.Stdout, res.Stderr)
	}
}

// TestDestroyDuringExec: a call cut short by a destroy says so, is not
// retried, and does not bring the sandbox back.
func TestDestroyDuringExec(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("doomed")
	mustExec(t, sb, "true")
	errc := make(chan error, 1)
	running := make(chan struct{})
	var once sync.Once
	go func() {
		_, err := sb.Exec(ctxT(t, time.Minute), "echo running; sleep 30", &sandbox.ExecOptions{
			OnStdout: func([]byte) { once.Do(func() { close(running) }) },
		})
		errc <- err
	}()
	select {
	case <-running:
	case err := <-errc:
		t.Fatalf("exec ended before the destroy: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("exec did not start in a minute")
	}
	if err := sb.Destroy(ctxT(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, sandbox.ErrSandboxNotFound) {
			t.Errorf("exec cut by destroy: %v, want ErrSandboxNotFound", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("exec still running 20 s after its sandbox was destroyed")
	}
	if list, err := d.Client.List(ctxT(t, time.Minute), sandbox.ListOptions{}); err != nil || len(list) != 0 {
		t.Errorf("after destroy: %v %v", list, err)
	}
}
