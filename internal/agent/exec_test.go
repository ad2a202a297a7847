package agent_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/agentclient"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/testutil"
	"golang.org/x/sys/unix"
)

// startAgent runs the agent in this process on a socket in a temp dir, as
// the daemon would talk to it, and stops it when the test ends. opts may
// change its configuration.
func startAgent(t *testing.T, opts ...func(*agent.Config)) *agentclient.Client {
	t.Helper()
	c, _ := runAgent(t, opts...)
	return c
}

// runAgent is startAgent, and a function that stops the agent before the
// test ends. The socket is made first, so the first call simply waits for
// the agent to accept, as the daemon's does.
func runAgent(t *testing.T, opts ...func(*agent.Config)) (c *agentclient.Client, stop func()) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.File() // a copy of the listening socket, for the agent
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(int(f.Fd())) // the agent's own, which it closes
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.Config{ListenFD: fd, CgroupRoot: testutil.CgroupRoot(t)}
	for _, opt := range opts {
		opt(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx, cfg) }()
	c = agentclient.New(sock)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			c.Close()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	if err := c.CheckVersion(context.Background()); err != nil {
		t.Fatalf("agent did not come up: %v", err)
	}
	return c, stop
}

func run(t *testing.T, c *agentclient.Client, req agentapi.ExecRequest) *api.ExecResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Exec(ctx, req)
	if err != nil {
		t.Fatalf("exec %q: %v", req.Command, err)
	}
	// Compare bytes, whatever encoding they travelled in.
	for _, o := range []struct{ s, enc *string }{{&res.Stdout, &res.StdoutEncoding}, {&res.Stderr, &res.StderrEncoding}} {
		b, err := api.Output(*o.s, *o.enc)
		if err != nil {
			t.Fatalf("decode output: %v", err)
		}
		*o.s, *o.enc = string(b), ""
	}
	return res
}

func cmd(s string) agentapi.ExecRequest {
	return agentapi.ExecRequest{ExecRequest: api.ExecRequest{Command: s}}
}

func TestExec(t *testing.T) {
	c := startAgent(t)
	in := "a\nb\n"
	dir := t.TempDir()
	cases := []struct {
		name   string
		req    agentapi.ExecRequest
		exit   int
		stdout string
		stderr string
	}{
		{"echo", cmd("echo hello"), 0, "hello\n", ""},
		{"exit code", cmd("echo e >&2; sh -c 'exit 42'"), 42, "", "e\n"},
		{"not found", cmd("no-such-cmd-xyz"), 127, "", "bash: line 1: no-such-cmd-xyz: command not found\n"},
		{"error on line 2", cmd("true\nno-such-cmd-xyz"), 127, "", "bash: line 2: no-such-cmd-xyz: command not found\n"},
		{"error with a cwd", agentapi.ExecRequest{ExecRequest: api.ExecRequest{Command: "no-such-cmd-xyz", Cwd: dir}}, 127, "", "bash: line 1: no-such-cmd-xyz: command not found\n"},
		{"signal", cmd("sh -c 'kill -TERM $$'"), 143, "", ""},
		{"no trailing newline", cmd("printf abc"), 0, "abc", ""},
		{"nul and utf-8", cmd(`printf 'a\0b\xc3\xa9'`), 0, "a\x00b\u00e9", ""},
		{"invalid utf-8", cmd(`printf 'a\xff\xfeb'; printf '\xc3' >&2`), 0, "a\xff\xfeb", "\xc3"},
		{"stdin", agentapi.ExecRequest{ExecRequest: api.ExecRequest{Command: "wc -l", Stdin: &in}}, 0, "2\n", ""},
		{"no stdin", cmd("cat"), 0, "", ""},
		{"stdin in base64", agentapi.ExecRequest{ExecRequest: api.ExecRequest{Command: "od -An -tx1 | tr -d ' \\n'", Stdin: new("/wD+"), StdinEncoding: api.EncodingBase64}}, 0, "ff00fe", ""},
		{"env", agentapi.ExecRequest{ExecRequest: api.ExecRequest{Command: `echo "$X-$HOME"`, Env: map[string]string{"X": "1", "HOME": "/h"}}}, 0, "1-/h\n", ""},
		{"cwd", agentapi.ExecRequest{ExecRequest: api.ExecRequest{Command: "pwd", Cwd: dir}}, 0, dir + "\n", ""},
		{"heredoc", cmd("cat <<'EOF'\n$not 'expanded' \"x\"\nEOF"), 0, "$not 'expanded' \"x\"\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, c, tc.req)
			if res.ExitCode != tc.exit || res.Stdout != tc.stdout || !strings.HasSuffix(res.Stderr, tc.stderr) || res.Success != (tc.exit == 0) {
				t.Errorf("got exit %d stdout %q stderr %q; want %d %q %q", res.ExitCode, res.Stdout, res.Stderr, tc.exit, tc.stdout, tc.stderr)
			}
		})
	}
}

func TestExecTimeoutKillsProcessTree(t *testing.T) {
	c := startAgent(t)
	marker := filepath.Join(t.TempDir(), "survived")
	// A subshell, a grandchild, and a double-forked process in a session
	// of its own (re-parented away from the command's tree).
	req := cmd("(sleep 1; touch " + marker + ") & (bash -c 'sleep 1; touch " + marker + "') & " +
		"(setsid bash -c 'sleep 1; touch " + marker + "' &) ; sleep 30")
	req.TimeoutMs = 200
	started := time.Now()
	res := run(t, c, req)
	if res.ExitCode != 124 || !strings.Contains(res.Stderr, "Command timed out after 200 ms") {
		t.Errorf("timeout result: %+v", res)
	}
	if took := time.Since(started); took > 5*time.Second {
		t.Errorf("timeout took %v", took)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("a child outlived the timeout")
	}
}

func TestExecOutputCap(t *testing.T) {
	c := startAgent(t)
	req := cmd("head -c 3000000 /dev/zero; echo tail >&2")
	req.MaxOutputBytes = 1 << 20
	res := run(t, c, req)
	if !res.Truncated || len(res.Stdout) != 1<<20 || res.Stderr != "tail\n" || res.ExitCode != 0 {
		t.Errorf("truncated %v, stdout %d bytes, stderr %q, exit %d", res.Truncated, len(res.Stdout), res.Stderr, res.ExitCode)
	}
}

// A background child that keeps the output pipes open does not hold the
// call past the command's exit.
func TestExecDoesNotWaitForBackgroundChildren(t *testing.T) {
	c := startAgent(t)
	started := time.Now()
	res := run(t, c, cmd("sleep 20 & echo started"))
	if res.Stdout != "started\n" || time.Since(started) > 3*time.Second {
		t.Errorf("got %q after %v", res.Stdout, time.Since(started))
	}
}

func TestExecErrors(t *testing.T) {
	c := startAgent(t)
	ctx := context.Background()
	for name, req := range map[string]agentapi.ExecRequest{
		"empty":   cmd(""),
		"bad cwd": {ExecRequest: api.ExecRequest{Command: "true", Cwd: "/no/such/dir"}},
	} {
		if _, err := c.Exec(ctx, req); !errors.Is(err, errdefs.ErrInvalidArgument) || errdefs.Code(err) != api.CodeValidationFailed {
			t.Errorf("%s: %v (code %s), want VALIDATION_FAILED", name, err, errdefs.Code(err))
		}
	}
}

func TestExecCallerGoneKillsCommand(t *testing.T) {
	c := startAgent(t)
	marker := filepath.Join(t.TempDir(), "finished")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Exec(ctx, cmd("sleep 1; touch "+marker)); err == nil {
		t.Fatal("exec outlived its context")
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the command kept running after its caller left")
	}
}

// Calls whose caller went away leave no descriptors or goroutines behind.
func TestExecCancelLeaksNothing(t *testing.T) {
	c := startAgent(t)
	run(t, c, cmd("true")) // warm the connection
	fds := func() int {
		e, _ := os.ReadDir("/proc/self/fd")
		return len(e)
	}
	before := fds()
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, _ = c.Exec(ctx, cmd("setsid sleep 300 & sleep 100"))
		cancel()
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for fds() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if after := fds(); after > before {
		t.Errorf("open descriptors: %d before, %d after 5 cancelled calls", before, after)
	}
}
