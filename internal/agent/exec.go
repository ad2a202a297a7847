package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// maxExecBody bounds the request body of exec; the daemon's own limit on
// API bodies is lower.
const maxExecBody = 64 << 20

// drainGrace is how long exec keeps reading output after the command
// exited, for a background child that holds the pipes open and still
// writes. Bytes the command wrote before it exited are never lost to it.
const drainGrace = 100 * time.Millisecond

func (a *Agent) handleExec(w http.ResponseWriter, r *http.Request) {
	var req ExecRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxExecBody)).Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, fmt.Errorf("%w: exec request over %d bytes", errdefs.ErrPayloadTooLarge, tooBig.Limit))
			return
		}
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

// exec runs req.Command with bash -c and returns when it has exited. A
// timeout, or the caller going away, kills the command's whole process
// tree (see killTree).
func (a *Agent) exec(ctx context.Context, req ExecRequest) (*api.ExecResult, error) {
	if req.Command == "" {
		return nil, fmt.Errorf("%w: command is empty", errdefs.ErrInvalidArgument)
	}
	shell, err := exec.LookPath("bash")
	if err != nil {
		shell = "/bin/sh"
	}
	dir := req.Cwd
	if dir == "" {
		dir = a.workdir
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%w: cwd %q is not a directory", errdefs.ErrInvalidArgument, dir)
	}
	limit := req.MaxOutputBytes
	if limit <= 0 {
		limit = DefaultMaxOutputBytes
	}

	stdin, closeStdin, err := stdinFile(req.Stdin)
	if err != nil {
		return nil, err
	}
	defer closeStdin()
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
	marker := newMarker()
	env := mergeEnv(os.Environ(), req.Env)
	env = append(env, markerVar+"="+marker)
	start := time.Now()
	proc, exited, err := a.reaper.start(shell, []string{shell, "-c", req.Command}, &os.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: []*os.File{stdin, outW, errW},
		Sys:   &unix.SysProcAttr{Setpgid: true},
	})
	stdin.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		if errors.Is(err, syscall.EAGAIN) {
			return nil, fmt.Errorf("%w: cannot start a process: the sandbox's process limit is reached", errdefs.ErrResourceExhausted)
		}
		return nil, fmt.Errorf("start command: %w", err)
	}
	defer proc.Release()

	stdout, stderr := &cappedBuffer{max: limit}, &cappedBuffer{max: limit}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); copyOutput(stdout, outR) }()
	go func() { defer readers.Done(); copyOutput(stderr, errR) }()

	var timeout <-chan time.Time
	if req.TimeoutMs > 0 {
		t := time.NewTimer(time.Duration(req.TimeoutMs) * time.Millisecond)
		defer t.Stop()
		timeout = t.C
	}
	var ws unix.WaitStatus
	timedOut, gone := false, false
	select {
	case ws = <-exited:
	case <-timeout:
		timedOut = true
		killTree(proc.Pid, marker)
		ws = <-exited
	case <-ctx.Done():
		gone = true
		killTree(proc.Pid, marker)
		ws = <-exited
	}
	// Output already in the pipes is read in full; a background child that
	// still holds them is not waited for past drainGrace.
	_ = outR.SetReadDeadline(time.Now().Add(drainGrace))
	_ = errR.SetReadDeadline(time.Now().Add(drainGrace))
	readers.Wait()
	if gone {
		return nil, ctx.Err()
	}

	res := &api.ExecResult{
		ExitCode:   exitCode(ws),
		Command:    req.Command,
		DurationMs: time.Since(start).Milliseconds(),
		Truncated:  stdout.truncated || stderr.truncated,
	}
	if timedOut {
		res.ExitCode = 124
		if n := len(stderr.buf); n > 0 && stderr.buf[n-1] != '\n' {
			stderr.force("\n")
		}
		stderr.force(fmt.Sprintf("Command timed out after %d ms\n", req.TimeoutMs))
	}
	res.Success = res.ExitCode == 0
	res.Stdout, res.StdoutEncoding = encodeOutput(stdout.buf)
	res.Stderr, res.StderrEncoding = encodeOutput(stderr.buf)
	return res, nil
}

// encodeOutput returns b as a JSON-safe string: as it is if it is valid
// UTF-8 without NUL, else base64 (and the encoding's name).
func encodeOutput(b []byte) (string, string) {
	if utf8.Valid(b) && !strings.ContainsRune(string(b), 0) {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), api.EncodingBase64
}

// stdinFile returns the command's stdin: /dev/null, or a pipe fed with s.
// The returned func stops feeding it.
func stdinFile(s *string) (*os.File, func(), error) {
	if s == nil {
		f, err := os.Open(os.DevNull)
		return f, func() {}, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.WriteString(w, *s)
		w.Close()
	}()
	return r, func() { w.Close(); <-done }, nil
}

// copyOutput copies src to dst until EOF, or until the read deadline set
// after the command exited; then it takes, without waiting, what is still in
// the pipe (the deadline may pass before a slow reader got it all).
func copyOutput(dst io.Writer, src *os.File) {
	defer src.Close()
	_, err := io.Copy(dst, src)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return
	}
	_ = src.SetReadDeadline(time.Time{})
	rc, err := src.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 64<<10)
	_ = rc.Read(func(fd uintptr) bool {
		for total := 0; total < 1<<20; {
			n, err := unix.Read(int(fd), buf)
			if n <= 0 || err != nil {
				break
			}
			_, _ = dst.Write(buf[:n])
			total += n
		}
		return true // done, whatever happened: never wait here
	})
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

// force appends s even past the cap (for the agent's own notes).
func (b *cappedBuffer) force(s string) { b.buf = append(b.buf, s...) }
