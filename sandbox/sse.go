package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
)

// maxSSEEvent bounds one line, and the data of one event, of an event
// stream. The daemon sends output in chunks far smaller than this; a
// longer line means the stream is not what it should be.
const maxSSEEvent = 16 << 20

// errSSETooLong reports a line or an event longer than maxSSEEvent.
var errSSETooLong = errors.New("event stream: event too long")

// sseEvent is one event of a Server-Sent Events stream.
type sseEvent struct {
	// ID is the stream's last event ID when the event was dispatched: the
	// value of the latest id field, which carries over to later events.
	ID string
	// Event is the value of the event field, or "" if it had none.
	Event string
	// Data is the values of the event's data fields joined with "\n".
	Data string
}

// sseReader parses a Server-Sent Events stream the way the HTML standard's
// EventSource does: lines end in CRLF, LF or CR; lines starting with ':'
// are comments (heartbeats); an empty line dispatches the event built from
// the fields before it, if it had at least one data field; id, event and
// data fields are kept and others ignored; one space after the field's colon
// is dropped.
type sseReader struct {
	r      *bufio.Reader
	lastID string
	line   []byte // the line being read, reused
	// afterCR is set when the last line ended in "\r": a "\n" right after
	// it ends the same line, not another.
	afterCR bool
	// started is set once a leading byte order mark has been looked for.
	started bool
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 256<<10)}
}

// next returns the stream's next event. It returns io.EOF at the end of
// the stream, io.ErrUnexpectedEOF if the stream ended inside an event (which
// is dropped, as EventSource does), and errSSETooLong or the underlying
// reader's error otherwise.
func (p *sseReader) next() (sseEvent, error) {
	var (
		ev      sseEvent
		data    []byte
		hasData bool
		pending bool // a field was read since the last dispatch
	)
	for {
		line, err := p.readLine()
		if err == io.EOF && (pending || len(line) > 0) {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return sseEvent{}, err
		}
		if len(line) == 0 {
			if hasData {
				ev.ID, ev.Data = p.lastID, string(data)
				return ev, nil
			}
			ev, pending = sseEvent{}, false
			continue
		}
		if line[0] == ':' {
			continue
		}
		pending = true
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(name) {
		case "event":
			ev.Event = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			if len(data)+len(value) > maxSSEEvent {
				return sseEvent{}, errSSETooLong
			}
			data, hasData = append(data, value...), true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.lastID = string(value)
			}
		}
	}
}

// readLine returns the next line without its line end. At the end of the
// stream it returns io.EOF with what was read of an unterminated line. The
// line is valid until the next call.
func (p *sseReader) readLine() ([]byte, error) {
	p.line = p.line[:0]
	if !p.started {
		p.started = true
		if b, err := p.r.Peek(1); err == nil && b[0] == 0xEF {
			if b, err := p.r.Peek(3); err == nil && string(b) == "\uFEFF" {
				_, _ = p.r.Discard(3)
			}
		}
	}
	if p.afterCR {
		p.afterCR = false
		if b, err := p.r.Peek(1); err == nil && b[0] == '\n' {
			_, _ = p.r.Discard(1)
		}
	}
	for {
		if _, err := p.r.Peek(1); err != nil {
			return p.line, err
		}
		buf, _ := p.r.Peek(p.r.Buffered())
		// IndexByte twice beats IndexAny: both are vectorized.
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			i = len(buf)
		}
		if j := bytes.IndexByte(buf[:i], '\r'); j >= 0 {
			i = j
		}
		if len(p.line)+i > maxSSEEvent {
			return nil, errSSETooLong
		}
		p.line = append(p.line, buf[:i]...)
		if i == len(buf) {
			_, _ = p.r.Discard(i)
			continue
		}
		p.afterCR = buf[i] == '\r'
		_, _ = p.r.Discard(i + 1)
		return p.line, nil
	}
}

// isEventStream reports whether a Content-Type is text/event-stream.
func isEventStream(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "text/event-stream"
}
