package core

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/api"
)

func TestIncompleteTail(t *testing.T) {
	euro := []byte("€") // e2 82 ac
	cases := []struct {
		in   []byte
		want int
	}{
		{[]byte("abc"), 0},
		{euro, 0},
		{euro[:1], 1},
		{euro[:2], 2},
		{append([]byte("x"), euro[:2]...), 2},
		{[]byte{0xff}, 0},             // invalid, not incomplete
		{[]byte{0x80, 0x80, 0x80}, 0}, // stray continuations
		{[]byte("é")[:1], 1},
		{[]byte("😀")[:3], 3},
		{nil, 0},
	}
	for _, c := range cases {
		if got := IncompleteTail(c.in); got != c.want {
			t.Errorf("IncompleteTail(% x) = %d, want %d", c.in, got, c.want)
		}
	}
}

// FuzzChunkEvent: the hand-built event carries exactly the chunk's bytes.
func FuzzChunkEvent(f *testing.F) {
	for _, s := range []string{"", "plain text\n", "a\x00b", "\xff\xfe", "quote \" back \\ tab \t", "€😀", strings.Repeat("\x01", 100),
		"0123456789abcdef\n0123456789é\"abcdef\\", "0123456789abcdef0123456789\xffabcdef"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev := appendChunkEvent(nil, "stdout", b, 7)
		prefix := "event: stdout\nid: 7\ndata: "
		if !bytes.HasPrefix(ev, []byte(prefix)) || !bytes.HasSuffix(ev, []byte("\n\n")) {
			t.Fatalf("framing: %q", ev)
		}
		var se api.StreamEvent
		if err := json.Unmarshal(ev[len(prefix):len(ev)-2], &se); err != nil {
			t.Fatalf("not JSON: %v: %q", err, ev)
		}
		got, err := api.Output(se.Data, se.Encoding)
		if err != nil || !bytes.Equal(got, b) || se.Type != "stdout" {
			t.Fatalf("round trip of %q: %q %v", b, got, err)
		}
	})
}
