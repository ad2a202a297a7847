package agent_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent"
	"github.com/sandboxd/sandboxd/internal/agentclient"
)

// call sends a raw request to the agent, as the daemon's proxy would.
func call(t *testing.T, c *agentclient.Client, method, path, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, "http://agent"+path, strings.NewReader(body))
	resp, err := c.Transport().RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The shell survives what user commands do to it.
func TestSessionShellIsRobust(t *testing.T) {
	c := startAgent(t)
	steps := []struct {
		cmd, stdout string
		exit        int
	}{
		{"X=kept; echo hi; break; echo after-break", "hi\nafter-break\n", 0},
		{"continue; echo after-continue", "after-continue\n", 0},
		{"exec 4>&- 3>&-; echo closed", "closed\n", 0},
		{"printf() { echo fake; }; read() { :; }", "", 0},
		{`builtin printf '%s\n' "$X"`, "kept\n", 0},
		{"unset -f printf read; sleep 30 >/dev/null 2>&1 & echo bg", "bg\n", 0},
		// A stray SIGUSR1 between commands does not touch the next one.
		{"(sleep 0.2; kill -USR1 $$) >/dev/null 2>&1 &", "", 0},
		{"echo next", "next\n", 0}, // sent 0.5 s later, see below
	}
	for _, s := range steps {
		if s.cmd == "echo next" {
			time.Sleep(500 * time.Millisecond) // the signal arrives while the shell is idle
		}
		res := run(t, c, cmd(s.cmd))
		if res.Stdout != s.stdout || res.ExitCode != s.exit {
			t.Errorf("%q: got %d %q %q, want %d %q", s.cmd, res.ExitCode, res.Stdout, res.Stderr, s.exit, s.stdout)
		}
	}
	// A background job holds nothing of the shell: exit still answers.
	code, body := call(t, c, "POST", "/v1/exec", `{"command":"exit 5"}`)
	if code != 410 || !strings.Contains(body, `"exitCode":5`) {
		t.Errorf("exit with a background job around: %d %s", code, body)
	}
	run(t, c, cmd("pkill -f 'sleep 30' || true"))
}

// A timeout under set -e keeps the session and its state; the note gives
// the timeout that applied.
func TestSessionTimeoutUnderSetE(t *testing.T) {
	c := startAgent(t)
	run(t, c, cmd("set -e; KEEP=yes"))
	req := cmd("inner() { sleep 30; echo inner-after; }; inner; echo after")
	req.TimeoutMs = 300
	res := run(t, c, req)
	if res.ExitCode != 124 || res.Stdout != "" || !strings.Contains(res.Stderr, "Command timed out after 300 ms") || strings.Contains(res.Stderr, "restarted") {
		t.Errorf("timeout: %+v", res)
	}
	if res := run(t, c, cmd(`echo "$KEEP"; [[ $- == *e* ]] && echo errexit-on`)); res.Stdout != "yes\nerrexit-on\n" {
		t.Errorf("after the timeout: %q", res.Stdout)
	}
	// The session's own timeout, and its value in the note.
	code, body := call(t, c, "POST", "/v1/sessions", `{"id":"quick","commandTimeoutMs":200}`)
	if code != 201 {
		t.Fatalf("create session: %d %s", code, body)
	}
	code, body = call(t, c, "POST", "/v1/exec", `{"command":"sleep 5","sessionId":"quick"}`)
	var er api.ExecResult
	_ = json.Unmarshal([]byte(body), &er)
	if code != 200 || er.ExitCode != 124 || !strings.Contains(er.Stderr, "after 200 ms") {
		t.Errorf("session timeout: %d %s", code, body)
	}
}

// Deleting a session ends a running command even if its child dropped the
// session's marker (env -i), and the command's call returns.
func TestDeleteSessionEndsRunningCommand(t *testing.T) {
	c := startAgent(t)
	if code, body := call(t, c, "POST", "/v1/sessions", `{"id":"doomed"}`); code != 201 {
		t.Fatalf("%d %s", code, body)
	}
	done := make(chan string, 1)
	go func() {
		_, body := call(t, c, "POST", "/v1/exec", `{"command":"env -i /bin/sleep 60 & sleep 60","sessionId":"doomed"}`)
		done <- body
	}()
	time.Sleep(300 * time.Millisecond)
	if code, body := call(t, c, "DELETE", "/v1/sessions/doomed", ""); code != 204 {
		t.Fatalf("delete: %d %s", code, body)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the running command's call did not return after its session was deleted")
	}
}

// A process that dropped its environment and ignores SIGTERM is still
// killed, once the kill's grace has passed (and not before).
func TestKillProcessWithoutMarker(t *testing.T) {
	const grace = 300 * time.Millisecond
	c := startAgent(t, func(cfg *agent.Config) { cfg.KillGrace = grace })
	if code, body := call(t, c, "POST", "/v1/processes", `{"command":"exec env -i /bin/bash -c 'trap \"\" TERM; echo ready; sleep 60'","processId":"hidden"}`); code != 201 {
		t.Fatalf("%d %s", code, body)
	}
	if code, body := call(t, c, "POST", "/v1/processes/hidden/wait", `{"log":"ready","timeoutMs":10000}`); code != 200 {
		t.Fatalf("wait for its trap: %d %s", code, body)
	}
	began := time.Now()
	code, body := call(t, c, "DELETE", "/v1/processes/hidden", "")
	if code != 200 || !strings.Contains(body, `"status":"killed"`) || !strings.Contains(body, `"exitCode":137`) {
		t.Errorf("kill: %d %s", code, body)
	}
	if took := time.Since(began); took < grace {
		t.Errorf("killed after %v, before the grace of %v", took, grace)
	}
	// DELETE of a finished process forgets it.
	if code, _ := call(t, c, "DELETE", "/v1/processes/hidden", ""); code != 200 {
		t.Errorf("delete finished: %d", code)
	}
	if code, _ := call(t, c, "GET", "/v1/processes/hidden", ""); code != 404 {
		t.Errorf("after delete: %d", code)
	}
}
