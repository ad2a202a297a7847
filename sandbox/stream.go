package sandbox

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"
	"sync/atomic"

	"github.com/sandboxd/sandboxd/api"
)

// Event is one event of an [ExecStream] or a [LogStream].
type Event struct {
	// Type is the event's name: api.EventStart, api.EventStdout,
	// api.EventStderr, then api.EventComplete (the end of an ExecStream) or
	// api.EventExit (the end of a LogStream). Events of types this SDK does
	// not know are passed on with only Type and ID set. An "error" event is
	// never an Event: it ends the stream with an [*Error].
	Type string
	// ID is the event's Server-Sent Events id: pass it to
	// [Sandbox.StreamProcessLogs] to resume a log stream after this event.
	ID string
	// Data holds the output of a stdout or stderr event, decoded: exactly
	// the bytes the command wrote, whatever encoding they travelled in.
	// The slice is the caller's to keep.
	Data []byte
	// Command, Pid and SessionID describe the command that started (start).
	Command   string
	Pid       int
	SessionID string
	// ExitCode is the command's or process's exit code (complete, exit).
	ExitCode int
	// DurationMs is how long the command ran, in milliseconds (complete).
	DurationMs int64
	// Status is the process's final status, such as api.ProcessCompleted or
	// api.ProcessKilled (exit).
	Status string
}

// stream reads the events of one Server-Sent Events response. It is the
// iterator both [ExecStream] and [LogStream] are made of: they embed it,
// so its methods are theirs.
//
// Next, Event and Err are for one goroutine; Close may be called from any
// goroutine, at any time, to end the stream.
type stream struct {
	body     io.ReadCloser
	sse      *sseReader
	terminal string // the event type that ends the stream, besides "error"
	op       string // prefixes errors: "exec sandbox demo"

	ev    Event
	err   error
	ended bool // the terminal event was returned
	done  bool // Next returns false from now on

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool // Close was called
}

func newStream(body io.ReadCloser, terminal, op string) stream {
	return stream{body: body, sse: newSSEReader(body), terminal: terminal, op: op}
}

// Next reads the next event, which Event then returns. It returns false
// once the stream has ended: after the terminal event (complete or exit)
// was returned, or on an error, which Err then reports, or after Close.
// Heartbeats are skipped. The stream is closed when Next returns false.
func (s *stream) Next() bool {
	if s.done {
		return false
	}
	if s.ended || s.closed.Load() {
		s.finish(nil)
		return false
	}
	raw, err := s.sse.next()
	if err != nil {
		s.finish(s.readError(err))
		return false
	}
	ev, err := decodeEvent(raw, s.terminal)
	if err != nil {
		s.finish(fmt.Errorf("%s: %w", s.op, err))
		return false
	}
	s.ev, s.ended = ev, ev.Type == s.terminal
	if s.ended {
		s.Close() // nothing may follow the terminal event
	}
	return true
}

// Event returns the event read by the last call to Next that returned true.
func (s *stream) Event() Event { return s.ev }

// Err returns the error that ended the stream, or nil if it ended with its
// terminal event, was closed by Close, or has not ended. A stream that ends
// without a terminal event gives an error wrapping io.ErrUnexpectedEOF; an
// "error" event gives an [*Error] with the event's code and message.
func (s *stream) Err() error { return s.err }

// Close ends the stream and frees its connection. It may be called more
// than once, and concurrently with Next, which then returns false. Closing
// a stream before its terminal event does not stop the command or process.
func (s *stream) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeErr = s.body.Close()
	})
	return s.closeErr
}

// Events returns the stream's events as an iterator for a range loop. An
// error ends the iteration: it is yielded once, with a zero Event, and Err
// reports it after the loop too. The stream is closed when the loop ends,
// also when the loop body breaks out of it.
//
//	for ev, err := range st.Events() {
//		if err != nil {
//			return err
//		}
//		...
//	}
func (s *stream) Events() iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		defer s.Close()
		for s.Next() {
			if !yield(s.ev, nil) {
				return
			}
		}
		if s.err != nil {
			yield(Event{}, s.err)
		}
	}
}

// finish ends the stream with err.
func (s *stream) finish(err error) {
	s.done, s.err = true, err
	s.Close()
}

// readError turns an error reading the stream into the stream's error: none
// if Close was called, an io.ErrUnexpectedEOF if the stream ended without
// its terminal event.
func (s *stream) readError(err error) error {
	switch {
	case s.closed.Load():
		return nil
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: stream ended before its %s event: %w", s.op, s.terminal, io.ErrUnexpectedEOF)
	default:
		return fmt.Errorf("%s: read stream: %w", s.op, err)
	}
}

// decodeEvent turns a raw event into an Event. An "error" event gives an
// *Error; a terminal event (complete or exit) without an exit code is
// malformed, since its exit code is the one thing it must report.
func decodeEvent(raw sseEvent, terminal string) (Event, error) {
	var w api.StreamEvent
	if raw.Data != "" {
		if err := json.Unmarshal([]byte(raw.Data), &w); err != nil {
			return Event{}, fmt.Errorf("decode %q event %q: %w", raw.Event, raw.ID, err)
		}
	}
	ev := Event{Type: cmp.Or(raw.Event, w.Type), ID: raw.ID}
	switch ev.Type {
	case api.EventStart:
		ev.Command, ev.Pid, ev.SessionID = w.Command, w.Pid, w.SessionID
	case api.EventStdout, api.EventStderr:
		b, err := api.Output(w.Data, w.Encoding)
		if err != nil {
			return Event{}, fmt.Errorf("decode %s event %q: %w", ev.Type, raw.ID, err)
		}
		ev.Data = b
	case terminal:
		if w.ExitCode == nil {
			return Event{}, fmt.Errorf("%s event %q has no exit code", ev.Type, raw.ID)
		}
		ev.ExitCode, ev.DurationMs, ev.Status = *w.ExitCode, w.DurationMs, w.Status
	case api.EventError:
		return Event{}, streamError(w)
	}
	return ev, nil
}

// streamError is the *Error an "error" event stands for. An exit code it
// carries (a SESSION_TERMINATED error) goes into Details, as in an error
// response.
func streamError(w api.StreamEvent) *Error {
	e := &Error{Code: cmp.Or(w.Code, api.CodeInternal), Message: cmp.Or(w.Message, "stream failed")}
	if w.ExitCode != nil {
		e.Details = map[string]any{"exitCode": *w.ExitCode}
	}
	return e
}
