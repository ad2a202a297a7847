package terminal

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

func TestRing(t *testing.T) {
	r := newRing(8)
	var all []byte
	for i, w := range []string{"", "abc", "defgh", "i", "jklmnopqrstu", "vw", "xyz0123456789AB"} {
		r.Write([]byte(w))
		all = append(all, w...)
		want := all
		if len(want) > 8 {
			want = want[len(want)-8:]
		}
		if got := r.Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("after write %d (%q): Bytes = %q, want %q", i, w, got, want)
		}
		if r.Len() != len(want) {
			t.Fatalf("after write %d: Len = %d, want %d", i, r.Len(), len(want))
		}
	}
	// Bytes is a copy: the ring's later writes do not change it.
	got := r.Bytes()
	r.Write([]byte("zzzzzzzz"))
	if string(got) == "zzzzzzzz" {
		t.Fatal("Bytes shares the ring's memory")
	}
}

func TestRingByteAtATime(t *testing.T) {
	r := newRing(5)
	var all []byte
	for i := 0; i < 23; i++ {
		b := byte('a' + i)
		r.Write([]byte{b})
		all = append(all, b)
		want := all[max(0, len(all)-5):]
		if got := r.Bytes(); !bytes.Equal(got, want) {
			t.Fatalf("after %d bytes: %q, want %q", i+1, got, want)
		}
	}
}

func TestParseClientMessage(t *testing.T) {
	for _, tc := range []struct {
		in         string
		cols, rows int
		err        string
	}{
		{in: `{"type":"resize","cols":120,"rows":40}`, cols: 120, rows: 40},
		{in: `{"type":"resize","cols":1,"rows":1000,"extra":true}`, cols: 1, rows: 1000},
		{in: `{"type":"resize","cols":0,"rows":40}`, err: "1-1000"},
		{in: `{"type":"resize","cols":80,"rows":1001}`, err: "1-1000"},
		{in: `{"type":"resize","cols":-5,"rows":10}`, err: "1-1000"},
		{in: `{"type":"resize","cols":"80","rows":24}`, err: "invalid message"},
		{in: `{"type":"ping"}`, err: `unknown message type "ping"`},
		{in: `{"cols":80}`, err: "no type"},
		{in: `not json`, err: "invalid message"},
		{in: ``, err: "invalid message"},
	} {
		m, err := parseClientMessage([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parse %q: err %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || m.Type != api.TerminalResize || m.Cols != tc.cols || m.Rows != tc.rows {
			t.Errorf("parse %q = %+v, %v; want resize %dx%d", tc.in, m, err, tc.cols, tc.rows)
		}
	}
}

func TestParseTerminalQuery(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  terminalParams
		err   bool
	}{
		{query: "", want: terminalParams{terminalID: api.DefaultTerminalID}},
		{query: "sessionId=s1&terminalId=t.2&cols=120&rows=30&shell=/bin/sh",
			want: terminalParams{sessionID: "s1", terminalID: "t.2", cols: 120, rows: 30, shell: "/bin/sh"}},
		{query: "terminalId=a/b", err: true},
		{query: "terminalId=" + strings.Repeat("x", 65), err: true},
		{query: "cols=0", err: true},
		{query: "rows=abc", err: true},
		{query: "cols=1001", err: true},
		{query: "shell=bash", err: true},
		{query: "shell=/bin/../bin/bash", err: true},
	} {
		q, _ := url.ParseQuery(tc.query)
		got, err := parseTerminalQuery(q)
		if tc.err {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("query %q: err %v, want an invalid argument", tc.query, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("query %q = %+v, %v; want %+v", tc.query, got, err, tc.want)
		}
	}
}

func TestCoalesce(t *testing.T) {
	shared := append(make([]byte, 0, 64), "abc"...) // room to append into
	big := bytes.Repeat([]byte("z"), maxOutputMessage-2)
	in := []frame{
		{text: true, data: []byte(`{"type":"ready"}`)},
		{data: shared}, {data: []byte("def")}, {data: []byte("g")},
		{text: true, data: []byte(`{"type":"exit"}`)},
		{data: []byte("h")},
		{data: big}, {data: []byte("ij")}, {data: []byte("k")},
	}
	got := coalesce(in)
	want := []frame{
		{text: true, data: []byte(`{"type":"ready"}`)},
		{data: []byte("abcdefg")},
		{text: true, data: []byte(`{"type":"exit"}`)},
		{data: append([]byte("h"), big...)},
		{data: []byte("ijk")},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].text != want[i].text || !bytes.Equal(got[i].data, want[i].data) {
			t.Errorf("frame %d: %v %q, want %v %q", i, got[i].text, got[i].data[:min(20, len(got[i].data))], want[i].text, want[i].data[:min(20, len(want[i].data))])
		}
		if len(got[i].data) > maxOutputMessage {
			t.Errorf("frame %d: %d bytes, over %d", i, len(got[i].data), maxOutputMessage)
		}
	}
	if string(shared[:6]) != "abc\x00\x00\x00" {
		t.Errorf("coalesce wrote into a shared buffer: %q", shared[:6])
	}
}
