package sandbox

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"sync/atomic"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/outevent"
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

// stream reads the events of one Server-Sent Events response, decoded to
// E. [ExecStream], [LogStream], [CodeStream] and [WatchStream] embed one,
// so Next, Err and Close are theirs, and each types its Event and Events.
//
// Next, Event and Err are for one goroutine; Close may be called from any
// goroutine, at any time, to end the stream.
type stream[E any] struct {
	body io.ReadCloser
	sse  *sseReader
	// decode turns a raw event into the stream's event. skip drops it
	// (an event the caller need not see); end says it ends the stream.
	decode   func(sseEvent) (ev E, skip, end bool, err error)
	terminal string // names the event that ends the stream, for errors; "" if none does
	op       string // prefixes errors: "exec sandbox demo"
	// quietEnd, if set, reports whether a stream that breaks off ended as
	// expected (a watch whose context ended), so Err reports nothing.
	quietEnd func() bool
	pending  *sseEvent // an event read ahead, returned by the next Next

	ev     E
	err    error
	done   bool        // Next returns false from now on
	closed atomic.Bool // Close was called
}

// openStream sends a request for a Server-Sent Events stream to the
// sandbox's path followed by suffix and returns the response's body,
// checked to be one. It is never retried: a stream that started has had
// effects. header adds to the request's headers (such as Last-Event-ID).
func (t *target) openStream(ctx context.Context, method, suffix string, query url.Values, header http.Header, in any) (io.ReadCloser, error) {
	p, err := t.path(suffix)
	if err != nil {
		return nil, err
	}
	h := http.Header{"Accept": {"text/event-stream"}}
	maps.Copy(h, header)
	resp, err := t.c.send(ctx, method, p, query, h, in)
	if err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); !isEventStream(ct) {
		resp.Body.Close()
		return nil, fmt.Errorf("want an event stream, got Content-Type %q", ct)
	}
	return resp.Body, nil
}

// newEventStream returns a stream of exec or log events that ends with the
// event named terminal.
func newEventStream(body io.ReadCloser, op, terminal string) stream[Event] {
	return stream[Event]{body: body, sse: newSSEReader(body), terminal: terminal, op: op,
		decode: func(raw sseEvent) (Event, bool, bool, error) {
			ev, err := decodeEvent(raw, terminal)
			return ev, false, err == nil && ev.Type == terminal, err
		}}
}

// Next reads the next event, which Event then returns. It returns false
// once the stream has ended: after the terminal event (complete or exit)
// was returned, or on an error, which Err then reports, or after Close.
// Heartbeats are skipped. The stream is closed when Next returns false.
func (s *stream[E]) Next() bool {
	for !s.done {
		if s.closed.Load() {
			s.finish(nil)
			break
		}
		raw, err := s.read()
		if err != nil {
			s.finish(s.readError(err))
			break
		}
		ev, skip, end, err := s.decode(raw)
		if err != nil {
			s.finish(fmt.Errorf("%s: %w", s.op, err))
			break
		}
		if !skip {
			s.ev = ev
			if end {
				s.finish(nil) // nothing may follow the terminal event
			}
			return true
		}
	}
	return false
}

// read returns the event read ahead, if any, else the next one.
func (s *stream[E]) read() (sseEvent, error) {
	if raw := s.pending; raw != nil {
		s.pending = nil
		return *raw, nil
	}
	return s.sse.next()
}

// Err returns the error that ended the stream, or nil if it ended with its
// terminal event, was closed by Close, or has not ended. A stream that ends
// without a terminal event gives an error wrapping io.ErrUnexpectedEOF; an
// "error" event gives an [*Error] with the event's code and message.
func (s *stream[E]) Err() error { return s.err }

// Close ends the stream and frees its connection. It may be called more
// than once, and concurrently with Next, which then returns false. Closing
// a stream before its terminal event does not stop the command or process.
func (s *stream[E]) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		return s.body.Close()
	}
	return nil
}

// events returns the stream's events as an iterator for a range loop, as
// the Events methods of the stream types document.
func (s *stream[E]) events() iter.Seq2[E, error] {
	return func(yield func(E, error) bool) {
		defer s.Close()
		for s.Next() {
			if !yield(s.ev, nil) {
				return
			}
		}
		if s.err != nil {
			var zero E
			yield(zero, s.err)
		}
	}
}

// finish ends the stream with err.
func (s *stream[E]) finish(err error) {
	s.done, s.err = true, err
	s.Close()
}

// readError turns an error reading the stream into the stream's error: none
// if Close was called or the end was expected (quietEnd), an
// io.ErrUnexpectedEOF if the stream ended without its terminal event.
func (s *stream[E]) readError(err error) error {
	eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	switch {
	case s.closed.Load() || (s.quietEnd != nil && s.quietEnd()):
		return nil
	case eof && s.terminal == "":
		return fmt.Errorf("%s: stream ended by the daemon: %w", s.op, io.ErrUnexpectedEOF)
	case eof:
		return fmt.Errorf("%s: stream ended before its %s event: %w", s.op, s.terminal, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("%s: read stream: %w", s.op, err)
}

// decodeEvent turns a raw event into an Event. An "error" event gives an
// *Error; a terminal event (complete or exit) without an exit code is
// malformed, since its exit code is the one thing it must report.
func decodeEvent(raw sseEvent, terminal string) (Event, error) {
	if raw.Event == api.EventStdout || raw.Event == api.EventStderr {
		if data, ok := outevent.Decode(raw.Data, raw.Event); ok {
			return Event{Type: raw.Event, ID: raw.ID, Data: data}, nil
		}
	}
	var w api.StreamEvent
	if len(raw.Data) > 0 {
		if err := json.Unmarshal(raw.Data, &w); err != nil {
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

// The stream types' own Event and Events, typed by their events (the
// methods of an embedded generic type are documented untyped).

// Event returns the event read by the last call to Next that returned true.
func (s *ExecStream) Event() Event { return s.ev }

// Events returns the stream's events as an iterator for a range loop. An
// error ends the iteration: it is yielded once, with a zero event, and Err
// reports it after the loop too. The stream is closed when the loop ends,
// also when the loop body breaks out of it.
//
//	for ev, err := range st.Events() {
//		if err != nil {
//			return err
//		}
//		...
//	}
func (s *ExecStream) Events() iter.Seq2[Event, error] { return s.events() }

// Event returns the event read by the last call to Next that returned true.
func (s *LogStream) Event() Event { return s.ev }

// Events returns the stream's events as an iterator for a range loop, as
// [ExecStream.Events] does.
func (s *LogStream) Events() iter.Seq2[Event, error] { return s.events() }

// Event returns the change read by the last call to Next that returned
// true.
func (s *WatchStream) Event() api.WatchEvent { return s.ev }

// Events returns the stream's changes as an iterator for a range loop, as
// [ExecStream.Events] does. The loop runs until the watch is closed (by
// breaking out of it, say), its context ends, or it fails.
func (s *WatchStream) Events() iter.Seq2[api.WatchEvent, error] { return s.events() }

// Event returns the event read by the last call to Next that returned true.
func (s *CodeStream) Event() CodeEvent { return s.ev }

// Events returns the stream's events as an iterator for a range loop, as
// [ExecStream.Events] does.
func (s *CodeStream) Events() iter.Seq2[CodeEvent, error] { return s.events() }
