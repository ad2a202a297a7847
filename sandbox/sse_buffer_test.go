package sandbox

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// chunkReader returns what it reads from r in pieces of random sizes (1 to
// max bytes), as a network connection does.
type chunkReader struct {
	r   io.Reader
	rnd *rand.Rand
	max int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	n := 1 + c.rnd.IntN(c.max)
	return c.r.Read(p[:min(n, len(p))])
}

// TestSSEReaderBigEvents streams events from a few bytes to several MiB,
// with comments, multi-line data and CRLF between them, in reads of random
// sizes: the reader's buffer grows and is compacted under events whose
// data it hands out in place, and every event must come back whole.
func TestSSEReaderBigEvents(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var in bytes.Buffer
	var want []testEvent
	for i := range 60 {
		size := rnd.IntN(64)
		if i%3 == 0 {
			size = rnd.IntN(3 << 20)
		}
		data := make([]byte, size)
		for j := range data {
			data[j] = 'a' + byte(rnd.IntN(26))
		}
		id := fmt.Sprint(i)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&in, "event: stdout\nid: %s\ndata: %s\n\n", id, data)
			want = append(want, testEvent{id, "stdout", string(data)})
		case 1:
			fmt.Fprintf(&in, ": ping\r\nid: %s\r\ndata: %s\r\ndata: x\r\n\r\n", id, data)
			want = append(want, testEvent{id, "", string(data) + "\nx"})
		case 2:
			fmt.Fprintf(&in, "data: %s\nevent: stderr\nid: %s\n: ping\n\n", data, id)
			want = append(want, testEvent{id, "stderr", string(data)})
		case 3:
			fmt.Fprintf(&in, "id: %s\rdata:%s\r\r", id, data)
			want = append(want, testEvent{id, "", string(data)})
		}
	}
	raw := in.Bytes()
	for _, max := range []int{7, 4 << 10, 300 << 10, 8 << 20} {
		got, err := readAll(&chunkReader{r: bytes.NewReader(raw), rnd: rnd, max: max})
		if err != io.EOF {
			t.Fatalf("reads of up to %d bytes: err %v", max, err)
		}
		if len(got) != len(want) {
			t.Fatalf("reads of up to %d bytes: %d events, want %d", max, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("reads of up to %d bytes: event %d: got %q %q %d bytes, want %q %q %d bytes",
					max, i, got[i].ID, got[i].Event, len(got[i].Data), want[i].ID, want[i].Event, len(want[i].Data))
			}
		}
	}
}

// TestSSEReaderEmptyReads: a reader that keeps returning nothing gives an
// error, not a hang.
func TestSSEReaderEmptyReads(t *testing.T) {
	_, err := readAll(emptyReader{})
	if err != io.ErrNoProgress {
		t.Fatalf("err = %v, want io.ErrNoProgress", err)
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

// TestSSEReaderError: the reader's error comes after the events read
// before it.
func TestSSEReaderError(t *testing.T) {
	r := io.MultiReader(strings.NewReader("data: a\n\ndata: b"), iotest.ErrReader(io.ErrClosedPipe))
	got, err := readAll(r)
	if len(got) != 1 || got[0].Data != "a" || err != io.ErrClosedPipe {
		t.Fatalf("got %q, %v", got, err)
	}
}
