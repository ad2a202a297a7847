package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// maxCommandBytes bounds the request body of exec.
const maxCommandBytes = 8 << 20

// drainGrace is how long exec keeps reading output after the command exited,
// for bytes still in the pipe or written by a background child that holds
// the pipe open.
const drainGrace = 100 * time.Millisecond

func (a *Agent) handleExec(w http.ResponseWriter, r *http.Request) {
	var req ExecRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCommandBytes)).Decode(&req); err != nil {
		writeError(w, fmt.Errorf("%w: decode exec request: %v", errdefs.ErrInvalidArgument, err))
		return
	}
	res, err := a.exec(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// exec runs req.Command with bash -c in its own process group and returns
// when it has exited. A timeout, or the caller going away, kills the whole
// group.
func (a *Agent) exec(ctx context.Context, req ExecRequest) (*api.ExecResult, error) {
	if req.Command == "" {
		return nil, fmt.Errorf("%w: command is empty", errdefs.ErrInvalidArgument)
	}
	shell, err := exec.LookPath("bash")
	if err != nil {
		shell = "/bin/sh"
	}
	dir := req.Cwd
	if dir != "" {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%w: cwd %q is not a directory", errdefs.ErrInvalidArgument, dir)
		}
	}
	limit := req.MaxOutputBytes
	if limit <= 0 {
		limit = DefaultMaxOutputBytes
	}

	stdin, err := stdinFile(req.Stdin)
	if err != nil {
		return nil, err
	}
	defer stdin.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	start := time.Now()
	proc, exited, err := a.reaper.start(shell, []string{shell, "-c", req.Command}, &os.ProcAttr{
		Dir:   dir,
		Env:   mergeEnv(os.Environ(), req.Env),
		Files: []*os.File{stdin, outW, errW},
		Sys:   &unix.SysProcAttr{Setpgid: true},
	})
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("start command: %w", err)
	}
	defer proc.Release()

	stdout, stderr := &cappedBuffer{max: limit}, &cappedBuffer{max: limit}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); copyAndClose(stdout, outR) }()
	go func() { defer readers.Done(); copyAndClose(stderr, errR) }()

	var timeout <-chan time.Time
	if req.TimeoutMs > 0 {
		t := time.NewTimer(time.Duration(req.TimeoutMs) * time.Millisecond)
		defer t.Stop()
		timeout = t.C
	}
	var ws unix.WaitStatus
	timedOut := false
	select {
	case ws = <-exited:
	case <-timeout:
		timedOut = true
		_ = unix.Kill(-proc.Pid, unix.SIGKILL)
		ws = <-exited
	case <-ctx.Done():
		_ = unix.Kill(-proc.Pid, unix.SIGKILL)
		<-exited
		return nil, ctx.Err()
	}
	// Bytes already in the pipes are read at once; a background child that
	// still holds them open is not waited for past drainGrace.
	_ = outR.SetReadDeadline(time.Now().Add(drainGrace))
	_ = errR.SetReadDeadline(time.Now().Add(drainGrace))
	readers.Wait()

	res := &api.ExecResult{
		ExitCode:   exitCode(ws),
		Command:    req.Command,
		DurationMs: time.Since(start).Milliseconds(),
		Truncated:  stdout.truncated || stderr.truncated,
	}
	if timedOut {
		res.ExitCode = 124
		if stderr.Len() > 0 && stderr.Bytes()[stderr.Len()-1] != '\n' {
			stderr.force("\n")
		}
		stderr.force(fmt.Sprintf("Command timed out after %d ms\n", req.TimeoutMs))
	}
	res.Success = res.ExitCode == 0
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	return res, nil
}

func stdinFile(s *string) (*os.File, error) {
	if s == nil {
		return os.Open(os.DevNull)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	go func() {
		_, _ = io.WriteString(w, *s)
		w.Close()
	}()
	return r, nil
}

// copyAndClose copies until EOF or the read deadline set after exit.
func copyAndClose(dst io.Writer, src *os.File) {
	defer src.Close()
	_, _ = io.Copy(dst, src)
}

// exitCode follows the shell's convention: 128+N for death by signal N.
func exitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// mergeEnv returns base with vars set on top of it.
func mergeEnv(base []string, vars map[string]string) []string {
	if len(vars) == 0 {
		return base
	}
	out := make([]string, 0, len(base)+len(vars))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := vars[k]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// cappedBuffer keeps the first max bytes written to it and remembers whether
// it dropped any. Writes never fail, so the command is never blocked on a
// full pipe.
type cappedBuffer struct {
	buf       []byte
	max       int
	truncated bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	room := b.max - len(b.buf)
	if room < len(p) {
		b.truncated = true
		if room > 0 {
			b.buf = append(b.buf, p[:room]...)
		}
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// force appends s even past the cap (for the daemon's own notes).
func (b *cappedBuffer) force(s string) { b.buf = append(b.buf, s...) }
func (b *cappedBuffer) Len() int       { return len(b.buf) }
func (b *cappedBuffer) Bytes() []byte  { return b.buf }
func (b *cappedBuffer) String() string { return string(b.buf) }
