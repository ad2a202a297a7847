package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// LogWaitOptions adjust [Process.WaitForLog].
type LogWaitOptions struct {
	// Regex makes the pattern a regular expression (RE2 syntax) rather than
	// a plain substring.
	Regex bool
	// Stream is where to look: "stdout", "stderr", or "" for both.
	Stream string
	// Timeout bounds the wait on the daemon's side (ErrTimeout past it);
	// zero means until ctx's deadline, if it has one, else the daemon's
	// default.
	Timeout time.Duration
}

// PortWaitOptions adjust [Process.WaitForPort].
type PortWaitOptions struct {
	// Mode is "tcp" (the default: something accepts connections on the
	// port) or "http" (an HTTP GET of Path answers with a status in Status).
	Mode string
	// Path is the path of the HTTP check; "" means "/".
	Path string
	// Status is the HTTP status, or range of statuses, that counts as
	// ready: "200" or "200-399" (the default).
	Status string
	// Timeout bounds the wait, as in LogWaitOptions.
	Timeout time.Duration
}

// WaitForLog waits until the process writes output matching pattern (a
// substring, or a regular expression with opts.Regex), including output
// written before the call, and returns the matching line. opts may be nil.
//
// It returns ErrTimeout if the wait ran out, and an [*Error] carrying the
// process's exit code ([Error.ExitCode]) if the process exited without
// writing a match.
func (p *Process) WaitForLog(ctx context.Context, pattern string, opts *LogWaitOptions) (*api.WaitResult, error) {
	req := api.WaitRequest{Log: pattern}
	var timeout time.Duration
	if opts != nil {
		req.Regex, req.Stream, timeout = opts.Regex, opts.Stream, opts.Timeout
	}
	return p.wait(ctx, fmt.Sprintf("wait for log %q", pattern), req, timeout)
}

// WaitForPort waits until the process's service is ready on port, inside
// the sandbox: accepting TCP connections, or answering HTTP requests with
// opts.Mode "http". opts may be nil. Errors are as for WaitForLog.
func (p *Process) WaitForPort(ctx context.Context, port int, opts *PortWaitOptions) error {
	req := api.WaitRequest{Port: port}
	var timeout time.Duration
	if opts != nil {
		req.PortMode, req.Path, req.Status, timeout = opts.Mode, opts.Path, opts.Status, opts.Timeout
	}
	_, err := p.wait(ctx, fmt.Sprintf("wait for port %d", port), req, timeout)
	return err
}

// WaitForExit waits until the process exits and returns its exit code (128+N
// for a process killed by signal N). timeout bounds the wait as in
// LogWaitOptions; past it WaitForExit returns ErrTimeout.
func (p *Process) WaitForExit(ctx context.Context, timeout time.Duration) (int, error) {
	const op = "wait for exit"
	res, err := p.wait(ctx, op, api.WaitRequest{Exit: true}, timeout)
	var e *Error
	switch {
	case errors.As(err, &e) && e.HTTPStatus == http.StatusConflict:
		// The process had exited: that is what was waited for.
		if code, ok := e.ExitCode(); ok {
			return code, nil
		}
	case err == nil && res.ExitCode == nil:
		err = fmt.Errorf("%s of process %s in %s: daemon reported no exit code", op, p.id, p.t.describe())
	case err == nil:
		return *res.ExitCode, nil
	}
	return 0, err
}

// wait asks the daemon to wait for req, bounded by timeout or else by ctx's
// deadline. Waiting changes nothing, so it is retried while the sandbox is
// unavailable. Errors are prefixed with what, followed by the process.
func (p *Process) wait(ctx context.Context, what string, req api.WaitRequest, timeout time.Duration) (*api.WaitResult, error) {
	if deadline, ok := ctx.Deadline(); ok && timeout <= 0 {
		timeout = time.Until(deadline)
	}
	req.TimeoutMs = millis(timeout)
	op := fmt.Sprintf("%s of process %s in %s", what, p.id, p.t.describe())
	return processCall[api.WaitResult](ctx, &p.t, op, retried, http.MethodPost, p.id, "/wait", nil, req)
}
