package sandbox

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// CodeContextOptions adjust [Sandbox.CreateCodeContext]. The zero value
// makes a Python context in /workspace.
type CodeContextOptions struct {
	// Language is api.LanguagePython (the default), api.LanguageJavaScript
	// or api.LanguageTypeScript.
	Language string
	// Cwd is the interpreter's working directory (default /workspace).
	Cwd string
	// EnvVars are added to the interpreter's environment.
	EnvVars map[string]string
}

// CreateCodeContext makes a code context: an interpreter whose state
// (variables, imports, functions) carries from one [Sandbox.RunCode] to
// the next, isolated from other contexts. It returns
// ErrLanguageNotAvailable if the sandbox's image lacks the language, and
// ErrResourceExhausted past the sandbox's limit on contexts. opts may be
// nil.
func (s *Sandbox) CreateCodeContext(ctx context.Context, opts *CodeContextOptions) (*api.CodeContext, error) {
	var req api.CreateCodeContextRequest
	if opts != nil {
		req = api.CreateCodeContextRequest{Language: opts.Language, Cwd: opts.Cwd, EnvVars: opts.EnvVars}
	}
	return call[api.CodeContext](ctx, &s.target, "create code context in sandbox "+s.sandboxID, once, http.MethodPost, "/contexts", nil, req)
}

// ListCodeContexts returns the sandbox's code contexts, oldest first,
// including the default ones RunCode made.
func (s *Sandbox) ListCodeContexts(ctx context.Context) ([]api.CodeContext, error) {
	list, err := call[api.CodeContextList](ctx, &s.target, "list code contexts of sandbox "+s.sandboxID, retried, http.MethodGet, "/contexts", nil, nil)
	if err != nil {
		return nil, err
	}
	return list.Contexts, nil
}

// DeleteCodeContext ends a code context's interpreter and everything its
// code started; a run in progress in it ends. It returns
// ErrContextNotFound if there is no such context.
func (s *Sandbox) DeleteCodeContext(ctx context.Context, id string) error {
	if err := checkSegment("context", id); err != nil {
		return err
	}
	_, err := call[none](ctx, &s.target, fmt.Sprintf("delete code context %s of sandbox %s", id, s.sandboxID), once, http.MethodDelete, "/contexts/"+url.PathEscape(id), nil, nil)
	return err
}

// RunCodeOptions adjust one [Sandbox.RunCode] or [Sandbox.RunCodeStream].
// The zero value runs Python in the sandbox's default Python context.
type RunCodeOptions struct {
	// ContextID names the context to run in. Empty: the default context of
	// Language, created on first use.
	ContextID string
	// Language is that of the code (default: the context's, or python).
	Language string
	// Timeout, if positive, interrupts the run after this long (Python
	// gets a KeyboardInterrupt); the result then has a TimeoutError. A run
	// that does not stop gets its context reset (ContextReset).
	Timeout time.Duration
	// OnStdout, OnStderr, OnResult and OnError, if any is set, make RunCode
	// stream the run and call them as it happens, in order, from the
	// calling goroutine. RunCodeStream ignores them.
	OnStdout, OnStderr func(text string)
	OnResult           func(Result)
	OnError            func(api.ExecutionError)
}

// Result is one rich output of a run (see api.Result): the value of the
// last expression, a display() call or a figure.
type Result api.Result

// PNGBytes returns the result's PNG image, decoded; ok is false if it has none.
func (r Result) PNGBytes() (b []byte, ok bool) { return decodeImage(r.PNG) }

// JPEGBytes returns the result's JPEG image, decoded; ok is false if it
// has none.
func (r Result) JPEGBytes() (b []byte, ok bool) { return decodeImage(r.JPEG) }

// Formats lists the formats the result holds ("text", "html", "png"...).
func (r Result) Formats() []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"text", r.Text != ""}, {"html", r.HTML != ""}, {"png", r.PNG != ""}, {"jpeg", r.JPEG != ""},
		{"svg", r.SVG != ""}, {"latex", r.Latex != ""}, {"markdown", r.Markdown != ""},
		{"json", len(r.JSON) > 0}, {"javascript", r.JavaScript != ""}} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

func decodeImage(s string) ([]byte, bool) {
	if s == "" {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(s)
	return b, err == nil
}

// ExecutionResult is the outcome of one run (see api.ExecutionResult).
// Success is false when Error is set: the code raised or threw. Logs hold
// what it printed, one entry per write.
type ExecutionResult struct {
	Code           string
	Success        bool
	Logs           api.Logs
	Results        []Result
	Error          *api.ExecutionError
	ExecutionCount int
	// ContextID names the context that ran the code.
	ContextID string
	// ContextReset says the context's interpreter was restarted (a run
	// that would not stop, a crash): its state is gone.
	ContextReset bool
	// Truncated says Logs lost output past the cap (16 MiB per stream),
	// or Results past 64 MiB. With callbacks, or RunCodeStream, the
	// callbacks and events have all of it (Logs are still capped).
	Truncated bool
}

// Text returns the text of the main result (the last expression's value),
// or "" if there is none.
func (r *ExecutionResult) Text() string {
	for _, res := range r.Results {
		if res.IsMainResult {
			return res.Text
		}
	}
	return ""
}

// PNGs returns every PNG image among the results, decoded.
func (r *ExecutionResult) PNGs() [][]byte {
	var out [][]byte
	for _, res := range r.Results {
		if b, ok := res.PNGBytes(); ok {
			out = append(out, b)
		}
	}
	return out
}

func fromWireResult(w *api.ExecutionResult) *ExecutionResult {
	r := &ExecutionResult{Code: w.Code, Success: w.Success, Logs: w.Logs, Error: w.Error,
		ExecutionCount: w.ExecutionCount, ContextID: w.ContextID, ContextReset: w.ContextReset, Truncated: w.Truncated}
	r.Results = make([]Result, len(w.Results))
	for i, res := range w.Results {
		r.Results[i] = Result(res)
	}
	return r
}

// RunCode runs code in a code context and returns its result once it has
// finished. A run whose code fails is not an error: the result's Error
// says why. RunCode returns ErrContextNotFound for an unknown context and
// ErrLanguageNotAvailable for a language the image lacks. Runs in one
// context happen one at a time, in order. With callbacks in opts, it
// streams the run (see [Sandbox.RunCodeStream]) and calls them as events
// arrive. opts may be nil.
func (s *Sandbox) RunCode(ctx context.Context, code string, opts *RunCodeOptions) (*ExecutionResult, error) {
	op := "run code in sandbox " + s.sandboxID
	if opts != nil && (opts.OnStdout != nil || opts.OnStderr != nil || opts.OnResult != nil || opts.OnError != nil) {
		st, err := s.runCodeStream(ctx, op, code, opts)
		if err != nil {
			return nil, err
		}
		return st.collect(opts)
	}
	res, err := call[api.ExecutionResult](ctx, &s.target, op, once, http.MethodPost, "/code/run", nil, runCodeRequest(code, opts))
	if err != nil {
		return nil, err
	}
	return fromWireResult(res), nil
}

func runCodeRequest(code string, opts *RunCodeOptions) api.RunCodeRequest {
	req := api.RunCodeRequest{Code: code}
	if opts != nil {
		req.ContextID, req.Language, req.TimeoutMs = opts.ContextID, opts.Language, millis(opts.Timeout)
	}
	return req
}

// CodeEvent is one event of a [CodeStream]: api.EventStdout or
// api.EventStderr (Text), api.EventResult (Result), api.EventError (Error:
// the code raised or threw; the run goes on to complete), then
// api.EventComplete (ExecutionCount, ContextID, ContextReset).
type CodeEvent struct {
	Type           string
	ID             string
	Text           string
	Result         Result
	Error          api.ExecutionError
	ExecutionCount int
	ContextID      string
	ContextReset   bool
}

// CodeStream is the live output of one run, from [Sandbox.RunCodeStream].
// Read it with Next and Event, or a range loop over Events, or call Wait.
// Close it if you stop reading before the end.
type CodeStream struct {
	stream[CodeEvent]
	code string
}

// RunCodeStream starts a run as [Sandbox.RunCode] does and returns its
// events as they happen. An error the daemon reports before the run starts
// is returned here; one after ends the stream (see Err). Cancelling ctx, or
// closing the stream, interrupts the run. It is never retried. The
// callbacks of opts are not used.
func (s *Sandbox) RunCodeStream(ctx context.Context, code string, opts *RunCodeOptions) (*CodeStream, error) {
	return s.runCodeStream(ctx, "run code stream in sandbox "+s.sandboxID, code, opts)
}

func (s *Sandbox) runCodeStream(ctx context.Context, op, code string, opts *RunCodeOptions) (*CodeStream, error) {
	body, err := s.openStream(ctx, http.MethodPost, "/code/run/stream", nil, nil, runCodeRequest(code, opts))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &CodeStream{stream[CodeEvent]{body: body, sse: newSSEReader(body), terminal: api.EventComplete, op: op, decode: decodeCodeEvent}, code}, nil
}

// decodeCodeEvent decodes one event of a code stream. An "error" event
// with a code (the call failed) gives an *Error; one with a name (the code
// raised) is an event.
func decodeCodeEvent(raw sseEvent) (CodeEvent, bool, bool, error) {
	var w api.CodeEvent
	if err := json.Unmarshal(raw.Data, &w); err != nil {
		return CodeEvent{}, false, false, fmt.Errorf("decode %q event %q: %w", raw.Event, raw.ID, err)
	}
	ev := CodeEvent{Type: cmp.Or(raw.Event, w.Type), ID: raw.ID}
	switch ev.Type {
	case api.EventStdout, api.EventStderr:
		ev.Text = w.Text
	case api.EventResult:
		ev.Result = Result(w.AsResult())
	case api.EventError:
		if w.Code != "" || w.Name == "" {
			return ev, false, false, streamError(api.StreamEvent{Code: w.Code, Message: w.Message})
		}
		ev.Error = api.ExecutionError{Name: w.Name, Value: w.Value, Traceback: w.Traceback}
	case api.EventComplete:
		if w.ExecutionCount != nil {
			ev.ExecutionCount = *w.ExecutionCount
		}
		ev.ContextID, ev.ContextReset = w.ContextID, w.ContextReset
	}
	return ev, false, ev.Type == api.EventComplete, nil
}

// Wait reads the rest of the stream and returns the run's result, as
// [Sandbox.RunCode] would (from the events not read yet). It closes the
// stream.
func (s *CodeStream) Wait() (*ExecutionResult, error) { return s.collect(nil) }

// maxKeptLogs bounds the output a streamed run's result keeps per stream,
// as the daemon bounds RunCode's (the callbacks see all of it).
const maxKeptLogs = 16 << 20

// errRunIncomplete is returned by Wait on a stream closed before its
// complete event.
var errRunIncomplete = errors.New("stream closed before the run completed")

func (s *CodeStream) collect(opts *RunCodeOptions) (*ExecutionResult, error) {
	defer s.Close()
	if opts == nil {
		opts = &RunCodeOptions{}
	}
	res := &ExecutionResult{Code: s.code, Logs: api.Logs{Stdout: []string{}, Stderr: []string{}}, Results: []Result{}}
	complete := false
	var kept [2]int // bytes of stdout and stderr kept
	keep := func(logs *[]string, n *int, text string) {
		if *n+len(text) > maxKeptLogs {
			res.Truncated = true
			return
		}
		*n += len(text)
		*logs = append(*logs, text)
	}
	for s.Next() {
		switch ev := s.ev; ev.Type {
		case api.EventStdout:
			keep(&res.Logs.Stdout, &kept[0], ev.Text)
			if opts.OnStdout != nil {
				opts.OnStdout(ev.Text)
			}
		case api.EventStderr:
			keep(&res.Logs.Stderr, &kept[1], ev.Text)
			if opts.OnStderr != nil {
				opts.OnStderr(ev.Text)
			}
		case api.EventResult:
			res.Results = append(res.Results, ev.Result)
			if opts.OnResult != nil {
				opts.OnResult(ev.Result)
			}
		case api.EventError:
			if res.Error == nil {
				e := ev.Error
				res.Error = &e
			}
			if opts.OnError != nil {
				opts.OnError(ev.Error)
			}
		case api.EventComplete:
			res.ExecutionCount, res.ContextID, res.ContextReset = ev.ExecutionCount, ev.ContextID, ev.ContextReset
			complete = true
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if !complete {
		return nil, fmt.Errorf("%s: %w", s.op, errRunIncomplete)
	}
	res.Success = res.Error == nil
	return res, nil
}
