package sandbox

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/sandboxd/sandboxd/api"
)

// ExecOptions adjust one [Sandbox.Exec] or [Sandbox.ExecStream] call. The
// zero value runs the command in the default session with its environment
// and working directory.
type ExecOptions struct {
	// Env adds variables for this command only, over the session's.
	Env map[string]string
	// Cwd is the directory the command runs in; the session's own directory
	// does not change.
	Cwd string
	// Timeout, if positive, makes the daemon kill the command's process tree
	// after this long; the result then has exit code 124. It is sent in whole
	// milliseconds, rounded up.
	Timeout time.Duration
	// Stdin, if not nil, is the command's standard input, for example
	// new("some input"), byte for byte (input that is not UTF-8 travels
	// base64-encoded). Nil means the command reads from /dev/null.
	Stdin *string
	// SessionID selects the session whose shell runs the command; empty means
	// the sandbox's default session. On a [Session] handle it may be empty
	// or the session's own ID; another ID is refused with ErrValidation.
	SessionID string
	// OnStdout and OnStderr, if either is set, make Exec stream the command's
	// output and call them with each chunk as the command writes it, in
	// order, from the calling goroutine. The chunks are the caller's to keep.
	// Exec still returns the whole result, except that it keeps at most the
	// first 16 MiB of each stream (setting Truncated past it), as the daemon
	// does by default. ExecStream ignores them.
	OnStdout, OnStderr func([]byte)
}

// maxKept bounds the output of each stream that Exec with callbacks, and
// ExecStream.Wait, keep for their result.
const maxKept = 16 << 20

// Exec runs command in the sandbox's session shell and waits for it to end.
// The result's Stdout and Stderr hold the command's output byte for byte
// (Go strings may hold any bytes), whatever encoding it travelled in.
// The command is a shell command line: pipes, redirections and variables work,
// and cd, export and shell functions persist to the session's next command.
//
// A command that runs and fails is not an error: the result reports its
// exit code and output. Exec returns ErrSessionTerminated if the command made
// the session's shell exit ([Error.ExitCode] gives the shell's status).
//
// Without output callbacks, Exec retries the call a few times, waiting as the
// daemon asks, while the sandbox is unavailable (ErrUnavailable). With
// [ExecOptions.OnStdout] or OnStderr set it runs the command through
// ExecStream instead, which is not retried.
func (t *target) Exec(ctx context.Context, command string, opts *ExecOptions) (*api.ExecResult, error) {
	op := "exec " + t.describe()
	if opts != nil && (opts.OnStdout != nil || opts.OnStderr != nil) {
		st, err := t.execStream(ctx, op, command, opts)
		if err != nil {
			return nil, err
		}
		return st.collect(opts.OnStdout, opts.OnStderr)
	}
	req, err := t.execRequest(command, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	res, err := call[api.ExecResult](ctx, t, op, retried, http.MethodPost, "/exec", nil, req)
	if err != nil {
		return nil, err
	}
	if err := decodeOutput(&res.Stdout, &res.StdoutEncoding, &res.Stderr, &res.StderrEncoding); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return res, nil
}

// ExecStream is the live output of one command, from [Sandbox.ExecStream]:
// a start event, stdout and stderr events as the command writes, then a
// complete event with its exit code. Read it with Next and Event, or with a
// range loop over Events, or just call Wait. Close it if you stop reading
// before the end.
type ExecStream struct {
	stream[Event]
	command, sessionID string // as requested, for a result whose start event was already read
}

// ExecStream starts command as [Sandbox.Exec] does and returns its events
// as they happen. It returns once the daemon has accepted the command; an
// error the daemon reports before that (ErrSessionNotFound, for example) is
// returned here, one after it ends the stream (see [ExecStream.Err]). The
// stream holds a connection until it ends or is closed; cancelling ctx ends
// it too. It is never retried: the command may have started.
//
// The output callbacks of opts are not used.
func (t *target) ExecStream(ctx context.Context, command string, opts *ExecOptions) (*ExecStream, error) {
	return t.execStream(ctx, "exec stream "+t.describe(), command, opts)
}

// execStream opens an exec stream whose errors are prefixed with op.
func (t *target) execStream(ctx context.Context, op, command string, opts *ExecOptions) (*ExecStream, error) {
	req, err := t.execRequest(command, opts)
	var body io.ReadCloser
	if err == nil {
		body, err = t.openStream(ctx, http.MethodPost, "/exec/stream", nil, nil, req)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &ExecStream{newEventStream(body, op, api.EventComplete), command, cmp.Or(req.SessionID, api.DefaultSessionID)}, nil
}

// Wait reads the rest of the stream and returns the command's result, as
// [Sandbox.Exec] would: the output of the events not read yet (at most the
// first 16 MiB of each stream; Truncated is set past it), the exit code and
// the duration. It returns the stream's error if it ended without a
// complete event, and closes the stream.
func (s *ExecStream) Wait() (*api.ExecResult, error) {
	return s.collect(nil, nil)
}

// collect is Wait, calling onStdout and onStderr (which may be nil) with
// each chunk of output.
func (s *ExecStream) collect(onStdout, onStderr func([]byte)) (*api.ExecResult, error) {
	defer s.Close()
	res := &api.ExecResult{Command: s.command, SessionID: s.sessionID}
	var stdout, stderr keptOutput
	complete := false
	for s.Next() {
		switch ev := s.ev; ev.Type {
		case api.EventStart:
			res.Command, res.SessionID = cmp.Or(ev.Command, res.Command), cmp.Or(ev.SessionID, res.SessionID)
		case api.EventStdout:
			stdout.add(ev.Data)
			if onStdout != nil {
				onStdout(ev.Data)
			}
		case api.EventStderr:
			stderr.add(ev.Data)
			if onStderr != nil {
				onStderr(ev.Data)
			}
		case api.EventComplete:
			res.ExitCode, res.DurationMs, complete = ev.ExitCode, ev.DurationMs, true
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if !complete {
		return nil, fmt.Errorf("%s: %w", s.op, errClosed)
	}
	res.Success = res.ExitCode == 0
	res.Stdout, res.Stderr = string(stdout.b), string(stderr.b)
	res.Truncated = stdout.truncated || stderr.truncated
	return res, nil
}

// errClosed is returned by ExecStream.Wait on a stream closed before its
// complete event.
var errClosed = errors.New("stream closed before the command completed")

// keptOutput is the output of one stream kept for a result, up to maxKept
// bytes.
type keptOutput struct {
	b         []byte
	truncated bool
}

func (k *keptOutput) add(p []byte) {
	n := min(len(p), maxKept-len(k.b))
	k.b = append(k.b, p[:n]...)
	k.truncated = k.truncated || n < len(p)
}

// decodeOutput decodes pairs of output and encoding fields in place:
// base64-encoded output (sent for bytes that are not UTF-8, or NUL) is
// turned back into raw bytes, so that the output fields hold exactly what
// the command wrote, and the encodings are cleared.
func decodeOutput(stdout, stdoutEnc, stderr, stderrEnc *string) error {
	for _, o := range []struct{ s, enc *string }{{stdout, stdoutEnc}, {stderr, stderrEnc}} {
		b, err := api.Output(*o.s, *o.enc)
		if err != nil {
			return fmt.Errorf("decode output: %w", err)
		}
		*o.s, *o.enc = string(b), ""
	}
	return nil
}

// execRequest builds the wire request for command; opts may be nil.
func (t *target) execRequest(command string, opts *ExecOptions) (api.ExecRequest, error) {
	req := api.ExecRequest{Command: command}
	if opts != nil {
		req.Env, req.Cwd, req.Stdin, req.SessionID = opts.Env, opts.Cwd, opts.Stdin, opts.SessionID
		req.TimeoutMs = millis(opts.Timeout)
		if s := opts.Stdin; s != nil && !utf8.ValidString(*s) {
			// JSON would turn the bytes that are not UTF-8 into U+FFFD.
			b64 := base64.StdEncoding.EncodeToString([]byte(*s))
			req.Stdin, req.StdinEncoding = &b64, EncodingBase64
		}
	}
	var err error
	req.SessionID, err = t.session(req.SessionID)
	return req, err
}
