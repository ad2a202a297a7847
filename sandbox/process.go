package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// ProcessOptions adjust one [Sandbox.StartProcess] call. The zero value
// starts the process in the default session with a generated ID.
type ProcessOptions struct {
	// ID names the process; it must be unique in the sandbox
	// (ErrProcessExists otherwise). Empty lets the daemon choose one.
	ID string
	// Env adds variables for this process only, over the session's.
	Env map[string]string
	// Cwd is the directory the process starts in.
	Cwd string
	// Timeout, if positive, makes the daemon kill the process after this
	// long. It is sent in whole milliseconds, rounded up.
	Timeout time.Duration
	// AutoCleanup lets the daemon forget the process, with its logs, once
	// it has exited.
	AutoCleanup bool
	// SessionID selects the session the process starts in, whose
	// environment and directory it inherits; empty means the default
	// session. On a [Session] handle it may be empty or the session's own
	// ID; another ID is refused with ErrValidation.
	SessionID string
}

// Process is a handle on a background process of a sandbox, from
// [Sandbox.StartProcess] or [Sandbox.Process]. It holds only IDs: every
// method asks the daemon, and returns ErrProcessNotFound if the daemon does
// not know the process (any more).
type Process struct {
	t  target
	id string
}

// ID returns the process's ID (not its PID).
func (p *Process) ID() string { return p.id }

// Info returns the process's description: status, PID, exit code...
func (p *Process) Info(ctx context.Context) (*api.Process, error) {
	return p.t.GetProcess(ctx, p.id)
}

// Kill kills the process and its descendants, as [Sandbox.KillProcess]
// does, and returns its description once it has died.
func (p *Process) Kill(ctx context.Context, signal string) (*api.Process, error) {
	return p.t.KillProcess(ctx, p.id, signal)
}

// Logs returns the output the process has written so far, as
// [Sandbox.GetProcessLogs] does.
func (p *Process) Logs(ctx context.Context) (*api.ProcessLogs, error) {
	return p.t.GetProcessLogs(ctx, p.id)
}

// StreamLogs streams the process's output, as [Sandbox.StreamProcessLogs]
// does.
func (p *Process) StreamLogs(ctx context.Context, fromEventID string) (*LogStream, error) {
	return p.t.StreamProcessLogs(ctx, p.id, fromEventID)
}

// StartProcess starts command in the background and returns a handle on it
// as soon as it runs. command is a shell command line, run by a shell that
// starts in the session's directory and environment. The process outlives
// the call; its output is kept for Logs and StreamLogs. It returns
// ErrProcessExists if opts name an ID that is taken, and ErrResourceExhausted
// past the daemon's limit on processes. It is never retried.
func (t *target) StartProcess(ctx context.Context, command string, opts *ProcessOptions) (*Process, error) {
	op := "start process in " + t.describe()
	req := api.StartProcessRequest{Command: command}
	if opts != nil {
		req.ProcessID, req.Env, req.Cwd, req.AutoCleanup = opts.ID, opts.Env, opts.Cwd, opts.AutoCleanup
		req.SessionID, req.TimeoutMs = opts.SessionID, millis(opts.Timeout)
	}
	var err error
	if req.SessionID, err = t.session(req.SessionID); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	info, err := call[api.Process](ctx, t, op, once, http.MethodPost, "/processes", nil, req)
	if err != nil {
		return nil, err
	}
	return t.Process(info.ID), nil
}

// Process returns a handle on the process id. It sends no request.
// Processes belong to the sandbox, whichever session started them.
func (t *target) Process(id string) *Process {
	return &Process{t: target{c: t.c, sandboxID: t.sandboxID}, id: id}
}

// ListProcesses returns the sandbox's processes, in every session. status,
// if not empty, keeps only those with that status (api.ProcessRunning, for
// example).
func (t *target) ListProcesses(ctx context.Context, status string) ([]api.Process, error) {
	var q url.Values
	if status != "" {
		q = url.Values{"status": {status}}
	}
	list, err := call[api.ProcessList](ctx, t, "list processes of "+t.describe(), retried, http.MethodGet, "/processes", q, nil)
	if err != nil {
		return nil, err
	}
	return list.Processes, nil
}

// GetProcess returns the description of the process id.
func (t *target) GetProcess(ctx context.Context, id string) (*api.Process, error) {
	return processCall[api.Process](ctx, t, fmt.Sprintf("get process %s in %s", id, t.describe()), retried, http.MethodGet, id, "", nil, nil)
}

// KillProcess sends signal ("SIGKILL", "SIGINT"...; empty means SIGTERM)
// to the process id and its descendants, follows up with SIGKILL after a
// grace period, and returns the process's description once it has died.
// Killing a process that has exited already returns its description.
func (t *target) KillProcess(ctx context.Context, id, signal string) (*api.Process, error) {
	var q url.Values
	if signal != "" {
		q = url.Values{"signal": {signal}}
	}
	return processCall[api.Process](ctx, t, fmt.Sprintf("kill process %s in %s", id, t.describe()), once, http.MethodDelete, id, "", q, nil)
}

// KillAllProcesses kills every process of the sandbox, as KillProcess does
// with SIGTERM, and returns how many it killed.
func (t *target) KillAllProcesses(ctx context.Context) (int, error) {
	res, err := call[api.KillAllResult](ctx, t, "kill processes of "+t.describe(), once, http.MethodDelete, "/processes", nil, nil)
	if err != nil {
		return 0, err
	}
	return res.KilledCount, nil
}

// GetProcessLogs returns the output the process id has written so far.
// Like [Sandbox.Exec]'s, its Stdout and Stderr hold the bytes byte for byte
// (the encoding fields are cleared). Truncated is set if the process wrote
// more than the daemon keeps.
func (t *target) GetProcessLogs(ctx context.Context, id string) (*api.ProcessLogs, error) {
	op := fmt.Sprintf("get logs of process %s in %s", id, t.describe())
	logs, err := processCall[api.ProcessLogs](ctx, t, op, retried, http.MethodGet, id, "/logs", nil, nil)
	if err != nil {
		return nil, err
	}
	if err := decodeOutput(&logs.Stdout, &logs.StdoutEncoding, &logs.Stderr, &logs.StderrEncoding); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return logs, nil
}

// LogStream is the output of a background process, from
// [Sandbox.StreamProcessLogs]: stdout and stderr events, then an exit event
// with the process's exit code and status. Read it with Next and Event, or
// with a range loop over Events, or call Wait. Close it if you stop reading
// before the end.
type LogStream struct {
	stream[Event]
}

// StreamProcessLogs streams the output of the process id: what it wrote
// already, then what it writes, as it does, until it exits. fromEventID, if
// not empty, is the ID of the last event seen on an earlier stream of this
// process (sent as Last-Event-ID): the stream resumes after it. It returns
// ErrProcessNotFound for an unknown process. It is never retried.
//
// A stream that breaks off (ErrUnexpectedEOF, a network error) can be
// resumed with the ID of the last event read.
func (t *target) StreamProcessLogs(ctx context.Context, id, fromEventID string) (*LogStream, error) {
	op := fmt.Sprintf("stream logs of process %s in %s", id, t.describe())
	if err := checkSegment("process", id); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var h http.Header
	if fromEventID != "" {
		h = http.Header{"Last-Event-ID": {fromEventID}}
	}
	body, err := t.openStream(ctx, http.MethodGet, "/processes/"+url.PathEscape(id)+"/logs/stream", nil, h, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &LogStream{newEventStream(body, op, api.EventExit)}, nil
}

// Wait reads the rest of the stream, discarding output, and returns its
// exit event, whose ExitCode and Status say how the process ended. It
// returns the stream's error if it ended without one, and closes the
// stream.
func (s *LogStream) Wait() (Event, error) {
	defer s.Close()
	var last Event
	for s.Next() {
		last = s.ev
	}
	if err := s.Err(); err != nil {
		return Event{}, err
	}
	if last.Type != api.EventExit {
		return Event{}, fmt.Errorf("%s: stream closed before the process exited", s.op)
	}
	return last, nil
}
