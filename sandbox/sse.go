package sandbox

import (
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
	// Data is the values of the event's data fields joined with "\n". It
	// is valid until the reader's next call to next (it may lie in the
	// reader's buffer): a caller that keeps it copies it.
	Data []byte
}

// sseReader parses a Server-Sent Events stream the way the HTML standard's
// EventSource does: lines end in CRLF, LF or CR; lines starting with ':'
// are comments (heartbeats); an empty line dispatches the event built from
// the fields before it, if it had at least one data field; id, event and
// data fields are kept and others ignored; one space after the field's colon
// is dropped.
//
// Output streams are the bulk of what it reads, in events of up to a few
// MiB, so it reads straight from the response body into a buffer of its
// own that grows to hold whole events, and hands out an event's data where
// it lies in that buffer: the parser copies no output, the decoder of an
// output event copies it once.
type sseReader struct {
	r   io.Reader
	buf []byte
	// The bytes read and not yet parsed are buf[off:end]. The next read
	// may move or overwrite the bytes before mark; from mark on they are
	// kept (the data of the event being parsed).
	off, end, mark int
	// scanned is how many bytes after off are known to hold no line end.
	scanned int
	// err is the reader's error, reported once the bytes read before it
	// have been parsed.
	err error
	// lineStart is where the line readLine returned last starts in buf.
	lineStart int
	lastID    string
	// The data of the event being parsed: the value of a single data
	// field is buf[dataOff:dataOff+dataLen] (if dataView); the values of
	// several are joined in data.
	dataOff, dataLen int
	dataView         bool
	data             []byte
	// afterCR is set when the last line ended in "\r": a "\n" right after
	// it ends the same line, not another.
	afterCR bool
	// started is set once a leading byte order mark has been looked for.
	started bool
}

// sseMinBuffer is the size of the reader's first buffer. It grows to
// twice the biggest event it has had to hold, so that reads stay big.
const sseMinBuffer = 64 << 10

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: r}
}

// next returns the stream's next event. It returns io.EOF at the end of
// the stream, io.ErrUnexpectedEOF if the stream ended inside an event (which
// is dropped, as EventSource does), and errSSETooLong or the underlying
// reader's error otherwise. The event's Data is valid until the next call.
func (p *sseReader) next() (sseEvent, error) {
	var (
		ev      sseEvent
		hasData bool
		pending bool // a field was read since the last dispatch
	)
	p.dropData()
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
				ev.ID, ev.Data = p.lastID, p.data
				if p.dataView {
					end := p.dataOff + p.dataLen
					ev.Data = p.buf[p.dataOff:end:end]
				}
				return ev, nil
			}
			ev, pending = sseEvent{}, false
			p.dropData()
			continue
		}
		if line[0] == ':' {
			p.release()
			continue
		}
		pending = true
		name, value, _ := bytes.Cut(line, []byte(":"))
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(name) {
		case "event":
			ev.Event = eventName(value)
		case "data":
			if !hasData {
				// The common case, one data field: its value stays
				// where it lies.
				p.dataOff, p.dataLen, p.dataView = p.lineStart+len(line)-len(value), len(value), true
				p.mark = p.dataOff
				hasData = true
				continue
			}
			if p.dataView {
				p.data = append(p.data[:0], p.buf[p.dataOff:p.dataOff+p.dataLen]...)
				p.dataView = false
			}
			if len(p.data)+1+len(value) > maxSSEEvent {
				return sseEvent{}, errSSETooLong
			}
			p.data = append(append(p.data, '\n'), value...)
		case "id":
			if bytes.IndexByte(value, 0) < 0 && string(value) != p.lastID {
				p.lastID = string(value)
			}
		}
		p.release()
	}
}

// dropData forgets the data of the event being parsed.
func (p *sseReader) dropData() {
	p.dataView, p.data = false, p.data[:0]
	p.mark = p.off
}

// release lets the next read reuse the bytes parsed so far, unless they
// hold the data of the event being parsed.
func (p *sseReader) release() {
	if !p.dataView {
		p.mark = p.off
	}
}

// eventName returns the value of an event field as a string, without
// allocating for the names the daemon sends.
func eventName(b []byte) string {
	switch string(b) {
	case "stdout":
		return "stdout"
	case "stderr":
		return "stderr"
	case "start":
		return "start"
	case "complete":
		return "complete"
	case "exit":
		return "exit"
	case "error":
		return "error"
	}
	return string(b)
}

// readLine returns the next line without its line end. At the end of the
// stream it returns io.EOF with what was read of an unterminated line. The
// line lies in p.buf, from p.lineStart; it is valid until the next call.
func (p *sseReader) readLine() ([]byte, error) {
	if !p.started {
		for p.end == p.off && p.err == nil {
			p.fill()
		}
		if p.off < p.end && p.buf[p.off] == 0xEF { // a byte order mark?
			for p.end-p.off < 3 && p.err == nil {
				p.fill()
			}
			if bytes.HasPrefix(p.buf[p.off:p.end], []byte("\uFEFF")) {
				p.off += 3
				p.release()
			}
		}
		p.started = true
	}
	for {
		if p.afterCR && p.off < p.end {
			p.afterCR = false
			if p.buf[p.off] == '\n' {
				p.off++
				p.release()
			}
		}
		buf := p.buf[p.off+p.scanned : p.end]
		// IndexByte twice beats IndexAny: both are vectorized.
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			i = len(buf)
		}
		if j := bytes.IndexByte(buf[:i], '\r'); j >= 0 {
			i = j
		}
		if i < len(buf) {
			if p.scanned+i > maxSSEEvent {
				return nil, errSSETooLong
			}
			p.lineStart = p.off
			line := p.buf[p.off : p.off+p.scanned+i]
			p.afterCR = buf[i] == '\r'
			p.off += p.scanned + i + 1
			p.scanned = 0
			return line, nil
		}
		p.scanned += len(buf)
		if p.scanned > maxSSEEvent {
			return nil, errSSETooLong
		}
		if p.err != nil {
			p.lineStart = p.off
			line := p.buf[p.off:p.end]
			p.off, p.scanned = p.end, 0
			return line, p.err
		}
		p.fill()
	}
}

// fill reads more of the stream into p.buf, making room first: bytes
// before p.mark are dropped, and the buffer grows if what is kept would
// fill more than half of it. A read error is kept in p.err.
func (p *sseReader) fill() {
	if p.err != nil {
		return
	}
	if free := len(p.buf) - p.end; free == 0 || free < len(p.buf)/2 {
		keep := p.buf[p.mark:p.end]
		buf := p.buf
		if len(keep) > len(p.buf)/2 || len(p.buf) == 0 {
			buf = make([]byte, max(2*len(p.buf), sseMinBuffer))
		}
		copy(buf, keep)
		p.buf = buf
		p.off -= p.mark
		p.dataOff -= p.mark
		p.end = len(keep)
		p.mark = 0
	}
	for range 100 {
		n, err := p.r.Read(p.buf[p.end:])
		p.end += n
		if err != nil {
			p.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	p.err = io.ErrNoProgress
}

// isEventStream reports whether a Content-Type is text/event-stream.
func isEventStream(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "text/event-stream"
}
