package sandbox

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/sandboxd/sandboxd/api"
)

// writeSSE writes one event as the daemon does: event, id and data lines
// (one per line of data, whatever its line ends) and a blank line. An empty
// event name or ID is left out.
func writeSSE(w io.Writer, event, id, data string) {
	var b strings.Builder
	if event != "" {
		fmt.Fprintf(&b, "event: %s\n", event)
	}
	if id != "" {
		fmt.Fprintf(&b, "id: %s\n", id)
	}
	for _, line := range strings.Split(normalizeEOL(data), "\n") {
		fmt.Fprintf(&b, "data: %s\n", line)
	}
	b.WriteString("\n")
	io.WriteString(w, b.String())
}

// normalizeEOL turns CRLF and CR into LF, as a data field's reader sees
// them.
func normalizeEOL(s string) string {
	return strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(s)
}

// testEvent is an sseEvent with its data copied out of the reader.
type testEvent struct{ ID, Event, Data string }

// readAll parses every event of stream, returning them and the error that
// ended the stream.
func readAll(r io.Reader) ([]testEvent, error) {
	p := newSSEReader(r)
	var evs []testEvent
	for {
		ev, err := p.next()
		if err != nil {
			return evs, err
		}
		evs = append(evs, testEvent{ev.ID, ev.Event, string(ev.Data)})
	}
}

func TestSSEReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []testEvent
		wantErr error
	}{{
		name:    "empty stream",
		in:      "",
		wantErr: io.EOF,
	}, {
		name:    "one event",
		in:      "event: stdout\nid: 1\ndata: {\"a\":1}\n\n",
		want:    []testEvent{{ID: "1", Event: "stdout", Data: `{"a":1}`}},
		wantErr: io.EOF,
	}, {
		name:    "multi-line data joined with LF",
		in:      "data: a\ndata:b\ndata:  c\ndata\n\n",
		want:    []testEvent{{Data: "a\nb\n c\n"}},
		wantErr: io.EOF,
	}, {
		name:    "CRLF and CR line ends",
		in:      "event: x\r\nid: 7\r\ndata: 1\r\rdata: 2\r\n\r\n",
		want:    []testEvent{{ID: "7", Event: "x", Data: "1"}, {ID: "7", Data: "2"}},
		wantErr: io.EOF,
	}, {
		name:    "heartbeats and unknown fields skipped",
		in:      ": ping\n\n: ping\nretry: 10\nfoo: bar\ndata: x\n: ping\n\n",
		want:    []testEvent{{Data: "x"}},
		wantErr: io.EOF,
	}, {
		name:    "id carries over, empty id resets, NUL id ignored",
		in:      "id: 5\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 6\x00\ndata: d\n\n",
		want:    []testEvent{{ID: "5", Data: "a"}, {ID: "5", Data: "b"}, {Data: "c"}, {Data: "d"}},
		wantErr: io.EOF,
	}, {
		name:    "block without data is not dispatched",
		in:      "event: x\nid: 3\n\ndata: y\n\n",
		want:    []testEvent{{ID: "3", Data: "y"}},
		wantErr: io.EOF,
	}, {
		name:    "empty data is an event",
		in:      "event: e\ndata\n\n",
		want:    []testEvent{{Event: "e"}},
		wantErr: io.EOF,
	}, {
		name:    "colon in value kept, field without colon",
		in:      "data: a: b:c\n\n",
		want:    []testEvent{{Data: "a: b:c"}},
		wantErr: io.EOF,
	}, {
		name:    "leading byte order mark dropped",
		in:      "\uFEFFdata: x\n\n",
		want:    []testEvent{{Data: "x"}},
		wantErr: io.EOF,
	}, {
		name:    "unterminated event dropped",
		in:      "data: x\n\ndata: y\n",
		want:    []testEvent{{Data: "x"}},
		wantErr: io.ErrUnexpectedEOF,
	}, {
		name:    "unterminated line dropped",
		in:      "data: x",
		wantErr: io.ErrUnexpectedEOF,
	}, {
		name:    "trailing comment is not an event",
		in:      "data: x\n\n: ping\n",
		want:    []testEvent{{Data: "x"}},
		wantErr: io.EOF,
	}, {
		name:    "binary-looking but valid data",
		in:      "data: \x00\xff\n\n",
		want:    []testEvent{{Data: "\x00\xff"}},
		wantErr: io.EOF,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Byte by byte too, so line ends split across reads are handled.
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got, err := readAll(r)
				if !reflect.DeepEqual(got, tc.want) || !errors.Is(err, tc.wantErr) {
					t.Errorf("got %q, %v\nwant %q, %v", got, err, tc.want, tc.wantErr)
				}
			}
		})
	}
}

func TestSSEReaderLimits(t *testing.T) {
	long := strings.Repeat("x", maxSSEEvent+1)
	for name, in := range map[string]string{
		"long line":  "data: " + long + "\n\n",
		"long event": "data: " + long[:maxSSEEvent/2] + "\ndata: " + long[:maxSSEEvent/2+1] + "\n\n",
	} {
		if _, err := readAll(strings.NewReader(in)); !errors.Is(err, errSSETooLong) {
			t.Errorf("%s: err = %v, want errSSETooLong", name, err)
		}
	}
}

// TestSSEReaderDoesNotWaitAfterCR checks that an event whose blank line ends
// in a lone CR is dispatched without waiting for the next byte.
func TestSSEReaderDoesNotWaitAfterCR(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	go io.WriteString(pw, "data: x\r\r")
	p := newSSEReader(pr)
	ev, err := p.next()
	if err != nil || string(ev.Data) != "x" {
		t.Fatalf("next = %+v, %v", ev, err)
	}
}

// FuzzSSE checks that the reader never panics or loops on any input, and
// that events written as the daemon writes them come back unchanged.
func FuzzSSE(f *testing.F) {
	f.Add([]byte("event: stdout\nid: 1\ndata: x\n\n"), "stdout", "1", "hello\nworld")
	f.Add([]byte(": ping\r\n\r\ndata\r\r"), "", "", "")
	f.Add([]byte("\uFEFFdata: \x00\n\n"), "complete", "42", "{\"exitCode\":0}")
	f.Add([]byte("id: \x00\ndata:\n\n"), " spaced", "a b", "a\r\nb\rc\n")
	f.Fuzz(func(t *testing.T, raw []byte, event, id, data string) {
		p := newSSEReader(bytes.NewReader(raw))
		for i := 0; ; i++ {
			ev, err := p.next()
			if err != nil {
				break
			}
			if i > len(raw) {
				t.Fatalf("more events than input bytes")
			}
			if strings.ContainsAny(ev.Event+ev.ID, "\r\n") || strings.ContainsRune(ev.ID, 0) {
				t.Fatalf("event %q has a line end in a field", ev)
			}
		}

		if strings.ContainsAny(event+id, "\r\n\x00") {
			return // cannot be written as one field
		}
		var buf bytes.Buffer
		writeSSE(&buf, event, id, data)
		buf.WriteString(": ping\n\n")
		writeSSE(&buf, "", "", "second")
		got, err := readAll(&buf)
		want := []testEvent{{ID: id, Event: event, Data: normalizeEOL(data)}, {ID: id, Data: "second"}}
		if !reflect.DeepEqual(got, want) || err != io.EOF {
			t.Errorf("round trip of %q %q %q: got %q, %v\nwant %q", event, id, data, got, err, want)
		}
	})
}

// FuzzOutputEvent: an output event the daemon may send decodes to the
// bytes encoding/json reads from it, by outevent.Decode or, where that
// declines, by encoding/json itself (outevent's own fuzz tests pin
// Decode to encoding/json).
func FuzzOutputEvent(f *testing.F) {
	for _, s := range []string{"plain\n", "a\x00b", "quote \" \\ / \t\r\b\f", "€😀", "\xff\xfe", ""} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, asBase64 bool) {
		w := api.StreamEvent{Type: "stdout", Data: string(b)}
		if asBase64 {
			w.Data, w.Encoding = base64.StdEncoding.EncodeToString(b), api.EncodingBase64
		}
		raw, _ := json.Marshal(w)
		want := b
		if !asBase64 {
			// What encoding/json itself makes of the string.
			var back api.StreamEvent
			_ = json.Unmarshal(raw, &back)
			want = []byte(back.Data)
		}
		ev, err := decodeEvent(sseEvent{ID: "7", Event: "stdout", Data: raw}, api.EventComplete)
		if err != nil || ev.Type != "stdout" || ev.ID != "7" || !bytes.Equal(ev.Data, want) {
			t.Fatalf("decodeEvent(%q) = %+v, %v; want data %q", raw, ev, err, want)
		}
		clear(raw) // the reader's buffer, reused: Data is the caller's to keep
		if !bytes.Equal(ev.Data, want) {
			t.Fatalf("Data shares the event's buffer: %q", ev.Data)
		}
	})
}
