package agent_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/internal/testutil"
)

// escapes starts, under tag, processes that leave their parent's process
// tree in each way a tree walk or an environment marker misses: a
// double-fork into a session of its own, a child with an empty
// environment, and a daemon that is both.
func escapes(tag string) string {
	return fmt.Sprintf("(setsid /bin/sleep %[1]s1 &); env -i /bin/sleep %[1]s2 & (setsid env -i /bin/sleep %[1]s3 &); ", tag)
}

// alive lists the processes whose command line holds "sleep TAG".
func alive(tag string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte("sleep\x00"+tag)) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// goneWithin fails the test unless every process of tag is gone within d.
func goneWithin(t *testing.T, tag string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := alive(tag)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d processes outlived the kill by %v: %q", len(left), d, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTimeoutAndKillLeaveNothing: whatever a command or process started,
// however it left the tree, is gone within 1 s of the command's timeout,
// the process's timeout, or the process's kill. Only the agent's cgroups
// can promise that.
func TestTimeoutAndKillLeaveNothing(t *testing.T) {
	testutil.RequiresCgroups(t)
	c := startAgent(t)
	t.Run("exec timeout", func(t *testing.T) {
		req := cmd(escapes("901") + "sleep 30")
		req.TimeoutMs = 300
		if res := run(t, c, req); res.ExitCode != 124 {
			t.Fatalf("exit %d, want 124: %q", res.ExitCode, res.Stderr)
		}
		goneWithin(t, "901", time.Second)
		// The session's shell lived on, with its state.
		if res := run(t, c, cmd("echo still")); res.Stdout != "still\n" {
			t.Errorf("after the timeout: %+v", res)
		}
	})
	t.Run("process timeout", func(t *testing.T) {
		body := fmt.Sprintf(`{"command":%q,"processId":"timed","timeoutMs":300}`, escapes("902")+"sleep 30")
		if code, b := call(t, c, "POST", "/v1/processes", body); code != 201 {
			t.Fatalf("%d %s", code, b)
		}
		if code, b := call(t, c, "POST", "/v1/processes/timed/wait", `{"exit":true,"timeoutMs":10000}`); code != 200 && code != 409 {
			t.Fatalf("wait: %d %s", code, b)
		}
		goneWithin(t, "902", time.Second)
	})
	t.Run("process kill", func(t *testing.T) {
		body := fmt.Sprintf(`{"command":%q,"processId":"killed"}`, escapes("903")+"sleep 30")
		if code, b := call(t, c, "POST", "/v1/processes", body); code != 201 {
			t.Fatalf("%d %s", code, b)
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(alive("903")) < 3 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if code, b := call(t, c, "DELETE", "/v1/processes/killed", ""); code != 200 {
			t.Fatalf("kill: %d %s", code, b)
		}
		goneWithin(t, "903", time.Second)
	})
	t.Run("session delete", func(t *testing.T) {
		if code, b := call(t, c, "POST", "/v1/sessions", `{"id":"gone"}`); code != 201 {
			t.Fatalf("%d %s", code, b)
		}
		body := fmt.Sprintf(`{"command":%q,"sessionId":"gone"}`, escapes("904")+"echo started")
		if code, b := call(t, c, "POST", "/v1/exec", body); code != 200 {
			t.Fatalf("%d %s", code, b)
		}
		if code, b := call(t, c, "DELETE", "/v1/sessions/gone", ""); code != 204 {
			t.Fatalf("delete: %d %s", code, b)
		}
		goneWithin(t, "904", time.Second)
	})
}
