package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// TestExecStreamIsLive: chunks arrive as they are written (a progress bar
// without newlines), the stream ends with one complete event.
func TestExecStreamIsLive(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("live")
	ctx := ctxT(t, time.Minute)
	st, err := sb.ExecStream(ctx, `for i in 1 2 3 4; do printf "$i"; sleep 0.3; done; (exit 7)`, nil)
	if err != nil {
		t.Fatal(err)
	}
	var arrivals []time.Time
	var types []string
	var data string
	for ev, err := range st.Events() {
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, ev.Type)
		if ev.Type == api.EventStdout {
			arrivals = append(arrivals, time.Now())
			data += string(ev.Data)
		}
		if ev.Type == api.EventComplete && ev.ExitCode != 7 {
			t.Errorf("complete with exit %d", ev.ExitCode)
		}
	}
	if data != "1234" || types[0] != api.EventStart || types[len(types)-1] != api.EventComplete || len(arrivals) < 3 {
		t.Fatalf("events %v data %q", types, data)
	}
	if spread := arrivals[len(arrivals)-1].Sub(arrivals[0]); spread < 600*time.Millisecond {
		t.Errorf("chunks arrived within %v: buffered, not live", spread)
	}
	// With callbacks, Exec streams too.
	var seen []string
	res, err := sb.Exec(ctx, `echo a; sleep 0.1; echo b >&2`, &sandbox.ExecOptions{
		OnStdout: func(b []byte) { seen = append(seen, "out:"+string(b)) },
		OnStderr: func(b []byte) { seen = append(seen, "err:"+string(b)) },
	})
	if err != nil || res.Stdout != "a\n" || res.Stderr != "b\n" || strings.Join(seen, ",") != "out:a\n,err:b\n" {
		t.Errorf("exec with callbacks: %v %+v %q", err, res, seen)
	}
}

// TestExecStreamEndsWhenSandboxDies: the stream ends promptly with an error
// event, never a completion.
func TestExecStreamEndsWhenSandboxDies(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("dies")
	st, err := sb.ExecStream(ctxT(t, time.Minute), `echo running; sleep 60; echo never`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Next() || st.Event().Type != api.EventStart || !st.Next() || st.Event().Type != api.EventStdout {
		t.Fatalf("first events: %+v %v", st.Event(), st.Err())
	}
	pid, _ := os.ReadFile(filepath.Join(d.DataDir, "sandboxes", "dies", "init.pid"))
	p, _ := os.FindProcess(atoi(t, string(pid)))
	killed := time.Now()
	_ = p.Kill()
	for st.Next() {
		if ev := st.Event(); ev.Type == api.EventComplete {
			t.Fatalf("a completion for a command that never finished: %+v", ev)
		}
	}
	if st.Err() == nil {
		t.Error("stream ended without an error")
	}
	if took := time.Since(killed); took > 5*time.Second {
		t.Errorf("stream ended %v after the sandbox died", took)
	}
}

func TestBackgroundProcesses(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("procs")
	ctx := ctxT(t, 2*time.Minute)

	p, err := sb.StartProcess(ctx, `for i in 1 2 3; do echo line $i; sleep 0.2; done; echo oops >&2; exit 3`, &sandbox.ProcessOptions{ID: "counter"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.StartProcess(ctx, "true", &sandbox.ProcessOptions{ID: "counter"}); !errors.Is(err, sandbox.ErrProcessExists) {
		t.Errorf("duplicate id: %v", err)
	}
	// A foreground exec is not blocked by it.
	if res := mustExec(t, sb, "echo fg"); res.Stdout != "fg\n" {
		t.Errorf("exec beside a process: %q", res.Stdout)
	}
	if r, err := p.WaitForLog(ctx, `line \d`, &sandbox.LogWaitOptions{Regex: true, Timeout: 10 * time.Second}); err != nil || r.Line != "line 1" {
		t.Fatalf("wait for log: %v %+v", err, r)
	}
	code, err := p.WaitForExit(ctx, 10*time.Second)
	if err != nil || code != 3 {
		t.Fatalf("wait for exit: %d %v", code, err)
	}
	info, err := p.Info(ctx)
	if err != nil || info.Status != api.ProcessFailed || info.ExitCode == nil || *info.ExitCode != 3 || info.EndTime == nil {
		t.Errorf("info: %v %+v", err, info)
	}
	logs, err := p.Logs(ctx)
	if err != nil || logs.Stdout != "line 1\nline 2\nline 3\n" || logs.Stderr != "oops\n" {
		t.Errorf("logs: %v %+v", err, logs)
	}
	// Streaming replays from the start, and resumes after an event id.
	st, err := p.StreamLogs(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var all string
	for ev, err := range st.Events() {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == api.EventStdout {
			ids = append(ids, ev.ID)
			all += string(ev.Data)
		}
		if ev.Type == api.EventExit && (ev.ExitCode != 3 || ev.Status != api.ProcessFailed) {
			t.Errorf("exit event: %+v", ev)
		}
	}
	if all != "line 1\nline 2\nline 3\n" || len(ids) != 3 {
		t.Fatalf("replay: %q %v", all, ids)
	}
	st, err = p.StreamLogs(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	all = ""
	for ev, err := range st.Events() {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == api.EventStdout {
			all += string(ev.Data)
		}
	}
	if all != "line 2\nline 3\n" {
		t.Errorf("resumed after %s: %q", ids[0], all)
	}

	// Waits that fail: timeout, and a process that exits first.
	slow, err := sb.StartProcess(ctx, "sleep 30", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := slow.WaitForLog(ctx, "never", &sandbox.LogWaitOptions{Timeout: 300 * time.Millisecond}); !errors.Is(err, sandbox.ErrTimeout) {
		t.Errorf("log wait timeout: %v", err)
	}
	if err := slow.WaitForPort(ctx, 18080, &sandbox.PortWaitOptions{Timeout: 300 * time.Millisecond}); !errors.Is(err, sandbox.ErrTimeout) {
		t.Errorf("port wait timeout: %v", err)
	}
	quick, err := sb.StartProcess(ctx, "echo done", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := quick.WaitForLog(ctx, "never", &sandbox.LogWaitOptions{Timeout: 10 * time.Second}); !errors.Is(err, sandbox.ErrProcessExited) {
		t.Errorf("exited before the log: %v", err)
	}

	// A server: waitForPort in tcp and http modes.
	srv, err := sb.StartProcess(ctx, "python3 -m http.server 8123", &sandbox.ProcessOptions{Cwd: "/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitForPort(ctx, 8123, &sandbox.PortWaitOptions{Mode: "http", Path: "/", Status: "200", Timeout: 20 * time.Second}); err != nil {
		t.Fatalf("wait for http port: %v", err)
	}
	if res := mustExec(t, sb, "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8123/"); res.Stdout != "200" {
		t.Errorf("server reached from exec: %q", res.Stdout)
	}
	running, err := sb.ListProcesses(ctx, api.ProcessRunning)
	if err != nil || len(running) != 2 {
		t.Errorf("running: %v %v", running, err)
	}
	n, err := sb.KillAllProcesses(ctx)
	if err != nil || n != 2 {
		t.Errorf("kill all: %d %v", n, err)
	}
	if info, _ := srv.Info(ctx); info.Status != api.ProcessKilled || *info.ExitCode != 143 {
		t.Errorf("killed server: %+v", info)
	}
	if _, err := sb.GetProcess(ctx, "nope"); !errors.Is(err, sandbox.ErrProcessNotFound) {
		t.Errorf("unknown process: %v", err)
	}
}

// TestKillProcessTree: the whole tree dies, three levels deep, including a
// grandchild started while the kill was under way; a process that ignores
// SIGTERM dies by SIGKILL after the grace period.
func TestKillProcessTree(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("tree")
	ctx := ctxT(t, 2*time.Minute)
	p, err := sb.StartProcess(ctx, `trap '(sleep 2; touch /tmp/escaped) & exit 0' TERM
bash -c 'bash -c "sleep 1001" & sleep 1002' &
sleep 1003 &
wait`, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the tree up", func() bool {
		return mustExec(t, sb, "ps -eo args | grep -c '^sleep 100[123]'").Stdout == "3\n"
	})
	if _, err := p.Kill(ctx, ""); err != nil {
		t.Fatal(err)
	}
	// The whole tree goes, the trap's subshell (a fork of the process's
	// "bash -c", so its arguments name /tmp/escaped) and its "sleep 2"
	// too: once none is left, nothing can touch /tmp/escaped any more.
	var survivors string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		survivors = mustExec(t, sb, "ps -eo args | grep -e '^sleep' -e '[e]scaped'").Stdout
		if survivors == "" || time.Now().After(deadline) {
			break
		}
	}
	if res := mustExec(t, sb, "ls /tmp/escaped 2>&1"); survivors != "" || !strings.Contains(res.Stdout, "No such file") {
		t.Errorf("survivors: %q %q", survivors, res.Stdout)
	}

	stubborn, err := sb.StartProcess(ctx, `trap '' TERM; echo trapped; sleep 1000`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stubborn.WaitForLog(ctx, "trapped", &sandbox.LogWaitOptions{Timeout: 30 * time.Second}); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	info, err := stubborn.Kill(ctx, "SIGTERM")
	if err != nil || info.Status != api.ProcessKilled || *info.ExitCode != 137 {
		t.Errorf("stubborn: %v %+v", err, info)
	}
	if took := time.Since(began); took < 4*time.Second || took > 10*time.Second {
		t.Errorf("SIGKILL after %v, want the 5 s grace", took)
	}
}

func TestDeleteSessionKillsItsProcesses(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("sesskill")
	ctx := ctxT(t, time.Minute)
	s, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartProcess(ctx, "sleep 2001", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Exec(ctx, "sleep 2002 >/dev/null 2>&1 &", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.StartProcess(ctx, "sleep 2003", nil); err != nil { // the default session's
		t.Fatal(err)
	}
	// Started is not yet exec'd: each shows as sleep once its shell has
	// made it so.
	waitFor(t, 10*time.Second, "the three sleeps", func() bool {
		return mustExec(t, sb, "ps -eo args | grep -c '^sleep 200[123]'").Stdout == "3\n"
	})
	if err := sb.DeleteSession(ctx, "worker"); err != nil {
		t.Fatal(err)
	}
	if res := mustExec(t, sb, "ps -eo args | grep '^sleep 200'"); res.Stdout != "sleep 2003\n" {
		t.Errorf("after deleting the session: %q", res.Stdout)
	}
	if _, err := s.Exec(ctx, "true", nil); !errors.Is(err, sandbox.ErrSessionNotFound) {
		t.Errorf("deleted session: %v", err)
	}
}

func TestProcessAutoCleanup(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("cleanup")
	ctx := ctxT(t, time.Minute)
	p, err := sb.StartProcess(ctx, "echo bye", &sandbox.ProcessOptions{ID: "once", AutoCleanup: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitForExit(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.GetProcess(ctx, "once"); !errors.Is(err, sandbox.ErrProcessNotFound) {
		t.Errorf("after its exit was read: %v, want ErrProcessNotFound", err)
	}
	// Without autoCleanup the record stays.
	q, err := sb.StartProcess(ctx, "echo stay", &sandbox.ProcessOptions{ID: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.WaitForExit(ctx, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if logs, err := q.Logs(ctx); err != nil || logs.Stdout != "stay\n" {
		t.Errorf("kept: %v %+v", err, logs)
	}
}
