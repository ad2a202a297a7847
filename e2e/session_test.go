package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

func TestSessionStatePersists(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("state")
	mustExec(t, sb, `cd /tmp && export GREETING=hi && greet() { echo "$GREETING $1"; } && alias ll='echo aliased' && declare -i n=41`)
	res := mustExec(t, sb, `pwd; greet you; ll; n+=1; echo $n`)
	if res.Stdout != "/tmp\nhi you\naliased\n42\n" {
		t.Errorf("state across calls: %q %q", res.Stdout, res.Stderr)
	}
	// Per-call env and cwd are for that call only.
	ctx := ctxT(t, time.Minute)
	r, err := sb.Exec(ctx, `echo "$GREETING $ONLY"; pwd; cd /; export LEAK=1`, &sandbox.ExecOptions{Env: map[string]string{"ONLY": "once"}, Cwd: "/etc"})
	if err != nil || r.Stdout != "hi once\n/etc\n" {
		t.Fatalf("per-call env/cwd: %v %+v", err, r)
	}
	if res := mustExec(t, sb, `echo "[$ONLY][$LEAK]"; pwd`); res.Stdout != "[][]\n/tmp\n" {
		t.Errorf("per-call env/cwd leaked: %q", res.Stdout)
	}
}

func TestSessionsAreIsolatedButShareFiles(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("two")
	ctx := ctxT(t, time.Minute)
	s1, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "one", Cwd: "/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "two"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "one"}); !errors.Is(err, sandbox.ErrSessionExists) {
		t.Errorf("duplicate session: %v", err)
	}
	r1, err := s1.Exec(ctx, `X=from-one; echo shared > /workspace/shared; pwd`, nil)
	if err != nil || r1.Stdout != "/tmp\n" {
		t.Fatalf("session one: %v %+v", err, r1)
	}
	r2, err := s2.Exec(ctx, `echo "[$X]"; cat /workspace/shared; pwd`, nil)
	if err != nil || r2.Stdout != "[]\nshared\n/workspace\n" {
		t.Errorf("session two: %v %+v", err, r2)
	}
	list, err := sb.ListSessions(ctx)
	if err != nil || len(list) != 3 {
		t.Errorf("sessions: %v %v", list, err)
	}
	if err := sb.DeleteSession(ctx, "default"); !errors.Is(err, sandbox.ErrValidation) {
		t.Errorf("delete default: %v", err)
	}
	if _, err := sb.GetSession("nope").Exec(ctx, "true", nil); !errors.Is(err, sandbox.ErrSessionNotFound) {
		t.Errorf("unknown session: %v", err)
	}
}

// TestSessionCallsAreSerialized: 20 concurrent calls to one session run
// one at a time, each whole; calls to different sessions overlap.
func TestSessionCallsAreSerialized(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("serial")
	mustExec(t, sb, "rm -f /tmp/order")
	const n = 20
	var wg sync.WaitGroup
	results := make([]*api.ExecResult, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = sb.Exec(ctxT(t, 2*time.Minute), fmt.Sprintf(
				`echo s%d >> /tmp/order; echo begin %d; sleep 0.0$((RANDOM %% 5)); echo end %d; echo e%d >> /tmp/order`, i, i, i, i), nil)
		}(i)
	}
	wg.Wait()
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if want := fmt.Sprintf("begin %d\nend %d\n", i, i); results[i].Stdout != want {
			t.Errorf("call %d got %q, want %q (mixed output)", i, results[i].Stdout, want)
		}
	}
	lines := strings.Fields(mustExec(t, sb, "cat /tmp/order").Stdout)
	if len(lines) != 2*n {
		t.Fatalf("order file: %v", lines)
	}
	for i := 0; i < len(lines); i += 2 {
		if lines[i][0] != 's' || lines[i+1] != "e"+lines[i][1:] {
			t.Fatalf("calls overlapped: %v", lines)
		}
	}

	// Different sessions run in parallel: two 1 s sleeps take about 1 s.
	ctx := ctxT(t, time.Minute)
	other, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "other"})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	var pwg sync.WaitGroup
	for _, run := range []func() error{
		func() error { _, err := sb.Exec(ctx, "sleep 1", nil); return err },
		func() error { _, err := other.Exec(ctx, "sleep 1", nil); return err },
	} {
		pwg.Add(1)
		go func(run func() error) {
			defer pwg.Done()
			if err := run(); err != nil {
				t.Error(err)
			}
		}(run)
	}
	pwg.Wait()
	if took := time.Since(began); took > 1900*time.Millisecond {
		t.Errorf("two sessions' sleeps took %v: not in parallel", took)
	}
}

func TestShellExitAndTimeout(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("exits")
	ctx := ctxT(t, time.Minute)
	mustExec(t, sb, "export KEEP=1; cd /tmp")
	_, err := sb.Exec(ctx, "echo bye; exit 42", nil)
	var se *sandbox.Error
	if !errors.Is(err, sandbox.ErrSessionTerminated) || !errors.As(err, &se) {
		t.Fatalf("exit 42: %v, want ErrSessionTerminated", err)
	}
	if code, ok := se.ExitCode(); !ok || code != 42 {
		t.Errorf("exit code in details: %d %v", code, ok)
	}
	// A fresh shell: the old state is gone, the session works.
	if res := mustExec(t, sb, `echo "[$KEEP]"; pwd`); res.Stdout != "[]\n/workspace\n" {
		t.Errorf("after exit: %q", res.Stdout)
	}

	// A timeout kills the command (nested in functions, with children),
	// keeps the session and its state.
	mustExec(t, sb, "export KEEP=2; cd /etc")
	began := time.Now()
	res, err := sb.Exec(ctx, `inner() { sleep 30; echo inner-after; }; outer() { inner; echo outer-after; }; echo started; outer; echo top-after`,
		&sandbox.ExecOptions{Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 124 || res.Stdout != "started\n" || !strings.Contains(res.Stderr, "Command timed out after 500 ms") {
		t.Errorf("timeout: %+v", res)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("timeout took %v", took)
	}
	if res := mustExec(t, sb, `echo "$KEEP"; pwd; ps -eo args | grep -c '^sleep 30' || true`); res.Stdout != "2\n/etc\n0\n" {
		t.Errorf("after timeout: %q", res.Stdout)
	}
	// A builtin loop is interrupted too.
	res, err = sb.Exec(ctx, `while :; do :; done`, &sandbox.ExecOptions{Timeout: 300 * time.Millisecond})
	if err != nil || res.ExitCode != 124 {
		t.Errorf("busy loop: %v %+v", err, res)
	}
	// A session's commandTimeoutMs applies when a call gives none.
	s, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "quick", CommandTimeoutMs: 300})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := s.Exec(ctx, "sleep 10", nil); err != nil || res.ExitCode != 124 {
		t.Errorf("session timeout: %v %+v", err, res)
	}
}

func TestEnvPrecedence(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, time.Minute)
	sb, err := d.Client.Create(ctx, "envs", &api.CreateSandboxRequest{Env: map[string]string{"A": "sandbox", "B": "sandbox", "C": "sandbox"}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "s", Env: map[string]string{"A": "session", "B": "session"}})
	if err != nil {
		t.Fatal(err)
	}
	show := `echo "$A $B $C [${D-unset}] $LANG"`
	if res, _ := s.Exec(ctx, show, nil); res.Stdout != "session session sandbox [unset] C.UTF-8\n" {
		t.Errorf("session over sandbox: %q", res.Stdout)
	}
	if res, _ := s.Exec(ctx, show, &sandbox.ExecOptions{Env: map[string]string{"A": "call", "D": "call", "LANG": "C"}}); res.Stdout != "call session sandbox [call] C\n" {
		t.Errorf("call over session: %q", res.Stdout)
	}
	d2 := "set"
	if err := s.SetEnvVars(ctx, map[string]*string{"B": nil, "D": &d2}); err != nil {
		t.Fatal(err)
	}
	if res, _ := s.Exec(ctx, `echo "$A [${B-unset}] [$D]"`, nil); res.Stdout != "session [unset] [set]\n" {
		t.Errorf("after setEnvVars: %q", res.Stdout)
	}
	// The default session is untouched.
	if res := mustExec(t, sb, show); res.Stdout != "sandbox sandbox sandbox [unset] C.UTF-8\n" {
		t.Errorf("default session: %q", res.Stdout)
	}
}

func TestExecInputsAndOutputsExact(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("exact")
	ctx := ctxT(t, 2*time.Minute)
	heredoc := "cat <<'EOF'\nquotes ' \" ` $HOME \\n\nEOF\ncat <<EOF\n$((6*7))\nEOF"
	if res := mustExec(t, sb, heredoc); res.Stdout != "quotes ' \" ` $HOME \\n\n42\n" {
		t.Errorf("heredoc: %q", res.Stdout)
	}
	// A 1 MiB command.
	long := "echo " + strings.Repeat("x", 1<<20) + " | wc -c"
	if res := mustExec(t, sb, long); strings.TrimSpace(res.Stdout) != fmt.Sprint(1<<20+1) {
		t.Errorf("1 MiB command: %q %q", res.Stdout, res.Stderr)
	}
	// 10 MB of every byte value, no newline at the end.
	gen := `python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 40000)'`
	want := bytes.Repeat(func() []byte {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}(), 40000)
	res, err := sb.Exec(ctx, gen, nil)
	if err != nil || res.Stdout != string(want) {
		t.Errorf("10 MB binary output: err %v, got %d bytes, equal %v", err, len(res.Stdout), res.Stdout == string(want))
	}
	// The same through the stream.
	st, err := sb.ExecStream(ctx, gen, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for ev, err := range st.Events() {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == api.EventStdout {
			got = append(got, ev.Data...)
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("streamed 10 MB: got %d bytes, equal %v", len(got), bytes.Equal(got, want))
	}
	// Split multi-byte characters and NUL, written in pieces.
	st, err = sb.ExecStream(ctx, `printf '\xe2'; sleep 0.2; printf '\x82\xac\0after'; printf '\xf0\x9f' >&2; sleep 0.2; printf '\x98\x80' >&2`, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb []byte
	for ev, err := range st.Events() {
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Type {
		case api.EventStdout:
			out = append(out, ev.Data...)
		case api.EventStderr:
			errb = append(errb, ev.Data...)
		}
	}
	if string(out) != "€\x00after" || string(errb) != "😀" {
		t.Errorf("split UTF-8: %q %q", out, errb)
	}
}
