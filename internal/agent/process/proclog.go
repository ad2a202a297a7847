package process

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"sort"
	"sync"

	"github.com/sandboxd/sandboxd/api"
)

// Log record streams.
const (
	streamStdout byte = 1
	streamStderr byte = 2
)

// streamNames are the streams' event names.
var streamNames = [...]string{streamStdout: api.EventStdout, streamStderr: api.EventStderr}

// recordHeader is a record's stream byte and its data length.
const recordHeader = 5

// indexEvery is how many records apart the log's offset index is.
const indexEvery = 1024

// procLog is a background process's output, kept on disk in the agent's
// run directory as framed records (stream, length, data) up to maxProcLog, so
// that memory stays flat however much a process prints. A record's end
// offset is its event id: a reader resumes exactly after any event.
type procLog struct {
	f *os.File

	mu        sync.Mutex
	size      int64         // bytes written; guarded by mu
	records   int64         // records written; guarded by mu
	index     []int64       // the end offset of every indexEvery-th record; guarded by mu
	truncated bool          // output was dropped at the cap; guarded by mu
	closed    bool          // no more records; guarded by mu
	changed   chan struct{} // closed at the next append or close; guarded by mu
}

func newProcLog(path string) (*procLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	_ = os.Remove(path) // kept open; gone from the tree (and from disk with the last reader)
	return &procLog{f: f, changed: make(chan struct{})}, nil
}

// append adds a record, unless that would pass the cap.
func (l *procLog) append(stream byte, p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(p) == 0 {
		return
	}
	if l.size+recordHeader+int64(len(p)) > maxProcLog {
		l.truncated = true
		return
	}
	h := [recordHeader]byte{stream}
	binary.BigEndian.PutUint32(h[1:], uint32(len(p)))
	_, err := l.f.WriteAt(h[:], l.size)
	if err == nil {
		_, err = l.f.WriteAt(p, l.size+recordHeader)
	}
	if err != nil {
		l.truncated = true
		return
	}
	l.size += recordHeader + int64(len(p))
	l.records++
	if l.records%indexEvery == 0 {
		l.index = append(l.index, l.size)
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// close marks the end of the output. It is called once.
func (l *procLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	close(l.changed)
}

// state returns the log's size, whether it is complete, and a channel
// closed at its next change.
func (l *procLog) state() (size int64, closed, truncated bool, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size, l.closed, l.truncated, l.changed
}

// record is one chunk of output; end is the offset just after it.
type record struct {
	stream byte
	data   []byte
	end    int64
}

// readFrom returns the records from offset up to limit (at most max data
// bytes in all, and at least one record if there is one).
func (l *procLog) readFrom(offset, limit int64, max int) ([]record, error) {
	var out []record
	total := 0
	for offset < limit {
		var h [recordHeader]byte
		if _, err := l.f.ReadAt(h[:], offset); err != nil {
			return out, err
		}
		n := int(binary.BigEndian.Uint32(h[1:]))
		if len(out) > 0 && total+n > max {
			break
		}
		data := make([]byte, n)
		if _, err := l.f.ReadAt(data, offset+recordHeader); err != nil && err != io.EOF {
			return out, err
		}
		offset += recordHeader + int64(n)
		out = append(out, record{stream: h[0], data: data, end: offset})
		total += n
	}
	return out, nil
}

// follow passes the records from offset on to fn, in order and as they
// come, until fn returns false (follow returns nil), the log is complete
// and fn had all of it (io.EOF), reading fails, or ctx ends (its error).
func (l *procLog) follow(ctx context.Context, offset int64, fn func(record) bool) error {
	for {
		size, closed, _, changed := l.state()
		if offset < size {
			recs, err := l.readFrom(offset, size, streamMaxBatch)
			if err != nil {
				return err
			}
			for _, rec := range recs {
				if !fn(rec) {
					return nil
				}
				offset = rec.end
			}
			continue
		}
		if closed {
			return io.EOF
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// validOffset reports whether offset is a record boundary (a former event
// id) of a log of size bytes.
func (l *procLog) validOffset(offset, size int64) bool {
	if offset == size {
		return true
	}
	// Scan from the nearest indexed record end at or before offset.
	l.mu.Lock()
	at := int64(0)
	if i := sort.Search(len(l.index), func(i int) bool { return l.index[i] > offset }); i > 0 {
		at = l.index[i-1]
	}
	l.mu.Unlock()
	for at < offset {
		var h [recordHeader]byte
		if _, err := l.f.ReadAt(h[:], at); err != nil {
			return false
		}
		at += recordHeader + int64(binary.BigEndian.Uint32(h[1:]))
	}
	return at == offset
}

func (l *procLog) release() { l.f.Close() }
