package session

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/agentapi"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

func (reg *Registry) handleExec(r *http.Request, req *agentapi.ExecRequest) (*api.ExecResult, error) {
	s, c, err := reg.execRequest(r, req)
	if err != nil {
		return nil, err
	}
	limit := cmp.Or(max(req.MaxOutputBytes, 0), agentapi.DefaultMaxOutputBytes)
	sink := &bufferSink{stdout: cappedBuffer{max: limit}, stderr: cappedBuffer{max: limit}}
	began := time.Now()
	run, err := reg.runInSession(r.Context(), s, c, sink)
	if err != nil {
		return nil, err
	}
	res := &api.ExecResult{
		ExitCode:   run.code,
		Success:    run.code == 0,
		Command:    req.Command,
		DurationMs: time.Since(began).Milliseconds(),
		SessionID:  s.id,
		Truncated:  sink.stdout.truncated || sink.stderr.truncated,
	}
	if note := timeoutNote(run); note != "" {
		if errOut := sink.stderr.buf; len(errOut) > 0 && errOut[len(errOut)-1] != '\n' {
			note = "\n" + note
		}
		sink.stderr.buf = append(sink.stderr.buf, note...) // past the cap: the agent's own note
	}
	res.Stdout, res.StdoutEncoding = core.EncodeOutput(sink.stdout.buf)
	res.Stderr, res.StderrEncoding = core.EncodeOutput(sink.stderr.buf)
	return res, nil
}

// handleExecStream runs a command like handleExec and streams its output
// as Server-Sent Events as it is written: start, stdout/stderr chunks, then
// complete (or error). If the caller goes away, the command is killed.
func (reg *Registry) handleExecStream(w http.ResponseWriter, r *http.Request) {
	var req agentapi.ExecRequest
	if err := core.DecodeBody(w, r, &req); err != nil {
		core.WriteError(w, err)
		return
	}
	s, c, err := reg.execRequest(r, &req)
	if err != nil {
		core.WriteError(w, err)
		return
	}
	sse := core.NewSSE(w)
	defer sse.Close()
	sink := &sseSink{sse: sse, command: req.Command, session: s.id}
	began := time.Now()
	run, err := reg.runInSession(r.Context(), s, c, sink)
	sse.FlushOutput()
	if err != nil {
		ev := api.StreamEvent{Type: api.EventError, Code: errdefs.Code(err), Message: err.Error()}
		if ce := (*errdefs.CodedError)(nil); errors.As(err, &ce) {
			if code, ok := ce.Details["exitCode"].(int); ok {
				ev.ExitCode = &code
			}
		}
		_ = sse.Send(ev)
		return
	}
	if note := timeoutNote(run); note != "" {
		_ = sse.Output(api.EventStderr, []byte(note)) // ASCII: nothing held back
	}
	_ = sse.Send(api.StreamEvent{Type: api.EventComplete, ExitCode: &run.code, DurationMs: time.Since(began).Milliseconds()})
}

// execRequest checks an exec request and finds its session.
func (reg *Registry) execRequest(r *http.Request, req *agentapi.ExecRequest) (*Session, command, error) {
	if req.Command == "" {
		return nil, command{}, fmt.Errorf("%w: command is empty", errdefs.ErrInvalidArgument)
	}
	if req.Cwd != "" {
		if fi, err := os.Stat(req.Cwd); err != nil || !fi.IsDir() {
			return nil, command{}, fmt.Errorf("%w: cwd %q is not a directory", errdefs.ErrInvalidArgument, req.Cwd)
		}
	}
	for k := range req.Env {
		if !agentapi.EnvName.MatchString(k) {
			return nil, command{}, fmt.Errorf("%w: env name %q", errdefs.ErrInvalidArgument, k)
		}
	}
	stdin := req.Stdin
	switch req.StdinEncoding {
	case "", "utf-8":
	case api.EncodingBase64:
		if stdin != nil {
			b, err := base64.StdEncoding.DecodeString(*stdin)
			if err != nil {
				return nil, command{}, fmt.Errorf("%w: stdin is not valid base64: %v", errdefs.ErrInvalidArgument, err)
			}
			text := string(b)
			stdin = &text
		}
	default:
		return nil, command{}, fmt.Errorf("%w: stdinEncoding %q: use %q", errdefs.ErrInvalidArgument, req.StdinEncoding, api.EncodingBase64)
	}
	s, err := reg.ForRequest(r, req.SessionID)
	return s, command{text: req.Command, env: req.Env, cwd: req.Cwd, stdin: stdin,
		timeout: time.Duration(req.TimeoutMs) * time.Millisecond}, err
}

// timeoutNote is what a timed-out command gets appended to its stderr.
func timeoutNote(run runResult) string {
	if !run.timedOut {
		return ""
	}
	note := fmt.Sprintf("Command timed out after %d ms\n", run.timeout.Milliseconds())
	if run.reset {
		note += "(the command did not stop, so the session's shell was restarted: its state is lost)\n"
	}
	return note
}

// bufferSink keeps a command's output in memory, capped (the zero value
// keeps nothing).
type bufferSink struct {
	stdout, stderr cappedBuffer
}

func (b *bufferSink) start(int) {}

func (b *bufferSink) write(stream string, p []byte) {
	if stream == api.EventStdout {
		b.stdout.add(p)
	} else {
		b.stderr.add(p)
	}
}

// sseSink streams a command's output.
type sseSink struct {
	sse              *core.SSE
	command, session string
}

func (s *sseSink) start(pid int) {
	_ = s.sse.Send(api.StreamEvent{Type: api.EventStart, Command: s.command, Pid: pid, SessionID: s.session})
}

func (s *sseSink) write(stream string, p []byte) { _ = s.sse.Output(stream, p) }

// cappedBuffer keeps the first max bytes added to it and remembers whether
// it dropped any. Adding never fails, so the command is never blocked on a
// full pipe.
type cappedBuffer struct {
	buf       []byte
	max       int
	truncated bool
}

func (b *cappedBuffer) add(p []byte) {
	n := min(len(p), max(b.max-len(b.buf), 0))
	b.truncated = b.truncated || n < len(p)
	b.buf = append(b.buf, p[:n]...)
}
