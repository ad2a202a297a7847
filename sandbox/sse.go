package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
)

// maxSSEEvent bounds one line, and the data of one event, of an event
// stream. The daemon sends output in events far smaller than this.
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
	// Data is the values of the event's data fields joined with "\n". It
	// is valid until the reader's next call to next.
	Data []byte
}

// sseReader parses a Server-Sent Events stream the way the HTML standard's
// EventSource does: lines end in CRLF, LF or CR; a leading byte order mark
// is dropped; lines starting with ':' are comments (heartbeats); an empty
// line dispatches the event built from the fields before it, if it had at
// least one data field; id, event and data fields are kept and others
// ignored; one space after the field's colon is dropped.
type sseReader struct {
	sc      *bufio.Scanner
	lastID  string
	data    []byte // the data of the event being read; reused
	scanned int    // bytes at the start of the scanner's data known to hold no line end
	afterCR bool   // the last line ended in "\r": a "\n" right after it ends the same line
	started bool   // a leading byte order mark has been looked for
}

func newSSEReader(r io.Reader) *sseReader {
	p := &sseReader{sc: bufio.NewScanner(r)}
	p.sc.Buffer(make([]byte, 64<<10), maxSSEEvent)
	p.sc.Split(p.splitLine)
	return p
}

// splitLine is the scanner's bufio.SplitFunc: it returns lines without
// their line ends. A CR ends a line at once, without waiting for the byte
// after it; if that is a LF, it is skipped with the next line.
func (p *sseReader) splitLine(data []byte, atEOF bool) (int, []byte, error) {
	skip := 0
	if p.afterCR && len(data) > 0 && data[0] == '\n' {
		skip = 1
	}
	// IndexByte twice beats IndexAny: both are vectorized.
	from := max(p.scanned, skip)
	i := bytes.IndexByte(data[from:], '\n')
	if i < 0 {
		i = len(data) - from
	}
	if j := bytes.IndexByte(data[from:from+i], '\r'); j >= 0 {
		i = j
	}
	if end := from + i; end < len(data) {
		p.scanned, p.afterCR = 0, data[end] == '\r'
		return end + 1, data[skip:end], nil
	}
	if atEOF && len(data) > skip {
		return 0, nil, io.ErrUnexpectedEOF // an unterminated line
	}
	p.scanned = len(data)
	return 0, nil, nil
}

// next returns the stream's next event. It returns io.EOF at the end of
// the stream, io.ErrUnexpectedEOF if the stream ended inside an event (which
// is dropped, as EventSource does), and errSSETooLong or the underlying
// reader's error otherwise. The event's Data is valid until the next call.
func (p *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	hasData, pending := false, false // pending: a field was read since the last dispatch
	p.data = p.data[:0]
	for p.sc.Scan() {
		line := p.sc.Bytes()
		if !p.started {
			line, p.started = bytes.TrimPrefix(line, []byte("\uFEFF")), true
		}
		if len(line) == 0 {
			if hasData {
				ev.ID, ev.Data = p.lastID, p.data
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
				p.data = append(p.data, '\n')
			}
			if len(p.data)+len(value) > maxSSEEvent {
				return sseEvent{}, errSSETooLong
			}
			p.data, hasData = append(p.data, value...), true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				p.lastID = string(value)
			}
		}
	}
	switch err := p.sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		return sseEvent{}, errSSETooLong
	case err != nil:
		return sseEvent{}, err
	case pending:
		return sseEvent{}, io.ErrUnexpectedEOF
	}
	return sseEvent{}, io.EOF
}

// isEventStream reports whether a Content-Type is text/event-stream.
func isEventStream(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "text/event-stream"
}
