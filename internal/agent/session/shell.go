package session

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// A session's shell reads its script from a pipe (bash -s): first a
// prelude, then one line per command, written by the agent:
//
//	trap "$__sbx_trap" USR1; __sbx_run=1; . DIR/cmd <DIR/in >DIR/out 2>DIR/err 4>&-; __sbx_done $?
//
// Sourcing at the top level keeps the command's effects (cd, export,
// functions, declare) in the shell; there is no loop around it, so a stray
// break or continue only earns bash's usual complaint. __sbx_done reports
// "status NUL cwd NUL" on fd 4, which the command itself never holds (nor
// its children), so a background job cannot keep the report pipe open and
// a command cannot write a false report.
//
// SIGUSR1 aborts the running command (and does nothing between commands):
// the trap returns from the sourced file, and under bash a DEBUG trap then
// makes every function the command was in return too (extdebug's "return
// 2"), so that nothing of it runs after the abort; set -e is suspended for
// the unwinding and put back after. The trap is installed again before
// every command, in case the previous one replaced it. Plain POSIX shells
// only get the first return.
const (
	bashPrelude = `shopt -s expand_aliases
__sbx_unwind() { case " ${FUNCNAME[*]} " in *" source "*) return 2;; esac; return 0; }
__sbx_trap='if [[ -n $__sbx_run ]]; then __sbx_e=$-; set +e; shopt -s extdebug; trap __sbx_unwind DEBUG; return 124 2>/dev/null; fi'
__sbx_done() { __sbx_s=$1; __sbx_run=; trap - DEBUG; shopt -u extdebug; case $__sbx_e in *e*) set -e;; esac; __sbx_e=; builtin printf '%d\0%s\0' "$__sbx_s" "$PWD" >&4; }
`
	shPrelude = `__sbx_trap='if [ -n "$__sbx_run" ]; then return 124 2>/dev/null; fi'
__sbx_done() { __sbx_s=$1; __sbx_run=; command printf '%d\0%s\0' "$__sbx_s" "$PWD" >&4; }
`
)

// commandLine is the line that runs the command in dir.
func commandLine(dir string) string {
	q := func(name string) string { return shQuote(filepath.Join(dir, name)) }
	return `trap "$__sbx_trap" USR1; __sbx_run=1; . ` + q("cmd") + " <" + q("in") + " >" + q("out") + " 2>" + q("err") + " 4>&-; __sbx_done $?\n"
}

// bashLinePrefix starts bash's own errors about a line of its input.
var bashLinePrefix = []byte("bash: line ")

// abortGrace bounds how long an aborted command may take to unwind before
// its shell is killed (and the session restarted).
const abortGrace = 2 * time.Second

// shell is one session's long-lived shell process.
//
// It runs in the group of its current command: a command and all it
// starts share the shell's cgroup, below the session's (group). A command
// that leaves processes behind (a server started with &) leaves them in
// its group, and the next command gets a new one, the shell moving there
// while it waits for its next line; a command that has to be aborted is
// killed with its group once the shell has moved out of it.
type shell struct {
	proc   *os.Process
	cg     *core.Cgroups
	parent *core.Group     // the session's
	cur    *core.Group     // the one the shell is in: the last command's; guarded by the session's queue
	dead   chan struct{}   // closed when the shell has exited
	ws     unix.WaitStatus // how it exited; set before dead closes
	ctrl   *os.File        // the write end of the shell's script (its fd 0)
	status chan runResult  // a command's code and cwd, one per command; closed when the shell exits
	dir    string          // the shell's runtime directory
	// errPrefix matches the names of the shell's command files in its
	// errors (run rewrites them as bash's own).
	errPrefix *regexp.Regexp
	seq       int // commands run; guarded by the session's core.Queue
}

// shellExited is the error of a call whose command made the shell exit
// (it ran exit, or the shell was killed): SESSION_TERMINATED, with the
// shell's exit code.
func shellExited(code int) error {
	return &errdefs.CodedError{Code: api.CodeSessionTerminated, Kind: errdefs.ErrNotFound,
		Message: fmt.Sprintf("the session's shell exited with code %d; the next call gets a fresh shell", code),
		Details: map[string]any{"exitCode": code}}
}

// startShell starts a shell for a session with env in cwd, in a new group
// below parent.
func (reg *Registry) startShell(env []string, cwd string, parent *core.Group) (*shell, error) {
	name, args, prelude := "/bin/sh", []string{"/bin/sh", "-s"}, shPrelude
	if bash, err := exec.LookPath("bash"); err == nil {
		name, args, prelude = bash, []string{bash, "--noprofile", "--norc", "-s"}, bashPrelude
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	ctrlR, ctrlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer ctrlR.Close()
	statR, statW, err := os.Pipe()
	if err != nil {
		ctrlW.Close()
		return nil, err
	}
	defer statW.Close()
	s := &shell{cg: reg.cfg.Reaper.Cgroups(), parent: parent, dead: make(chan struct{}), ctrl: ctrlW, status: make(chan runResult, 1)}
	go s.readStatus(statR) // until the shell's end closes, or ours if it does not start
	if s.cur, err = s.cg.New("cmd", parent); err != nil {
		ctrlW.Close()
		return nil, err
	}
	proc, exited, err := reg.cfg.Reaper.Start(s.cur, name, args, &os.ProcAttr{
		Dir:   cwd,
		Env:   env,
		Files: []*os.File{ctrlR, devnull, devnull, devnull, statW},
		Sys:   &unix.SysProcAttr{Setsid: true},
	})
	if err != nil {
		ctrlW.Close()
		s.cur.Remove()
		return nil, core.StartError(err)
	}
	s.proc = proc
	go func() {
		s.ws = <-exited
		close(s.dead)
	}()
	if s.dir, err = os.MkdirTemp(reg.cfg.RunDir, "shell-"); err == nil {
		s.errPrefix = regexp.MustCompile(regexp.QuoteMeta(s.dir) + `/[0-9]+/(?:cmd|user): line `)
		_, err = io.WriteString(ctrlW, prelude)
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("start shell: %w", err)
	}
	return s, nil
}

// readStatus turns the shell's status records into values on s.status,
// and closes it when the shell's end of the pipe closes.
func (s *shell) readStatus(f *os.File) {
	defer f.Close()
	defer close(s.status)
	r := bufio.NewReader(f)
	for {
		code, err1 := r.ReadString(0)
		cwd, err2 := r.ReadString(0) // at once, after an error
		if err1 != nil || err2 != nil {
			return
		}
		n, _ := strconv.Atoi(strings.TrimSuffix(code, "\x00"))
		s.status <- runResult{code: n, cwd: strings.TrimSuffix(cwd, "\x00")}
	}
}

// command is one call to run in a shell.
type command struct {
	text    string
	env     map[string]string // for this call only (runs it in a subshell)
	cwd     string            // for this call only (runs it in a subshell)
	stdin   *string
	timeout time.Duration // zero: none
}

// outputSink receives a command's output as it is written. write is called
// from two goroutines (stdout and stderr) at once.
type outputSink interface {
	start(pid int) // the command is handed to the shell whose pid this is
	write(stream string, p []byte)
}

// runResult is how a command ended.
type runResult struct {
	code     int // 124 if timed out
	cwd      string
	timeout  time.Duration // the timeout that applied (the call's or the session's)
	timedOut bool
	reset    bool // the shell is gone or had to be killed: the session needs a new one
}

// run runs c in the shell and returns when it has finished and its output
// has been delivered to sink. The caller holds the session's queue.
//
// A timeout, or ctx ending (the caller went away), aborts the command: its
// processes are killed and the shell unwinds it; the shell and its state
// survive, unless the command will not unwind within abortGrace, in which
// case the shell is killed (result.reset). If the command makes the shell
// exit, run returns result.reset and the error of shellExited.
func (s *shell) run(ctx context.Context, c command, sink outputSink) (runResult, error) {
	s.seq++
	dir := filepath.Join(s.dir, strconv.Itoa(s.seq))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return runResult{}, err
	}
	defer os.RemoveAll(dir)
	if err := writeCommand(dir, c); err != nil {
		return runResult{}, err
	}
	if err := s.newGroupIfUsed(); err != nil {
		return runResult{}, err
	}
	stdout, err := openFifo(filepath.Join(dir, "out"))
	if err != nil {
		return runResult{}, err
	}
	stderr, err := openFifo(filepath.Join(dir, "err"))
	if err != nil {
		stdout.close()
		return runResult{}, err
	}
	// The shell sources commands from files, and names them in its
	// errors ("/run/sandbox-agent/.../3/cmd: line 1: x: command not
	// found", or an earlier command's file for a function it defined):
	// they read as bash's own do instead ("bash: line 1: ..."). A name
	// split between two reads of the pipe stays as it is.
	var readers sync.WaitGroup
	readers.Go(func() { stdout.copyTo(func(p []byte) { sink.write(api.EventStdout, p) }) })
	readers.Go(func() {
		stderr.copyTo(func(p []byte) {
			if s.errPrefix.Match(p) {
				p = s.errPrefix.ReplaceAllLiteral(p, bashLinePrefix)
			}
			sink.write(api.EventStderr, p)
		})
	})
	defer func() {
		// Bytes already in the FIFOs are read in full; background
		// children that keep them open are not waited for.
		stdout.drain()
		stderr.drain()
		readers.Wait()
	}()
	sink.start(s.proc.Pid)
	if _, err := io.WriteString(s.ctrl, commandLine(dir)); err != nil {
		return runResult{reset: true}, shellExited(s.waitExit())
	}

	var timeout <-chan time.Time
	if c.timeout > 0 {
		t := time.NewTimer(c.timeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case res, ok := <-s.status:
		if ok {
			return res, nil
		}
	case <-s.dead:
	case <-timeout:
		res := s.abort()
		res.code, res.timedOut = 124, true
		return res, nil
	case <-ctx.Done():
		return s.abort(), ctx.Err()
	}
	return runResult{reset: true}, shellExited(s.waitExit())
}

// newGroupIfUsed moves the shell, idle between commands, into a new group
// if the last command left processes in its own, which stay there.
func (s *shell) newGroupIfUsed() error {
	if !slices.ContainsFunc(s.cur.Pids(), func(pid int) bool { return pid != s.proc.Pid }) {
		return nil
	}
	old, err := s.moveOut()
	if err == nil {
		old.Remove() // once its processes are gone
	}
	return err
}

// moveOut moves the shell into a new group below the session's and
// returns the group it left.
func (s *shell) moveOut() (*core.Group, error) {
	g, err := s.cg.New("cmd", s.parent)
	if err != nil {
		return nil, err
	}
	if err := g.Add(s.proc.Pid); err != nil {
		g.Remove()
		return nil, err
	}
	old := s.cur
	s.cur = g
	return old, nil
}

// abort stops the running command: the shell is told to unwind it
// (SIGUSR1) and moved to a new group, and the command's group is killed,
// whatever its processes did to leave the shell's tree. Anything the shell
// started in the moment between (it was about to fork) is killed in the
// rounds that follow, until the shell reports.
func (s *shell) abort() runResult {
	deadline := time.Now().Add(abortGrace)
	_ = s.proc.Signal(unix.SIGUSR1)
	cmd, err := s.moveOut()
	if err != nil || !s.cg.Enabled() {
		// Without cgroups (or a group to move to) the command cannot be
		// told from its shell: both go.
		s.kill()
		return runResult{reset: true}
	}
	cmd.Kill()
	for time.Now().Before(deadline) {
		select {
		case res, ok := <-s.status:
			res.reset = !ok
			return res
		case <-s.dead:
			return runResult{reset: true}
		case <-time.After(100 * time.Millisecond):
		}
		_ = s.proc.Signal(unix.SIGUSR1)
		for _, pid := range s.cur.Pids() {
			if pid != s.proc.Pid {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
	s.kill()
	return runResult{reset: true}
}

// kill ends the shell and its current command.
func (s *shell) kill() {
	s.cur.Kill()
	s.ctrl.Close()
}

// waitExit waits for the shell's exit and returns its exit code.
func (s *shell) waitExit() int {
	s.ctrl.Close()
	<-s.dead
	return core.ExitCode(s.ws)
}

// close ends the shell and removes its directory.
func (s *shell) close() {
	s.kill()
	<-s.dead
	s.proc.Release()
	os.RemoveAll(s.dir)
}

// writeCommand writes the files of one command into dir: cmd (what the
// shell sources), in (its stdin), and, for a call with its own env or cwd,
// user (the command itself, sourced from a subshell in cmd so that the
// call's env and cwd do not stay in the session).
func writeCommand(dir string, c command) error {
	text := c.text
	if !strings.HasSuffix(text, "\n") {
		text += "\n" // a here-document may end on the last line
	}
	body := text
	if len(c.env) > 0 || c.cwd != "" {
		if err := os.WriteFile(filepath.Join(dir, "user"), []byte(text), 0o600); err != nil {
			return err
		}
		var b strings.Builder
		b.WriteString("(")
		if c.cwd != "" {
			b.WriteString(" cd -- " + shQuote(c.cwd) + " || exit 1;")
		}
		for k, v := range c.env {
			b.WriteString(" export " + shQuote(k+"="+v) + ";")
		}
		b.WriteString(" . " + shQuote(filepath.Join(dir, "user")) + "\n)\n")
		body = b.String()
	}
	if err := os.WriteFile(filepath.Join(dir, "cmd"), []byte(body), 0o600); err != nil {
		return err
	}
	if c.stdin == nil {
		return os.Symlink(os.DevNull, filepath.Join(dir, "in"))
	}
	return os.WriteFile(filepath.Join(dir, "in"), []byte(*c.stdin), 0o600)
}

// shQuote quotes s as one POSIX shell word.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
