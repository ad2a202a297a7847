package wireio

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
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

// special reports whether CopyPlain stops at c.
func special(c byte, high bool) bool {
	return c < 0x20 || c == '"' || c == '\\' || high && c >= 0x80
}

// guarded returns a slice of n bytes whose backing array goes on with
// guard bytes, and a check that they are untouched.
func guarded(t *testing.T, n int) ([]byte, func()) {
	buf := bytes.Repeat([]byte{0xA5}, n+64)
	return buf[:n:n], func() {
		t.Helper()
		for i, c := range buf[n:] {
			if c != 0xA5 {
				t.Fatalf("wrote %d bytes past dst", i+1)
			}
		}
	}
}

// FuzzEscapeNewlines: what EscapeNewlines writes is src's start with its
// line ends escaped, at most limit of them; it never writes past dst; and
// it only stops early where it may (a special byte other than a line end,
// limit, the last 16 bytes, short room).
func FuzzEscapeNewlines(f *testing.F) {
	f.Add(bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz\n"), 9), true, 100, 300)
	f.Add(bytes.Repeat([]byte("\n"), 70), false, 5, 200)
	f.Add([]byte("0123456789abcdef0123456789abcdef0123\"456789\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n"), true, 50, 60)
	f.Add(append(bytes.Repeat([]byte("x"), 40), 0xC3, 0xA9, '\n'), true, 9, 80)
	f.Fuzz(func(t *testing.T, src []byte, high bool, limit, room int) {
		if room < 0 || room > 1<<16 {
			return
		}
		dst, check := guarded(t, room)
		n, m := EscapeNewlines(dst, src, high, limit)
		check()
		var want []byte
		nl := 0
		for _, c := range src[:n] {
			if c == '\n' {
				want = append(want, '\\', 'n')
				nl++
				continue
			}
			if special(c, high) {
				t.Fatalf("went past %#x", c)
			}
			want = append(want, c)
		}
		if m != len(want) || !bytes.Equal(dst[:m], want) || nl > max(limit, 0) {
			t.Fatalf("n=%d m=%d: wrote %q, want %q (limit %d)", n, m, dst[:m], want, limit)
		}
		if !haveBlocks || len(src)-n < 16 || room-m < 34 {
			return // may stop here
		}
		if c := src[n]; !special(c, high) || c == '\n' && nl < limit {
			t.Fatalf("stopped at %d (%#x) with %d left, %d newlines of %d", n, c, len(src)-n, nl, limit)
		}
	})
}

// FuzzUnescapeNewlines: UnescapeNewlines turns `\n` into a line end and
// copies the rest, never past dst, stopping only where it may.
func FuzzUnescapeNewlines(f *testing.F) {
	f.Add([]byte(strings.Repeat(`abcdefghijklmnopqrstuvwxyz\n`, 9)), true, 300)
	f.Add([]byte(strings.Repeat(`\n`, 40)+`\t`), false, 100)
	f.Add([]byte(`0123456789abcdef0123456789abcdef\`), true, 100)
	f.Fuzz(func(t *testing.T, src []byte, high bool, room int) {
		if room < 0 || room > 1<<16 {
			return
		}
		dst, check := guarded(t, room)
		n, m := UnescapeNewlines(dst, src, high)
		check()
		var want []byte
		for i := 0; i < n; i++ {
			c := src[i]
			if c == '\\' && i+1 < n && src[i+1] == 'n' {
				want = append(want, '\n')
				i++
				continue
			}
			if special(c, high) {
				t.Fatalf("went past %#x at %d", c, i)
			}
			want = append(want, c)
		}
		if m != len(want) || !bytes.Equal(dst[:m], want) {
			t.Fatalf("n=%d m=%d: wrote %q, want %q", n, m, dst[:m], want)
		}
		if !haveBlocks || len(src)-n < 16 || room-m < 32 {
			return
		}
		if c := src[n]; !special(c, high) || c == '\\' && n+1 < len(src) && src[n+1] == 'n' {
			t.Fatalf("stopped at %d (%q) with %d left", n, src[n:], len(src)-n)
		}
	})
}

func BenchmarkEscapeNewlinesText(b *testing.B) {
	text := bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz\n"), 720<<10/27)
	dst := make([]byte, 2*len(text))
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if n, _ := EscapeNewlines(dst, text, true, len(text)); n < len(text)-16 {
			b.Fatal(n)
		}
	}
}
