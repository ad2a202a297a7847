package core

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// FuzzAppendBase64: appendBase64 agrees with encoding/base64, after any
// prefix.
func FuzzAppendBase64(f *testing.F) {
	f.Add([]byte("hello, world"), []byte("x"))
	f.Add(bytes.Repeat([]byte{0, 0xff, 0x80}, 40), []byte(nil))
	f.Fuzz(func(t *testing.T, b, prefix []byte) {
		want := base64.StdEncoding.AppendEncode(bytes.Clone(prefix), b)
		if got := appendBase64(bytes.Clone(prefix), b); !bytes.Equal(got, want) {
			t.Fatalf("appendBase64(%q, %q) = %q, want %q", prefix, b, got, want)
		}
	})
}
