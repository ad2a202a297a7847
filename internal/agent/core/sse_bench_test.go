package core

import (
	"bytes"
	"testing"
)

// BenchmarkChunkEventText builds the event of a 720 KiB text chunk with a
// line end every 27 bytes (yes abcdefghijklmnopqrstuvwxyz): the hot path
// of a text stream on the agent's side.
func BenchmarkChunkEventText(b *testing.B) {
	text := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz\n"), 720<<10/27)
	var buf []byte
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		buf = appendChunkEvent(buf[:0], "stdout", text, 1)
	}
}
