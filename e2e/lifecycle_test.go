package e2e

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// waitStatus polls sb's status until it is want, failing after within.
func waitStatus(t *testing.T, sb *sandbox.Sandbox, want string, within time.Duration) time.Duration {
	t.Helper()
	ctx := ctxT(t, within+30*time.Second)
	began := time.Now()
	for {
		info, err := sb.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Status == want {
			return time.Since(began)
		}
		if time.Since(began) > within {
			t.Fatalf("%s: status %s after %v, want %s", sb.ID(), info.Status, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertStaysAwake checks that sb is running throughout d.
func assertStaysAwake(t *testing.T, sb *sandbox.Sandbox, d time.Duration) {
	t.Helper()
	ctx := ctxT(t, d+30*time.Second)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		info, err := sb.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Status != api.StatusRunning {
			t.Fatalf("%s: status %s, want it kept awake", sb.ID(), info.Status)
		}
	}
}

// pidAlive tells whether host pid exists (and is not a zombie).
func pidAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestSleepAndWake: after sleepAfter without calls, the sandbox sleeps (its
// container is gone, its files stay); the next call wakes it transparently,
// with its files and its sessions' settings.
func TestSleepAndWake(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	sb, err := d.Client.Create(ctx, "sleepy", &api.CreateSandboxRequest{SleepAfter: "2s"})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, sb, "echo kept > /workspace/f; sleep 100 &")
	if _, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "s1", Env: map[string]string{"S1": "one"}, Cwd: "/tmp", CommandTimeoutMs: 9000}); err != nil {
		t.Fatal(err)
	}
	pid := sandboxInitPid(t, sb)
	lastCall := time.Now()
	took := waitStatus(t, sb, api.StatusSleeping, 15*time.Second)
	if slept := time.Since(lastCall); slept < 2*time.Second {
		t.Errorf("slept %v after the last call, before its sleepAfter of 2s", slept)
	}
	t.Logf("asleep %v after the last call", took)
	if pidAlive(pid) {
		t.Errorf("the container's init (pid %d) still runs while the sandbox sleeps", pid)
	}
	// Asking about it does not wake it.
	assertStatusFor(t, sb, api.StatusSleeping, 500*time.Millisecond)

	// Any call wakes it; the caller sees only latency.
	res := mustExec(t, sb, "cat /workspace/f; pgrep -x sleep || echo no-sleep")
	// Awake for the rest of the test, however slow the machine: one wake
	// and one sleep are counted below.
	if err := sb.SetSleepAfter(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "kept\nno-sleep\n" {
		t.Errorf("after wake: %q (files kept, processes gone)", res.Stdout)
	}
	if info, err := sb.Info(ctx); err != nil || info.Status != api.StatusRunning {
		t.Fatalf("after wake: %+v %v", info, err)
	}
	// Sessions come back with their settings and a fresh shell.
	out, err := sb.GetSession("s1").Exec(ctx, `pwd; echo "$S1"`, nil)
	if err != nil || out.Stdout != "/tmp\none\n" {
		t.Errorf("session after wake: %+v %v", out, err)
	}
	if v := metric(t, d, "sandboxd_wake_duration_seconds_count"); v != "1" {
		t.Errorf("sandboxd_wake_duration_seconds_count = %q, want 1", v)
	}
	if v := metric(t, d, "sandboxd_sleeps_total"); v != "1" {
		t.Errorf("sandboxd_sleeps_total = %q, want 1", v)
	}
}

// assertStatusFor checks that sb keeps status want throughout dur.
func assertStatusFor(t *testing.T, sb *sandbox.Sandbox, want string, dur time.Duration) {
	t.Helper()
	ctx := ctxT(t, dur+30*time.Second)
	for end := time.Now().Add(dur); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		info, err := sb.Info(ctx)
		if err != nil || info.Status != want {
			t.Fatalf("%s: %+v %v, want status %s", sb.ID(), info, err, want)
		}
	}
}

// TestKeepAliveAndSleepAfter: keepAlive prevents sleep; turning it off, or
// shortening sleepAfter with PATCH (through the SDK), takes effect at once.
func TestKeepAliveAndSleepAfter(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	kept, err := d.Client.Create(ctx, "kept", &api.CreateSandboxRequest{SleepAfter: "1s", KeepAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	other := d.Client.Get("default-sleep")
	mustExec(t, kept, "true")
	mustExec(t, other, "true")
	assertStaysAwake(t, kept, 3*time.Second)

	if err := kept.SetKeepAlive(ctx, false); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, kept, api.StatusSleeping, 10*time.Second)

	// The default is 10 minutes; a shorter one applies to an idle sandbox.
	if info, err := other.Info(ctx); err != nil || info.SleepAfter != "10m" || info.Status != api.StatusRunning {
		t.Fatalf("default sandbox: %+v %v", info, err)
	}
	if err := other.SetSleepAfter(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, other, api.StatusSleeping, 10*time.Second)
	if info, _ := other.Info(ctx); info.SleepAfter != "1s" {
		t.Errorf("sleepAfter = %q", info.SleepAfter)
	}
	if err := other.SetSleepAfter(ctx, 10*time.Millisecond); !errors.Is(err, sandbox.ErrValidation) {
		t.Errorf("sleepAfter of 10ms: %v, want a validation error", err)
	}
	if err := d.Client.Get("nobody").SetKeepAlive(ctx, true); !errors.Is(err, sandbox.ErrSandboxNotFound) {
		t.Errorf("keepAlive of a missing sandbox: %v", err)
	}

	// Across a daemon restart: a sleeping sandbox stays asleep until a
	// call; a running one, re-attached, still sleeps after its sleepAfter
	// (long enough for a slow restart to find it running).
	awake, err := d.Client.Create(ctx, "reattached", &api.CreateSandboxRequest{SleepAfter: "15s"})
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, awake, "true")
	d.Restart()
	other, awake = d.Client.Get("default-sleep"), d.Client.Get("reattached")
	if info, err := awake.Info(ctx); err != nil || info.Status != api.StatusRunning {
		t.Fatalf("re-attached: %+v %v", info, err)
	}
	assertStatusFor(t, other, api.StatusSleeping, 300*time.Millisecond)
	waitStatus(t, awake, api.StatusSleeping, 45*time.Second)
	if res := mustExec(t, other, "echo woke"); res.Stdout != "woke\n" {
		t.Errorf("wake after restart: %q", res.Stdout)
	}
}

// TestOpenStreamsKeepAwake: an exec stream, or a process's log stream,
// that stays open longer than sleepAfter keeps the sandbox awake; it
// sleeps once they end.
func TestOpenStreamsKeepAwake(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	sb, err := d.Client.Create(ctx, "streaming", &api.CreateSandboxRequest{SleepAfter: "2s"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sb.ExecStream(ctx, "sleep 5; echo done", nil)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	var complete bool
	for st.Next() {
		ev := st.Event()
		switch ev.Type {
		case api.EventStdout:
			out += string(ev.Data)
		case api.EventComplete:
			complete = ev.ExitCode == 0
		}
	}
	if st.Err() != nil || !complete || out != "done\n" {
		t.Fatalf("exec stream across sleepAfter: out %q complete %v err %v", out, complete, st.Err())
	}

	p, err := sb.StartProcess(ctx, "sleep 5; echo logged", nil)
	if err != nil {
		t.Fatal(err)
	}
	logs, err := sb.StreamProcessLogs(ctx, p.ID(), "")
	if err != nil {
		t.Fatal(err)
	}
	out, complete = "", false
	for logs.Next() {
		ev := logs.Event()
		switch ev.Type {
		case api.EventStdout:
			out += string(ev.Data)
		case api.EventExit:
			complete = ev.ExitCode == 0
		}
	}
	if logs.Err() != nil || !complete || out != "logged\n" {
		t.Fatalf("log stream across sleepAfter: out %q exit %v err %v", out, complete, logs.Err())
	}
	waitStatus(t, sb, api.StatusSleeping, 10*time.Second)
}

// TestLastActiveAt: a call shows in lastActiveAt at once (from memory; the
// store follows within seconds), and a graceful restart keeps it (the
// daemon saves what it has not yet on its way out).
func TestLastActiveAt(t *testing.T) {
	d := StartDaemon(t)
	ctx := ctxT(t, 2*time.Minute)
	sb := d.Client.Get("active")
	mustExec(t, sb, "true")
	time.Sleep(1100 * time.Millisecond) // the next call's time is news
	before := time.Now().Truncate(time.Millisecond)
	mustExec(t, sb, "true")
	// The call's hold is released just after its answer, and noted too.
	var info *api.Sandbox
	waitFor(t, 5*time.Second, "the call in lastActiveAt", func() bool {
		var err error
		if info, err = sb.Info(ctx); err != nil {
			t.Fatal(err)
		}
		return !info.LastActiveAt.Before(before)
	})
	if info.LastActiveAt.After(time.Now()) {
		t.Errorf("lastActiveAt %v after a call made at %v", info.LastActiveAt, before)
	}
	d.Restart()
	again, err := d.Client.Get("active").Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !again.LastActiveAt.Equal(info.LastActiveAt) {
		t.Errorf("lastActiveAt %v after a graceful restart, was %v", again.LastActiveAt, info.LastActiveAt)
	}
}
