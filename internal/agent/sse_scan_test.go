package agent

import "testing"

// FuzzPlainRun: the word-at-a-time scan agrees with a byte loop.
func FuzzPlainRun(f *testing.F) {
	f.Add([]byte("abcdefgh\"ijkl"))
	f.Add([]byte("\x80\x1f\xff\\\x00 aaaaaaaaaaaaaaaa\x7f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		want := len(b)
		for i, c := range b {
			if c < 0x20 || c == '"' || c == '\\' {
				want = i
				break
			}
		}
		if got := plainRun(b); got != want {
			t.Fatalf("plainRun(%q) = %d, want %d", b, got, want)
		}
	})
}
