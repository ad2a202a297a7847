package sandbox

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// FuzzDecodeBase64: decodeBase64 agrees with encoding/base64 on what it
// accepts and what that decodes to, on encoded data and on anything else.
func FuzzDecodeBase64(f *testing.F) {
	f.Add([]byte("aGVsbG8gd29ybGQ="), false)
	f.Add([]byte("an output chunk of some length, long enough for the fast path"), true)
	f.Add([]byte("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\nQUJD"), false)
	f.Fuzz(func(t *testing.T, b []byte, encode bool) {
		if encode {
			b = base64.StdEncoding.AppendEncode(nil, b)
		}
		want := make([]byte, base64.StdEncoding.DecodedLen(len(b)))
		n, wantErr := base64.StdEncoding.Decode(want, b)
		got, err := decodeBase64(b)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("decodeBase64(%q): error %v, want %v", b, err, wantErr)
		}
		if err == nil && !bytes.Equal(got, want[:n]) {
			t.Fatalf("decodeBase64(%q) = %q, want %q", b, got, want[:n])
		}
	})
}
