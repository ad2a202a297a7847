package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// escapeCmd starts, under tag, processes that leave their command's tree
// every way a tree walk or an environment marker misses: a double fork
// into a session of its own, a child with an empty environment, and both.
func escapeCmd(tag string) string {
	return "(setsid sleep " + tag + "1 &); env -i /bin/sleep " + tag + "2 & (setsid env -i /bin/sleep " + tag + "3 &); "
}

// TestKillLeavesNothing: a command or process that double-forks, drops
// its environment, or fork-bombs is gone entirely within 1 s of its
// timeout or its kill (each runs in a cgroup of its own, killed whole).
func TestKillLeavesNothing(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	ctx := ctxT(t, 3*time.Minute)
	sb, err := d.Client.Create(ctx, "reaped", &api.CreateSandboxRequest{Resources: &api.Resources{Pids: 128}})
	if err != nil {
		t.Fatal(err)
	}
	// count runs in the default session: how many processes match what.
	count := func(what string) int {
		res := mustExec(t, sb, "pgrep -c -f '"+what+"' || true")
		n, err := strconv.Atoi(strings.TrimSpace(res.Stdout))
		if err != nil {
			t.Fatalf("pgrep: %q %q", res.Stdout, res.Stderr)
		}
		return n
	}
	goneWithin := func(what string, want int) {
		t.Helper()
		deadline := time.Now().Add(time.Second)
		for {
			n := count(what)
			if n <= want {
				return
			}
			if time.Now().After(deadline) {
				ps := mustExec(t, sb, "ps -eo pid,ppid,args")
				t.Fatalf("%d processes matching %q a second after the kill (want %d):\n%s", n, what, want, ps.Stdout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	t.Run("exec timeout", func(t *testing.T) {
		res, err := sb.Exec(ctx, escapeCmd("71")+"sleep 30", &sandbox.ExecOptions{Timeout: 500 * time.Millisecond})
		if err != nil || res.ExitCode != 124 {
			t.Fatalf("%+v %v; want exit 124", res, err)
		}
		goneWithin("sleep 71", 0)
	})
	t.Run("process timeout", func(t *testing.T) {
		p, err := sb.StartProcess(ctx, escapeCmd("72")+"sleep 30", &sandbox.ProcessOptions{Timeout: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.WaitForExit(ctx, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		goneWithin("sleep 72", 0)
	})
	t.Run("process kill", func(t *testing.T) {
		p, err := sb.StartProcess(ctx, escapeCmd("73")+"sleep 30", nil)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, "its three sleeps", func() bool { return count("sleep 73") == 3 })
		if _, err := p.Kill(ctx, "SIGKILL"); err != nil {
			t.Fatal(err)
		}
		goneWithin("sleep 73", 0)
	})
	t.Run("fork bomb timeout", func(t *testing.T) {
		bombs, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "bombs"})
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, sb, "true")
		base := count(".")
		res, err := bombs.Exec(ctx, `bomb() { bomb | bomb & }; bomb; sleep 30`, &sandbox.ExecOptions{Timeout: 2 * time.Second})
		if err != nil {
			t.Fatalf("fork bomb: %v", err)
		}
		if res.ExitCode != 124 {
			t.Errorf("fork bomb: exit %d; want 124", res.ExitCode)
		}
		// Everything but the session's shell (one more than before) goes.
		goneWithin(".", base+1)
		if res := mustExec(t, sb, "echo alive"); res.Stdout != "alive\n" {
			t.Errorf("after the bomb: %+v", res)
		}
	})
}
