package terminal

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"

	"github.com/sandboxd/sandboxd/api"
)

// held returns the bytes l holds, read through a cursor that joins at the
// window's start.
func held(t *testing.T, l *outLog) []byte {
	t.Helper()
	c, behind := l.join(l.size)
	defer l.leave(c)
	if behind == 0 {
		return nil
	}
	data, err := l.next(context.Background(), c, nil, l.size)
	if err != nil || len(data) != behind {
		t.Fatalf("next: %d bytes, %v; want %d", len(data), err, behind)
	}
	return data
}

func TestOutLogWindow(t *testing.T) {
	l := newOutLog(8, time.Second)
	var all []byte
	for i, w := range []string{"", "abc", "defgh", "i", "jklmnopqrstu", "vw", "xyz0123456789AB"} {
		l.append([]byte(w))
		all = append(all, w...)
		want := all
		if len(want) > 8 {
			want = want[len(want)-8:]
		}
		if got := held(t, l); !bytes.Equal(got, want) {
			t.Fatalf("after write %d (%q): holds %q, want %q", i, w, got, want)
		}
	}
	// next returns a copy: the log's later writes do not change it.
	got := held(t, l)
	l.append([]byte("zzzzzzzz"))
	if string(got) == "zzzzzzzz" {
		t.Fatal("next shares the log's memory")
	}
}

func TestOutLogByteAtATime(t *testing.T) {
	l := newOutLog(5, time.Second)
	var all []byte
	for i := 0; i < 23; i++ {
		b := byte('a' + i)
		l.append([]byte{b})
		all = append(all, b)
		want := all[max(0, len(all)-5):]
		if got := held(t, l); !bytes.Equal(got, want) {
			t.Fatalf("after %d bytes: %q, want %q", i+1, got, want)
		}
	}
}

// TestOutLogJoin: a cursor starts replay bytes before the end, or at the
// window's start, and then reads every later byte once, however the reads
// fall on the ring's wrap.
func TestOutLogJoin(t *testing.T) {
	l := newOutLog(100, time.Second)
	c, behind := l.join(30)
	if c.off != 0 || behind != 0 {
		t.Fatalf("join of an empty log: at %d, %d behind", c.off, behind)
	}
	l.leave(c)
	var all []byte
	for i := range 40 { // 150 bytes
		p := fmt.Appendf(nil, "<%d>", i)
		l.append(p)
		all = append(all, p...)
	}
	c, behind = l.join(30)
	if behind != 30 || c.off != int64(len(all)-30) {
		t.Fatalf("join: at %d, %d behind; want %d, 30", c.off, behind, len(all)-30)
	}
	d, behind := l.join(1000) // more than the window holds: its start
	if behind != 100 || d.off != int64(len(all)-100) {
		t.Fatalf("join past the window: at %d, %d behind; want %d, 100", d.off, behind, len(all)-100)
	}
	l.leave(d)
	want := all[len(all)-30:]
	var got []byte
	for i := range 40 {
		p := fmt.Appendf(nil, "[%d]", i)
		l.append(p)
		want = append(want, p...)
		for j := range 2 { // read a few bytes at a time, in two goes
			l.mu.Lock()
			caughtUp := c.off == l.end
			l.mu.Unlock()
			if caughtUp {
				break
			}
			data, err := l.next(context.Background(), c, nil, 3+j*2)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, data...)
			l.sent(c, len(data))
		}
	}
	l.close()
	for {
		data, err := l.next(context.Background(), c, nil, 7)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, data...)
		l.sent(c, len(data))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the cursor read\n%q\nwant\n%q", got, want)
	}
}

// fakeConn records what a viewer's writer sends it.
type fakeConn struct {
	gate  chan struct{} // if not nil: binary writes wait until it is closed
	delay time.Duration // each binary write takes this long

	mu     sync.Mutex
	msgs   []fakeMsg            // guarded by mu
	closed websocket.StatusCode // guarded by mu; 0 while open
}

type fakeMsg struct {
	typ  websocket.MessageType
	data []byte
}

func (c *fakeConn) Write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	if typ == websocket.MessageBinary && c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if typ == websocket.MessageBinary && c.delay > 0 {
		time.Sleep(c.delay)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, fakeMsg{typ: typ, data: bytes.Clone(p)})
	return nil
}

func (c *fakeConn) Close(code websocket.StatusCode, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = code
	return nil
}

// output returns the binary messages' bytes, their sizes, and the text
// messages.
func (c *fakeConn) output() (data []byte, sizes []int, texts []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs {
		if m.typ == websocket.MessageText {
			texts = append(texts, string(m.data))
			continue
		}
		data = append(data, m.data...)
		sizes = append(sizes, len(m.data))
	}
	return data, sizes, texts
}

func (c *fakeConn) closeStatus() websocket.StatusCode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// view joins a viewer sending to conn, as serve does; it returns where the
// viewer joined and a channel closed when its writer is done.
func view(term *terminal, conn *fakeConn) (joined int64, done <-chan struct{}) {
	c, _ := term.out.join(api.TerminalReplayBytes)
	joined = c.off // the writer moves c
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		defer term.out.leave(c)
		term.writeOutput(context.Background(), conn, c, []byte(`ready`))
	}()
	return joined, ch
}

// endTerminal ends the output as supervise does.
func endTerminal(term *terminal) {
	term.exitMsg = []byte(`exit`)
	term.out.close()
}

// pattern returns n bytes that tell their offsets apart.
func pattern(from, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte((from + i) % 251)
	}
	return p
}

// TestWriteOutput: every viewer gets the ready message, then each byte of
// output from its join once, then the exit message and a normal close; a
// viewer that joins later starts with the replay.
func TestWriteOutput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		term := &terminal{out: newOutLog(outputWindow, viewerStall)}
		var all []byte
		emit := func(n, chunk int, every time.Duration) {
			for n > 0 {
				p := pattern(len(all), min(n, chunk))
				term.out.append(p)
				all = append(all, p...)
				n -= len(p)
				time.Sleep(every)
			}
		}
		a := &fakeConn{}
		_, aDone := view(term, a)
		emit(10, 1, time.Millisecond)          // typing's echo
		emit(300<<10, 4<<10, time.Microsecond) // a burst, in a PTY's reads
		b := &fakeConn{}
		bFrom, bDone := view(term, b)
		if want := int64(len(all) - api.TerminalReplayBytes); bFrom != want {
			t.Errorf("the second viewer joined at %d, want %d (the replay)", bFrom, want)
		}
		emit(2<<20, 4<<10, 0)
		emit(5, 5, 0)
		endTerminal(term)
		<-aDone
		<-bDone
		for _, v := range []struct {
			name string
			conn *fakeConn
			want []byte
		}{{"first", a, all}, {"second", b, all[bFrom:]}} {
			data, sizes, texts := v.conn.output()
			if !bytes.Equal(data, v.want) {
				t.Errorf("%s viewer: got %d bytes, want %d (the output from its join)", v.name, len(data), len(v.want))
			}
			for _, n := range sizes {
				if n > maxOutputMessage {
					t.Errorf("%s viewer: a message of %d bytes, over %d", v.name, n, maxOutputMessage)
				}
			}
			if len(texts) != 2 || texts[0] != "ready" || texts[1] != "exit" ||
				v.conn.msgs[0].typ != websocket.MessageText || v.conn.msgs[len(v.conn.msgs)-1].typ != websocket.MessageText {
				t.Errorf("%s viewer: text messages %q, want ready first and exit last", v.name, texts)
			}
			if s := v.conn.closeStatus(); s != websocket.StatusNormalClosure {
				t.Errorf("%s viewer: closed with %v", v.name, s)
			}
		}
	})
}

// TestWriteOutputCoalesces: output that comes while a viewer's message is
// being written goes out together, in messages of at most
// maxOutputMessage.
func TestWriteOutputCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		term := &terminal{out: newOutLog(outputWindow, viewerStall)}
		gate := make(chan struct{})
		conn := &fakeConn{gate: gate}
		_, done := view(term, conn)
		term.out.append([]byte("$")) // taken at once; its write waits at the gate
		synctest.Wait()
		for i := range 100 { // 400 KiB in a PTY's reads while that write waits
			term.out.append(pattern(i<<12, 4<<10))
		}
		time.Sleep(gatherWait)
		synctest.Wait() // the gather timer has published the rest
		close(gate)
		synctest.Wait()
		endTerminal(term)
		<-done
		_, sizes, _ := conn.output()
		if want := []int{1, maxOutputMessage, 400<<10 - maxOutputMessage}; fmt.Sprint(sizes) != fmt.Sprint(want) {
			t.Errorf("messages of %v bytes, want %v", sizes, want)
		}
	})
}

// TestWriteOutputGathers: typing's echo goes out at once; bulk output is
// gathered for gatherWait into few messages.
func TestWriteOutputGathers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		term := &terminal{out: newOutLog(outputWindow, viewerStall)}
		conn := &fakeConn{}
		_, done := view(term, conn)
		term.out.append([]byte("x"))
		synctest.Wait() // no time passes
		if _, sizes, _ := conn.output(); len(sizes) != 1 {
			t.Fatalf("a keystroke's echo was not sent at once: %v", sizes)
		}
		const reads = 64 // 4 KiB each, 300µs apart: ~7 per gatherWait
		for i := range reads {
			term.out.append(pattern(i<<12, 4<<10))
			time.Sleep(300 * time.Microsecond)
		}
		time.Sleep(gatherWait)
		endTerminal(term)
		<-done
		data, sizes, _ := conn.output()
		if len(data) != 1+reads<<12 {
			t.Fatalf("got %d bytes, want %d", len(data), 1+reads<<12)
		}
		if len(sizes) > 1+reads/6 {
			t.Errorf("%d reads of bulk output went out in %d messages (%v), want at most %d", reads, len(sizes)-1, sizes[1:], reads/6)
		}
	})
}

// TestWriteOutputSlowViewerDropped: a viewer that takes no output holds the
// PTY up for the stall time, is dropped then (closed with 1008), and the
// others get every byte.
func TestWriteOutputSlowViewerDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		term := &terminal{out: newOutLog(outputWindow, viewerStall)}
		fast := &fakeConn{}
		_, fastDone := view(term, fast)
		gate := make(chan struct{})
		slow := &fakeConn{gate: gate}
		_, slowDone := view(term, slow)
		start := time.Now()
		const size = 3 * outputWindow
		for i := 0; i < size; i += 4 << 10 {
			term.out.append(pattern(i, 4<<10))
		}
		if d := time.Since(start); d != viewerStall {
			t.Errorf("the stalled viewer held output up for %v, want %v", d, viewerStall)
		}
		close(gate) // its write ends; then it learns it was dropped
		<-slowDone
		if s := slow.closeStatus(); s != websocket.StatusPolicyViolation {
			t.Errorf("the stalled viewer was closed with %v, want %v", s, websocket.StatusPolicyViolation)
		}
		endTerminal(term)
		<-fastDone
		if data, _, _ := fast.output(); !bytes.Equal(data, pattern(0, size)) {
			t.Errorf("the fast viewer got %d bytes, want the %d of output", len(data), size)
		}
	})
}

// TestWriteOutputSlowViewerPaces: a viewer that takes output slowly but
// steadily sets the pace; it is not dropped and loses nothing.
func TestWriteOutputSlowViewerPaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		term := &terminal{out: newOutLog(outputWindow, viewerStall)}
		slow := &fakeConn{delay: viewerStall / 2}
		_, done := view(term, slow)
		const size = 3 * outputWindow
		start := time.Now()
		for i := 0; i < size; i += 4 << 10 {
			term.out.append(pattern(i, 4<<10))
		}
		endTerminal(term)
		<-done
		data, sizes, _ := slow.output()
		if !bytes.Equal(data, pattern(0, size)) {
			t.Errorf("the slow viewer got %d bytes, want the %d of output", len(data), size)
		}
		if s := slow.closeStatus(); s != websocket.StatusNormalClosure {
			t.Errorf("the slow viewer was closed with %v", s)
		}
		// Output waited for it: no more than a window ahead of it.
		if d, min := time.Since(start), time.Duration(len(sizes)-outputWindow/maxOutputMessage-1)*slow.delay; d < min {
			t.Errorf("%d bytes went by in %v; a viewer taking %v per message holds them to %v at least", size, d, slow.delay, min)
		}
	})
}
