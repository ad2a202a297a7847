package process

import (
	"bytes"
	"regexp"
	"testing"
)

// TestMatchChunk: a pattern matches a whole line, a line split across
// chunks, or the line so far; streams keep their own lines.
func TestMatchChunk(t *testing.T) {
	contains := func(s string) func([]byte) bool {
		return func(line []byte) bool { return bytes.Contains(line, []byte(s)) }
	}
	for _, c := range []struct {
		name   string
		match  func([]byte) bool
		chunks []record
		want   string // "" for no match
	}{
		{"substring", contains("ready"), []record{{stream: streamStdout, data: []byte("a\nserver ready on 80\nb\n")}}, "server ready on 80"},
		{"split line", contains("ready"), []record{{stream: streamStdout, data: []byte("server re")}, {stream: streamStdout, data: []byte("ady\n")}}, "server ready"},
		{"line so far", contains("ready"), []record{{stream: streamStdout, data: []byte("x\nready, no newline")}}, "ready, no newline"},
		{"streams apart", contains("ready"), []record{{stream: streamStdout, data: []byte("re")}, {stream: streamStderr, data: []byte("ady\n")}}, ""},
		{"regex per line", regexp.MustCompile(`^line \d$`).Match, []record{{stream: streamStdout, data: []byte("line x\nline 1\nline 2\n")}}, "line 1"},
		{"no match", contains("never"), []record{{stream: streamStdout, data: []byte("a\nb\n")}}, ""},
	} {
		pending := map[byte][]byte{}
		got := ""
		for _, rec := range c.chunks {
			if line, ok := matchChunk(pending, rec, c.match); ok {
				got = line
				break
			}
		}
		if got != c.want {
			t.Errorf("%s: matched %q, want %q", c.name, got, c.want)
		}
	}
}
