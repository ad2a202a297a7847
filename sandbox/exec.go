package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// ExecOptions adjust one [Sandbox.Exec] call. The zero value runs the command
// in the default session with its environment and working directory.
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
	// new("some input"). Nil means the command reads from /dev/null.
	Stdin *string
	// SessionID selects the session whose shell runs the command; empty means
	// the sandbox's default session.
	SessionID string
}

// Exec runs command in the sandbox's session shell and waits for it to end.
// The result's Stdout and Stderr hold the command's output byte for byte
// (Go strings may hold any bytes), whatever encoding it travelled in.
// The command is a shell command line: pipes, redirections and variables work,
// and cd, export and shell functions persist to the session's next command.
//
// A command that runs and fails is not an error: the result reports its
// exit code and output. Exec returns ErrSessionTerminated if the command made
// the session's shell exit (the error's Details hold "exitCode"), and retries
// the call a few times, waiting as the daemon asks, while the sandbox is
// unavailable (ErrUnavailable).
func (s *Sandbox) Exec(ctx context.Context, command string, opts *ExecOptions) (*api.ExecResult, error) {
	req := opts.request(command)
	var res api.ExecResult
	err := retryUnavailable(ctx, func() error {
		return s.do(ctx, http.MethodPost, "/exec", req, &res)
	})
	if err != nil {
		return nil, fmt.Errorf("exec sandbox %s: %w", s.id, err)
	}
	if err := decodeOutput(&res); err != nil {
		return nil, fmt.Errorf("exec sandbox %s: %w", s.id, err)
	}
	return &res, nil
}

// decodeOutput turns base64-encoded output (sent for bytes that are not
// UTF-8, or NUL) back into raw bytes, so Stdout and Stderr always hold
// exactly what the command wrote, and clears the encodings.
func decodeOutput(res *api.ExecResult) error {
	for _, o := range []struct{ s, enc *string }{{&res.Stdout, &res.StdoutEncoding}, {&res.Stderr, &res.StderrEncoding}} {
		b, err := api.Output(*o.s, *o.enc)
		if err != nil {
			return fmt.Errorf("decode output: %w", err)
		}
		*o.s, *o.enc = string(b), ""
	}
	return nil
}

// request builds the wire request for command; o may be nil.
func (o *ExecOptions) request(command string) api.ExecRequest {
	req := api.ExecRequest{Command: command}
	if o == nil {
		return req
	}
	req.Env, req.Cwd, req.Stdin, req.SessionID = o.Env, o.Cwd, o.Stdin, o.SessionID
	if o.Timeout > 0 {
		req.TimeoutMs = int64((o.Timeout + time.Millisecond - 1) / time.Millisecond)
	}
	return req
}
