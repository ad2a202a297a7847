package terminal

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"
)

// errDropped is what a cursor's next returns once append gave up on it.
var errDropped = errors.New("the viewer took no output for too long")

// Output gathering (see outLog).
const (
	bulkOutput   = 2 << 10
	gatherOutput = 128 << 10
	gatherWait   = 2 * time.Millisecond
)

// outLog is a terminal's output: the most recent bytes its PTY gave (a
// window of at most size bytes), addressed by absolute offset from the
// first byte, and the cursors of the connections that send it.
//
// One goroutine appends (the PTY's reader); each connection's writer holds
// a cursor, takes whatever lies between it and the published end (next),
// sends it, then moves the cursor (sent). Writers wait on a channel that
// each publication closes and replaces; output published while a writer
// was sending goes out together in its next message.
//
// Publication: a small append (typing and its echo) is published at once.
// The kernel hands a PTY's output to its reader at most 4 KiB at a time,
// so a program that prints fast makes thousands of appends a second; sent
// as they came, each would cost a WebSocket message, a wake-up and a write
// on every hop to the client. After a bulk append (bulkOutput bytes or
// more: more is likely on its way) the log publishes once gatherOutput
// bytes are pending, or gatherWait after the first of them, so a burst
// goes out in few large messages (BenchmarkTerminalOutputAgent counts
// them) on one timer per terminal.
//
// Flow control: append never overwrites bytes a live cursor has not sent.
// It waits instead (the PTY is not read meanwhile, so the shell's writes
// block: output goes at the pace of the slowest viewer); a cursor that
// makes no progress for stall while append waits on it is dropped, so a
// viewer gone quiet holds the others up for stall at most.
type outLog struct {
	size  int           // the window's bound
	stall time.Duration // how long append waits on cursors that do not move

	mu        sync.Mutex
	buf       []byte               // the window as a ring: offset o is at buf[o%len(buf)]; guarded by mu
	start     int64                // the oldest offset held; guarded by mu
	end       int64                // the offset after the newest byte; guarded by mu
	published int64                // writers send up to here; guarded by mu
	closed    bool                 // no more output; guarded by mu
	cursors   map[*cursor]struct{} // live cursors; guarded by mu
	changed   chan struct{}        // closed at the next publication, drop or close; guarded by mu
	moved     chan struct{}        // while append waits: closed when a cursor it waits on moves or leaves; guarded by mu
	gather    *time.Timer          // publishes gathered output; guarded by mu
	gathering bool                 // gather runs; guarded by mu
}

// cursor is one connection's place in an outLog.
type cursor struct {
	off     int64 // the next byte to send; guarded by the log's mu
	dropped bool  // append gave up on it; guarded by the log's mu
}

func newOutLog(size int, stall time.Duration) *outLog {
	return &outLog{size: size, stall: stall, cursors: map[*cursor]struct{}{}, changed: make(chan struct{})}
}

// append adds p at the end of the log and publishes or gathers it (see
// outLog). While there is no room for it without overwriting bytes a live
// cursor has not sent, it waits, and drops the cursors that make no
// progress for l.stall meanwhile.
func (l *outLog) append(p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	bulk := len(p) >= bulkOutput
	var stall <-chan time.Time // runs while append waits on the same cursors
	for len(p) > 0 {
		if room := l.roomLocked(); room > 0 {
			n := min(room, len(p))
			l.writeLocked(p[:n])
			p = p[n:]
			stall = nil
			continue
		}
		l.publishLocked() // what the cursors need to move on
		if stall == nil {
			stall = time.After(l.stall)
		}
		moved := make(chan struct{})
		l.moved = moved
		l.mu.Unlock()
		select {
		case <-moved:
			l.mu.Lock()
		case <-stall:
			stall = nil
			l.mu.Lock()
			l.dropBlockersLocked()
		}
		l.moved = nil
	}
	switch {
	case !bulk || l.end-l.published >= gatherOutput:
		l.publishLocked()
	case !l.gathering:
		l.gathering = true
		if l.gather == nil {
			l.gather = time.AfterFunc(gatherWait, func() {
				l.mu.Lock()
				defer l.mu.Unlock()
				l.publishLocked()
			})
		} else {
			l.gather.Reset(gatherWait)
		}
	}
}

// roomLocked is how many bytes can be appended without overwriting any
// live cursor's unsent bytes.
func (l *outLog) roomLocked() int {
	low := l.end
	for c := range l.cursors {
		low = min(low, c.off)
	}
	return l.size - int(l.end-low)
}

// blocksLocked tells whether c holds append up: it is a whole window behind.
func (l *outLog) blocksLocked(c *cursor) bool {
	return c.off <= l.end-int64(l.size)
}

// writeLocked adds p (at most l.size bytes) to the ring, growing the ring
// up to l.size while it has not wrapped.
func (l *outLog) writeLocked(p []byte) {
	if need := l.end + int64(len(p)); len(l.buf) < l.size && need > int64(len(l.buf)) {
		// Not wrapped yet (it grows before it wraps): offsets are indexes.
		buf := make([]byte, min(l.size, max(2*len(l.buf), int(need), 4<<10)))
		copy(buf, l.buf[:l.end])
		l.buf = buf
	}
	at := int(l.end % int64(len(l.buf)))
	n := copy(l.buf[at:], p)
	copy(l.buf, p[n:])
	l.end += int64(len(p))
	l.start = max(l.start, l.end-int64(len(l.buf)))
}

// publishLocked lets the writers send all the output appended so far.
func (l *outLog) publishLocked() {
	if l.gathering {
		l.gather.Stop()
		l.gathering = false
	}
	if l.published < l.end {
		l.published = l.end
		l.wakeLocked()
	}
}

// dropBlockersLocked gives up on the cursors that hold append up.
func (l *outLog) dropBlockersLocked() {
	for c := range l.cursors {
		if l.blocksLocked(c) {
			c.dropped = true
			delete(l.cursors, c)
		}
	}
	l.wakeLocked()
}

// wakeLocked wakes the writers waiting in next.
func (l *outLog) wakeLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// close marks the end of the output: a cursor's next returns io.EOF once
// it sent everything.
func (l *outLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		clear(l.cursors) // no append left to hold up
		l.publishLocked()
		l.wakeLocked()
	}
}

// join adds a cursor that starts replay bytes before the end (at the
// window's start if it holds fewer) and returns it with how many bytes it
// is behind.
func (l *outLog) join(replay int) (c *cursor, behind int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c = &cursor{off: max(l.start, l.end-int64(replay))}
	if !l.closed {
		l.cursors[c] = struct{}{}
	}
	return c, int(l.end - c.off)
}

// leave removes c: append no longer waits for it.
func (l *outLog) leave(c *cursor) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.cursors[c]; ok {
		l.movedLocked(c)
		delete(l.cursors, c)
	}
}

// movedLocked wakes append if it waits on c, which moved or leaves.
func (l *outLog) movedLocked(c *cursor) {
	if l.moved != nil && l.blocksLocked(c) {
		close(l.moved)
		l.moved = nil
	}
}

// next waits until there is published output past c, then returns up to
// limit bytes of it, in buf's storage if it is large enough. c does not
// move until sent. It returns io.EOF when the log is closed and c is at
// its end, errDropped when append gave up on c, or ctx's error.
func (l *outLog) next(ctx context.Context, c *cursor, buf []byte, limit int) ([]byte, error) {
	for {
		l.mu.Lock()
		if c.dropped {
			l.mu.Unlock()
			return nil, errDropped
		}
		if c.off < l.published {
			n := int(min(l.published-c.off, int64(limit)))
			buf = slices.Grow(buf[:0], n)[:n]
			k := copy(buf, l.buf[c.off%int64(len(l.buf)):])
			copy(buf[k:], l.buf)
			l.mu.Unlock()
			return buf, nil
		}
		if l.closed {
			l.mu.Unlock()
			return nil, io.EOF
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		}
	}
}

// sent moves c past n bytes that next returned and were sent.
func (l *outLog) sent(c *cursor, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.cursors[c]; ok {
		l.movedLocked(c)
	}
	c.off += int64(n)
}
