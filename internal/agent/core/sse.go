package core

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/outevent"
)

// heartbeat is how often an idle stream sends a comment line.
const heartbeat = 15 * time.Second

// SSE writes Server-Sent Events: each event with its name, an id and
// JSON data, flushed at once. It is safe for concurrent use.
type SSE struct {
	mu     sync.Mutex
	w      http.ResponseWriter
	rc     *http.ResponseController
	seq    int64
	err    error             // first write error; later writes are dropped
	tail   map[string][]byte // per output stream: an incomplete UTF-8 sequence held back
	buf    []byte            // reused to build output events
	ping   *time.Timer       // the next heartbeat
	closed bool              // no more heartbeats
}

// NewSSE starts an event stream on w with a heartbeat; call Close to stop
// the heartbeat.
func NewSSE(w http.ResponseWriter) *SSE {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &SSE{w: w, rc: http.NewResponseController(w), tail: map[string][]byte{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.rc.Flush()
	s.ping = time.AfterFunc(heartbeat, s.heartbeat)
	return s
}

func (s *SSE) heartbeat() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.writeLocked([]byte(": ping\n\n"))
		s.ping.Reset(heartbeat)
	}
}

// Close stops the heartbeat: once it returns, no heartbeat writes to the
// stream.
func (s *SSE) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.ping.Stop()
}

// writeTimeout bounds one write to a client: one that stops reading gets
// its stream cut, rather than holding the command (and its session) up.
const writeTimeout = 30 * time.Second

func (s *SSE) writeLocked(b []byte) {
	if s.err != nil {
		return
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, s.err = s.w.Write(b); s.err == nil {
		s.err = s.rc.Flush()
	}
}

// Send writes one event with the next sequence number as its id.
func (s *SSE) Send(ev api.StreamEvent) error { return s.SendEvents(ev.Type, ev) }

// SendEvents writes one event named name per value, as JSON, with the
// next sequence numbers as ids, flushing once per 64 KiB rather than per
// event.
func (s *SSE) SendEvents(name string, vs ...any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []byte
	for i, v := range vs {
		s.seq++
		b = appendEvent(b, name, s.seq, marshalNoEscape(v))
		if len(b) >= 64<<10 || i == len(vs)-1 {
			s.writeLocked(b)
			b = b[:0]
		}
	}
	return s.err
}

// appendEvent appends one event with its name, id and data to b.
func appendEvent(b []byte, name string, id int64, data []byte) []byte {
	return append(append(appendHead(b, name, id), data...), "\n\n"...)
}

// appendHead appends the lines of an event up to its data's start.
func appendHead(b []byte, name string, id int64) []byte {
	b = append(b, "event: "...)
	b = append(b, name...)
	b = append(b, "\nid: "...)
	b = strconv.AppendInt(b, id, 10)
	return append(b, "\ndata: "...)
}

// SendChunkID writes an output chunk as one event with the given id (a log
// offset), whole: unlike Output, it holds nothing back.
func (s *SSE) SendChunkID(stream string, b []byte, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chunkLocked(stream, b, id)
}

func (s *SSE) chunkLocked(stream string, b []byte, id int64) error {
	s.buf = appendChunkEvent(s.buf[:0], stream, b, id)
	s.writeLocked(s.buf)
	return s.err
}

// SendID writes one event with the given id (a log offset).
func (s *SSE) SendID(ev api.StreamEvent, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeLocked(appendEvent(nil, ev.Type, id, marshalNoEscape(ev)))
	return s.err
}

// Output sends a chunk of a stream ("stdout" or "stderr"). An incomplete
// UTF-8 sequence at its end is held back for the next chunk, so that text
// split mid-character still travels as text; a chunk that is not UTF-8
// even so is sent base64-encoded. Call flushOutput at the end.
func (s *SSE) Output(stream string, p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := p
	if t := s.tail[stream]; len(t) > 0 {
		b = append(t, p...)
		s.tail[stream] = nil
	}
	if cut := IncompleteTail(b); cut > 0 {
		s.tail[stream] = append([]byte(nil), b[len(b)-cut:]...)
		b = b[:len(b)-cut]
	}
	if len(b) == 0 {
		return s.err
	}
	s.seq++
	return s.chunkLocked(stream, b, s.seq)
}

// FlushOutput sends what Output held back.
func (s *SSE) FlushOutput() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, stream := range []string{api.EventStdout, api.EventStderr} {
		if t := s.tail[stream]; len(t) > 0 {
			s.seq++
			_ = s.chunkLocked(stream, t, s.seq)
			s.tail[stream] = nil
		}
	}
}

// appendChunkEvent appends the whole SSE event of an output chunk to dst:
// its data as outevent.Append writes it (text or base64, whichever fits
// the chunk), straight into dst.
func appendChunkEvent(dst []byte, stream string, b []byte, id int64) []byte {
	return append(outevent.Append(appendHead(dst, stream, id), stream, b), "\n\n"...)
}

// IncompleteTail returns how many bytes at the end of b begin a UTF-8
// sequence that the next bytes may complete (0 to 3).
func IncompleteTail(b []byte) int {
	for n := 1; n <= 3 && n <= len(b); n++ {
		if c := b[len(b)-n]; utf8.RuneStart(c) { // else a continuation byte: look further back
			if c >= utf8.RuneSelf && !utf8.FullRune(b[len(b)-n:]) {
				return n
			}
			return 0
		}
	}
	return 0
}

// marshalNoEscape encodes v as JSON without HTML escaping (<, >, & as
// themselves, not six-byte escapes) and without the trailing newline.
func marshalNoEscape(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
