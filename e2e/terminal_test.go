package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// termOutput collects what a terminal connection reads, from a goroutine
// of its own, until the connection ends.
type termOutput struct {
	term    *sandbox.Terminal
	mu      sync.Mutex
	buf     bytes.Buffer  // guarded by mu
	err     error         // why reading stopped; guarded by mu
	changed chan struct{} // signalled (cap 1) on every read
	done    chan struct{} // closed when reading stopped
}

// readTerm reads r into a termOutput from a goroutine of its own until
// r fails (closing r ends it).
func readTerm(r io.Reader) *termOutput {
	o := &termOutput{changed: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			o.mu.Lock()
			o.buf.Write(buf[:n])
			if err != nil {
				o.err = err
			}
			o.mu.Unlock()
			select {
			case o.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return o
}

// openTerm opens a terminal and reads it in the background; the
// connection is closed when the test ends.
func openTerm(t *testing.T, open func(context.Context) (*sandbox.Terminal, error)) *termOutput {
	t.Helper()
	term, err := open(ctxT(t, time.Minute))
	if err != nil {
		t.Fatalf("open terminal: %v", err)
	}
	o := readTerm(term)
	o.term = term
	t.Cleanup(func() {
		term.Close()
		<-o.done
	})
	return o
}

// waitFor waits until the output holds want and returns the output.
func (o *termOutput) waitFor(t *testing.T, want string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		o.mu.Lock()
		out, err := o.buf.String(), o.err
		o.mu.Unlock()
		if strings.Contains(out, want) {
			return out
		}
		if err != nil {
			t.Fatalf("terminal ended (%v) before %q appeared in:\n%q", err, want, out)
		}
		select {
		case <-o.changed:
		case <-timeout:
			t.Fatalf("%q did not appear in the terminal's output:\n%q", want, out)
		}
	}
}

// wait waits until reading stopped and returns why.
func (o *termOutput) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-o.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the terminal's connection did not end")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

func typeIn(t *testing.T, o *termOutput, s string) {
	t.Helper()
	if _, err := o.term.Write([]byte(s)); err != nil {
		t.Fatalf("type %q: %v", s, err)
	}
}

func TestTerminal(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("term")
	open := func(opts sandbox.TerminalOptions) func(context.Context) (*sandbox.Terminal, error) {
		return func(ctx context.Context) (*sandbox.Terminal, error) { return sb.Terminal(ctx, opts) }
	}

	t.Run("Echo", func(t *testing.T) {
		o := openTerm(t, open(sandbox.TerminalOptions{TerminalID: "echo"}))
		if r := o.term.Ready(); r.TerminalID != "echo" || r.SessionID != api.DefaultSessionID || r.Reconnected || r.Pid <= 0 || r.Cols != 80 || r.Rows != 24 {
			t.Errorf("ready message: %+v", r)
		}
		typeIn(t, o, "echo hi-$((1+1))\n")
		o.waitFor(t, "hi-2")
		// A real terminal: the shell's stdin is a tty.
		typeIn(t, o, "test -t 0 && echo tty-$((3+4))\n")
		o.waitFor(t, "tty-7")
	})

	t.Run("Resize", func(t *testing.T) {
		o := openTerm(t, open(sandbox.TerminalOptions{TerminalID: "resize", Cols: 91, Rows: 31}))
		typeIn(t, o, "stty size; echo done-$((0+1))\n")
		if out := o.waitFor(t, "done-1"); !strings.Contains(out, "31 91") {
			t.Errorf("initial size: want 31 91 in %q", out)
		}
		if err := o.term.Resize(ctxT(t, time.Minute), 123, 45); err != nil {
			t.Fatal(err)
		}
		typeIn(t, o, "stty size; echo done-$((1+1))\n")
		if out := o.waitFor(t, "done-2"); !strings.Contains(out, "45 123") {
			t.Errorf("after resize: want 45 123 in %q", out)
		}
		if err := o.term.Resize(ctxT(t, time.Minute), 0, 10); !errors.Is(err, sandbox.ErrValidation) {
			t.Errorf("resize to 0 cols: %v", err)
		}
	})

	t.Run("ReconnectReplays", func(t *testing.T) {
		o := openTerm(t, open(sandbox.TerminalOptions{TerminalID: "again"}))
		typeIn(t, o, "X=kept; echo replay-$((40+2))\n")
		o.waitFor(t, "replay-42")
		if err := o.term.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := o.wait(t); !errors.Is(err, sandbox.ErrTerminalClosed) {
			t.Errorf("read after close: %v", err)
		}
		o2 := openTerm(t, open(sandbox.TerminalOptions{TerminalID: "again", Cols: 100, Rows: 30}))
		if r := o2.term.Ready(); !r.Reconnected || r.ReplayBytes == 0 || r.Pid != o.term.Ready().Pid {
			t.Errorf("reconnect's ready message: %+v (first: %+v)", r, o.term.Ready())
		}
		o2.waitFor(t, "replay-42") // from the replay
		// The same shell, still running, with its state.
		typeIn(t, o2, "echo \"$X\"-$((2+2)); stty size; echo end-$((1+2))\n")
		out := o2.waitFor(t, "end-3")
		if !strings.Contains(out, "kept-4") || !strings.Contains(out, "30 100") {
			t.Errorf("the reconnecting client's size was not applied: %q", out)
		}
	})

	t.Run("TwoViewers", func(t *testing.T) {
		a := openTerm(t, open(sandbox.TerminalOptions{TerminalID: "shared"}))
		b := openTerm(t, open(sandbox.TerminalOptions{TerminalID: "shared"}))
		if !b.term.Ready().Reconnected {
			t.Errorf("second viewer: %+v", b.term.Ready())
		}
		typeIn(t, a, "echo from-a-$((1+4))\n")
		a.waitFor(t, "from-a-5")
		b.waitFor(t, "from-a-5")
		typeIn(t, b, "echo from-b-$((2+4))\n")
		a.waitFor(t, "from-b-6")
		b.waitFor(t, "from-b-6")
	})

	t.Run("Exit", func(t *testing.T) {
		a := openTerm(t, open(sandbox.TerminalOptions{TerminalID: "exit"}))
		b := openTerm(t, open(sandbox.TerminalOptions{TerminalID: "exit"}))
		if _, ok := a.term.ExitCode(); ok {
			t.Error("exit code before the shell exited")
		}
		typeIn(t, a, "echo bye-$((5+5)); exit 7\n")
		for _, o := range []*termOutput{a, b} {
			if err := o.wait(t); err != io.EOF {
				t.Errorf("read after exit: %v, want io.EOF", err)
			}
			o.waitFor(t, "bye-10") // output before the exit is all there
			if code, ok := o.term.ExitCode(); !ok || code != 7 {
				t.Errorf("exit code %d %v, want 7", code, ok)
			}
		}
		// The terminal is gone: the same name starts a new shell.
		c := openTerm(t, open(sandbox.TerminalOptions{TerminalID: "exit"}))
		if r := c.term.Ready(); r.Reconnected || r.Pid == a.term.Ready().Pid {
			t.Errorf("after exit, the same name: %+v", r)
		}
	})

	t.Run("SessionCwdAndEnv", func(t *testing.T) {
		ctx := ctxT(t, time.Minute)
		s, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "termsess", Cwd: "/tmp", Env: map[string]string{"FROM_SESSION": "sess-env"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Exec(ctx, "cd /usr/share", nil); err != nil {
			t.Fatal(err)
		}
		if err := s.SetEnvVars(ctx, map[string]*string{"SET_LATER": new("later")}); err != nil {
			t.Fatal(err)
		}
		o := openTerm(t, func(ctx context.Context) (*sandbox.Terminal, error) {
			return s.Terminal(ctx, sandbox.TerminalOptions{})
		})
		if r := o.term.Ready(); r.SessionID != "termsess" || r.TerminalID != api.DefaultTerminalID {
			t.Errorf("ready: %+v", r)
		}
		typeIn(t, o, "echo \"<$PWD|$FROM_SESSION|$SET_LATER|$TERM>\"\n")
		o.waitFor(t, "</usr/share|sess-env|later|xterm-256color>")
		// Another session's terminal of the same name is another shell.
		o2 := openTerm(t, open(sandbox.TerminalOptions{}))
		if o2.term.Ready().Pid == o.term.Ready().Pid {
			t.Error("two sessions share a terminal")
		}
		typeIn(t, o2, "echo \"<$PWD|$FROM_SESSION>\"\n")
		o2.waitFor(t, "</workspace|>")

		// Deleting the session kills its terminal.
		if err := sb.DeleteSession(ctx, "termsess"); err != nil {
			t.Fatal(err)
		}
		if err := o.wait(t); err != io.EOF {
			t.Errorf("terminal of a deleted session: %v", err)
		}
		if code, ok := o.term.ExitCode(); !ok || code != 137 {
			t.Errorf("terminal of a deleted session: exit %d %v, want 137", code, ok)
		}

		if _, err := sb.Terminal(ctx, sandbox.TerminalOptions{SessionID: "nope"}); !errors.Is(err, sandbox.ErrSessionNotFound) {
			t.Errorf("terminal in a missing session: %v", err)
		}
		if _, err := sb.Terminal(ctx, sandbox.TerminalOptions{TerminalID: "noshell", Shell: "/no/such/shell"}); !errors.Is(err, sandbox.ErrValidation) {
			t.Errorf("missing shell: %v", err)
		}
		if _, err := sb.Terminal(ctx, sandbox.TerminalOptions{TerminalID: "bad/id"}); !errors.Is(err, sandbox.ErrValidation) {
			t.Errorf("bad terminal id: %v", err)
		}
	})

	t.Run("ShellOption", func(t *testing.T) {
		o := openTerm(t, open(sandbox.TerminalOptions{TerminalID: "sh", Shell: "/bin/sh"}))
		if r := o.term.Ready(); r.Shell != "/bin/sh" {
			t.Errorf("ready: %+v", r)
		}
		typeIn(t, o, "echo \"sh-$((6*7))\"\n")
		o.waitFor(t, "sh-42")
	})

	t.Run("PlainGETGets426", func(t *testing.T) {
		for _, id := range []string{"term", "never-made"} {
			req, _ := http.NewRequestWithContext(ctxT(t, time.Minute), http.MethodGet, d.URL+"/v1/sandboxes/"+id+"/terminal", nil)
			req.Header.Set("Authorization", "Bearer "+d.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(string(body), api.CodeUpgradeRequired) {
				t.Errorf("plain GET of %s's terminal: %d %s", id, resp.StatusCode, body)
			}
		}
		// It did not create the sandbox either.
		if _, err := d.Client.Get("never-made").Info(ctxT(t, time.Minute)); !errors.Is(err, sandbox.ErrSandboxNotFound) {
			t.Errorf("a plain GET of the terminal created its sandbox: %v", err)
		}
	})

	t.Run("TokenRequired", func(t *testing.T) {
		for _, token := range []string{"", "wrong"} {
			c, err := sandbox.NewClient(sandbox.Options{URL: d.URL, Token: token})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Get("term").Terminal(ctxT(t, time.Minute), sandbox.TerminalOptions{})
			if !errors.Is(err, sandbox.ErrUnauthorized) {
				t.Errorf("token %q: %v, want ErrUnauthorized", token, err)
			}
		}
	})

	t.Run("Limit", func(t *testing.T) {
		sb := d.Client.Get("term-limit")
		for i := range api.MaxTerminals {
			o := openTerm(t, func(ctx context.Context) (*sandbox.Terminal, error) {
				return sb.Terminal(ctx, sandbox.TerminalOptions{TerminalID: fmt.Sprint("t", i)})
			})
			if i == 0 {
				// One that exits makes room for another.
				typeIn(t, o, "exit\n")
				o.wait(t)
				openTerm(t, func(ctx context.Context) (*sandbox.Terminal, error) {
					return sb.Terminal(ctx, sandbox.TerminalOptions{TerminalID: "t0"})
				})
			}
		}
		_, err := sb.Terminal(ctxT(t, time.Minute), sandbox.TerminalOptions{TerminalID: "one-too-many"})
		if !errors.Is(err, sandbox.ErrResourceExhausted) {
			t.Errorf("terminal %d: %v, want ErrResourceExhausted", api.MaxTerminals+1, err)
		}
		// Joining a running one is still fine.
		o := openTerm(t, func(ctx context.Context) (*sandbox.Terminal, error) {
			return sb.Terminal(ctx, sandbox.TerminalOptions{TerminalID: "t3"})
		})
		typeIn(t, o, "echo joined-$((9+9))\n")
		o.waitFor(t, "joined-18")
	})
}

// TestShellCLI runs "sandbox shell" as a user would: on a terminal (raw
// mode, window size changes, Ctrl-C going to the sandbox), and with a pipe.
func TestShellCLI(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	bin := buildCLI(t)
	env := append(os.Environ(), "SANDBOX_URL="+d.URL, "SANDBOX_TOKEN="+d.Token)

	t.Run("Pipe", func(t *testing.T) {
		cmd := exec.Command(bin, "shell", "demo")
		cmd.Env = env
		cmd.Stdin = strings.NewReader("echo p-$((3+3)); exit 4\n")
		out, err := cmd.Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 4 || !strings.Contains(string(out), "p-6") {
			t.Errorf("piped shell: %v %q", err, out)
		}
	})

	t.Run("Terminal", func(t *testing.T) {
		cmd := exec.Command(bin, "shell", "demo", "--terminal", "cli")
		cmd.Env = env
		ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 20, Cols: 70})
		if err != nil {
			t.Fatal(err)
		}
		defer ptmx.Close()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		defer func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				<-exited
			}
		}()
		o := readTerm(ptmx)
		typ := func(s string) {
			t.Helper()
			if _, err := ptmx.Write([]byte(s)); err != nil {
				t.Fatal(err)
			}
		}
		typ("stty size; echo a-$((1+1))\n")
		if out := o.waitFor(t, "a-2"); !strings.Contains(out, "20 70") {
			t.Errorf("initial size: %q", out)
		}
		// Raw mode: Ctrl-C goes to the sandbox's shell (interrupting
		// sleep there), not to the CLI.
		typ("echo sl''eeping; sleep 100\n")
		o.waitFor(t, "sleeping")
		waitFor(t, 30*time.Second, "sleep 100 running", func() bool {
			return mustExec(t, d.Client.Get("demo"), "pgrep -fx 'sleep 100' || true").Stdout != ""
		})
		typ("\x03")
		typ("echo c-$((2+2))\n")
		o.waitFor(t, "c-4")
		// A window size change follows (SIGWINCH, then a resize message
		// that may arrive after the next keys: ask until it shows).
		if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 50, Cols: 140}); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			typ(fmt.Sprintf("stty size; echo s-%d-$((1+1))\n", i))
			out := o.waitFor(t, fmt.Sprintf("s-%d-2", i))
			if strings.Contains(out, "50 140") {
				break
			}
			if i == 50 {
				t.Fatalf("resize did not reach the sandbox: %q", out)
			}
			time.Sleep(100 * time.Millisecond)
		}
		typ("exit 3\n")
		select {
		case err := <-exited:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 3 {
				t.Errorf("sandbox shell: %v, want exit status 3", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("sandbox shell did not exit after the shell did")
		}
		// The CLI put its terminal back as it was.
		tio, err := unix.IoctlGetTermios(int(ptmx.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 || tio.Lflag&unix.ICANON == 0 {
			t.Errorf("the terminal was left in raw mode: lflag %#x", tio.Lflag)
		}
	})
}

// TestTerminalSurvivesDaemonRestart: the terminal lives in the sandbox's
// agent, which outlives the daemon: connections end when the daemon shuts
// down; after a restart, a client rejoins the same shell and gets its
// replay.
func TestTerminalSurvivesDaemonRestart(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("term-restart")
	term, err := sb.Terminal(ctxT(t, time.Minute), sandbox.TerminalOptions{TerminalID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := term.Write([]byte("Y=still; echo before-$((1+1))\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var out []byte
	for !bytes.Contains(out, []byte("before-2")) {
		n, err := term.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, buf[:n]...)
	}
	pid := term.Ready().Pid
	term.Close()
	// A connection still open when the daemon shuts down is closed then,
	// not left running until the process exits.
	open := openTerm(t, func(ctx context.Context) (*sandbox.Terminal, error) {
		return sb.Terminal(ctx, sandbox.TerminalOptions{TerminalID: "r"})
	})
	open.waitFor(t, "before-2")
	d.Restart()
	if err := open.wait(t); err == nil || err == io.EOF || errors.Is(err, sandbox.ErrTerminalClosed) {
		t.Errorf("a terminal connection across a daemon shutdown ended with %v, want a lost connection", err)
	}
	sb = d.Client.Get("term-restart")
	o := openTerm(t, func(ctx context.Context) (*sandbox.Terminal, error) {
		return sb.Terminal(ctx, sandbox.TerminalOptions{TerminalID: "r"})
	})
	if r := o.term.Ready(); !r.Reconnected || r.Pid != pid {
		t.Errorf("after the restart: %+v, want the shell %d again", r, pid)
	}
	o.waitFor(t, "before-2")
	typeIn(t, o, "echo \"$Y\"-$((2+1))\n")
	o.waitFor(t, "still-3")
}
