package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/sandboxd/sandboxd/api"
)

// Event names of a file watch stream.
const (
	watchingEvent = "watching" // the watch is in place
	changeEvent   = "event"    // a change, its data an api.WatchEvent
)

// WatchOptions adjust [Sandbox.Watch]. The zero value watches the entries
// of one directory, or one file.
type WatchOptions struct {
	// Recursive watches the whole tree under the directory, including
	// directories created in it later.
	Recursive bool
	// Include, if not empty, keeps only changes to paths matching one of
	// these glob patterns (as the daemon matches them, such as "*.go").
	Include []string
	// Exclude drops changes to paths matching one of these glob patterns
	// (such as "node_modules" or "*.tmp"). Without it, the daemon leaves
	// out .git, node_modules and .DS_Store (and what is under them),
	// unless NoDefaultExcludes.
	Exclude []string
	// NoDefaultExcludes reports changes under .git, node_modules and
	// .DS_Store too when Exclude is empty.
	NoDefaultExcludes bool
}

// WatchStream is a live feed of changes to files in a sandbox, from
// [Sandbox.Watch]. Each api.WatchEvent has an EventType of "create",
// "modify", "delete" or "move" (with OldPath set), or "overflow": the
// daemon dropped changes it could not keep up with, and the caller should
// look at the files afresh. Read it with Next and Event, or with a range
// loop over Events.
//
// A watch has no terminal event: it lasts until it is closed or the
// context it was opened with ends, and neither is an error (Err returns
// nil). The daemon ending it is: Err then wraps io.ErrUnexpectedEOF. Close
// it when done, to free its connection and the daemon's watch.
type WatchStream struct {
	stream[api.WatchEvent]
}

// Watch watches path in the sandbox (a directory, or a file) for changes
// and returns their stream once the daemon has the watch in place: every
// change made after Watch returns is reported. It returns ErrFileNotFound
// if path does not exist. Opening the watch is retried while the sandbox
// is unavailable; the stream is not resumed if it breaks off. opts may be
// nil.
func (t *target) Watch(ctx context.Context, path string, opts *WatchOptions) (*WatchStream, error) {
	op := fmt.Sprintf("watch %s in %s", path, t.describe())
	q := url.Values{"path": {path}}
	if opts != nil {
		if opts.Recursive {
			q.Set("recursive", "true")
		}
		q["include"], q["exclude"] = opts.Include, opts.Exclude
		if opts.NoDefaultExcludes {
			q.Set("defaultExcludes", "false")
		}
	}
	var body io.ReadCloser
	err := retryUnavailable(ctx, func() (err error) {
		body, err = t.openStream(ctx, http.MethodGet, "/files/watch", q, t.sessionHeader(), nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	st := &WatchStream{stream[api.WatchEvent]{body: body, sse: newSSEReader(body), decode: decodeWatchEvent, op: op,
		// The stream lives no longer than the request ctx belongs to: its
		// end, like Close, ends the watch quietly.
		quietEnd: func() bool { return ctx.Err() != nil },
	}}
	// Wait for the watch to be in place. An event before it (from a
	// daemon that does not announce its watches) is kept for Next.
	raw, err := st.sse.next()
	switch {
	case err != nil && ctx.Err() != nil:
		err = ctx.Err()
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("stream ended before its %s event: %w", watchingEvent, io.ErrUnexpectedEOF)
	case err != nil:
		err = fmt.Errorf("read stream: %w", err)
	case rawType(raw) == api.EventError:
		_, _, _, err = decodeWatchEvent(raw)
	case rawType(raw) != watchingEvent:
		raw.Data = bytes.Clone(raw.Data) // kept past the reader's next call
		st.pending = &raw
	}
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return st, nil
}

// decodeWatchEvent decodes one event of a watch stream: a change, or an
// "error" event as an *Error. Events of other types are skipped.
func decodeWatchEvent(raw sseEvent) (ev api.WatchEvent, skip, end bool, err error) {
	switch rawType(raw) {
	case changeEvent:
		if err := json.Unmarshal(raw.Data, &ev); err != nil {
			return ev, false, false, fmt.Errorf("decode %q event %q: %w", changeEvent, raw.ID, err)
		}
		ev.Type = changeEvent
		return ev, false, false, nil
	case api.EventError:
		var w api.StreamEvent
		if err := json.Unmarshal(raw.Data, &w); err != nil {
			return ev, false, false, fmt.Errorf("decode %q event %q: %w", api.EventError, raw.ID, err)
		}
		return ev, false, false, streamError(w)
	}
	return ev, true, false, nil
}

// rawType returns the type of an event: its event field, else the "type"
// field of its JSON data.
func rawType(raw sseEvent) string {
	if raw.Event != "" {
		return raw.Event
	}
	var w struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(raw.Data, &w)
	return w.Type
}

// Close ends the watch, on the daemon's side too, and frees its
// connection. It may be called more than once, and concurrently with Next,
// which then returns false; Err stays nil.
func (s *WatchStream) Close() error { return s.stream.Close() }
