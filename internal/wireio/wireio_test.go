package wireio

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"
	"testing/iotest"
)

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
		if got := PlainRun(b); got != want {
			t.Fatalf("PlainRun(%q) = %d, want %d", b, got, want)
		}
	})
}

func TestFill(t *testing.T) {
	buf := make([]byte, 10)
	n, err := Fill(iotest.OneByteReader(bytes.NewReader([]byte("0123456789abc"))), buf)
	if n != 10 || err != nil || string(buf) != "0123456789" {
		t.Fatalf("full: %d %v %q", n, err, buf)
	}
	n, err = Fill(bytes.NewReader([]byte("abc")), buf)
	if n != 3 || err != io.EOF {
		t.Fatalf("short: %d %v; want 3, io.EOF", n, err)
	}
	n, err = Fill(iotest.ErrReader(io.ErrUnexpectedEOF), buf)
	if n != 0 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("error: %d %v", n, err)
	}
	n, err = Fill(emptyReader{}, buf)
	if n != 0 || err != io.ErrNoProgress {
		t.Fatalf("no progress: %d %v", n, err)
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestCopyChunks(t *testing.T) {
	var w writes
	n, err := CopyChunks(&w, iotest.OneByteReader(bytes.NewReader([]byte("0123456789"))), make([]byte, 4))
	if n != 10 || err != nil || len(w) != 3 || string(w[0]) != "0123" || string(w[2]) != "89" {
		t.Fatalf("%d %v %q; want 10 bytes in pieces of 4, 4, 2", n, err, w)
	}
	if _, err := CopyChunks(&w, iotest.ErrReader(io.ErrUnexpectedEOF), make([]byte, 4)); err != io.ErrUnexpectedEOF {
		t.Fatalf("reader error: %v", err)
	}
}

// writes records each write.
type writes [][]byte

func (w *writes) Write(p []byte) (int, error) {
	*w = append(*w, append([]byte(nil), p...))
	return len(p), nil
}

func TestIsWebSocketUpgrade(t *testing.T) {
	for _, c := range []struct {
		conn, upgrade string
		want          bool
	}{
		{"Upgrade", "websocket", true},
		{"keep-alive, UPGRADE", "WebSocket", true},
		{"keep-alive", "websocket", false},
		{"upgrade", "h2c", false},
		{"", "", false},
	} {
		h := http.Header{}
		if c.conn != "" {
			h.Set("Connection", c.conn)
		}
		if c.upgrade != "" {
			h.Set("Upgrade", c.upgrade)
		}
		if got := IsWebSocketUpgrade(h); got != c.want {
			t.Errorf("Connection %q, Upgrade %q: %v, want %v", c.conn, c.upgrade, got, c.want)
		}
	}
}

// plainRef is CopyPlain's count, a byte at a time.
func plainRef(b []byte, high bool) int {
	for i, c := range b {
		if c < 0x20 || c == '"' || c == '\\' || high && c >= 0x80 {
			return i
		}
	}
	return len(b)
}

// FuzzCopyPlain: the block and word scans agree with a byte loop, and
// what they copy is the source's bytes.
func FuzzCopyPlain(f *testing.F) {
	f.Add([]byte("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUV\"x"), true)
	f.Add(bytes.Repeat([]byte("a\u00e9b"), 40), false)
	f.Add(append(bytes.Repeat([]byte{'z'}, 47), 0x1f, 0x20), true)
	f.Fuzz(func(t *testing.T, b []byte, high bool) {
		dst := make([]byte, len(b))
		want := plainRef(b, high)
		got := CopyPlain(dst, b, high)
		if got != want || !bytes.Equal(dst[:got], b[:got]) {
			t.Fatalf("CopyPlain(%q, %v) = %d, %q; want %d", b, high, got, dst[:got], want)
		}
	})
}

// TestCopyPlainEveryByte puts each byte value at each place of a 70-byte
// run (two pairs of blocks, a single block and a word tail).
func TestCopyPlainEveryByte(t *testing.T) {
	src := bytes.Repeat([]byte{'a'}, 70)
	dst := make([]byte, len(src))
	for c := range 256 {
		for pos := range src {
			for _, high := range []bool{false, true} {
				b := bytes.Clone(src)
				b[pos] = byte(c)
				want := plainRef(b, high)
				if got := CopyPlain(dst, b, high); got != want || !bytes.Equal(dst[:got], b[:got]) {
					t.Fatalf("byte %#x at %d, high %v: %d, want %d", c, pos, high, got, want)
				}
			}
		}
	}
	if got := CopyPlain(nil, nil, true); got != 0 {
		t.Fatalf("empty: %d", got)
	}
}

func BenchmarkCopyPlainText(b *testing.B) {
	text := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz\n"), 720<<10/27)
	dst := make([]byte, len(text))
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		for i := 0; i < len(text); {
			i += CopyPlain(dst[i:], text[i:], true) + 1
		}
	}
}
