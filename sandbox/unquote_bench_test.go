package sandbox

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/sandboxd/sandboxd/api"
)

// BenchmarkFastOutputText decodes an output event of text with a line
// end every 27 bytes (yes abcdefghijklmnopqrstuvwxyz), 720 KiB of it: the
// hot path of a text stream on the SDK's side.
func BenchmarkFastOutputText(b *testing.B) {
	text := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz\n"), 720<<10/27)
	raw, _ := json.Marshal(api.StreamEvent{Type: "stdout", Data: string(text)})
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if out, ok := fastOutput(raw, "stdout"); !ok || len(out) != len(text) {
			b.Fatal("declined")
		}
	}
}
