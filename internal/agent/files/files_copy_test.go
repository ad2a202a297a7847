package files

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// TestCopyToFile copies more than two syncEvery's worth, in the small
// pieces an upload arrives in, and checks the file byte for byte.
func TestCopyToFile(t *testing.T) {
	block := make([]byte, 4093) // odd-sized, so writes and reads never align
	for i := range block {
		block[i] = byte(i * 7)
	}
	size := int64(2*syncEvery + 12345)
	src := io.LimitReader(&repeatReader{block: block}, size)
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := copyToFile(f, src)
	if err != nil || n != size {
		t.Fatalf("copyToFile = %d, %v; want %d", n, err, size)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != size {
		t.Fatalf("file has %d bytes, want %d", len(got), size)
	}
	for off := 0; off < len(got); off += len(block) {
		want := block[:min(len(block), len(got)-off)]
		if !bytes.Equal(got[off:off+len(want)], want) {
			t.Fatalf("bytes at %d differ", off)
		}
	}
}

// TestCopyToFileSourceError: an error of the source, also one that looks
// like an end (io.ErrUnexpectedEOF, as a body cut off mid-chunk gives), is
// returned as it is, not taken for the end.
func TestCopyToFileSourceError(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src := io.MultiReader(bytes.NewReader(make([]byte, 3<<20)), iotest.ErrReader(io.ErrUnexpectedEOF))
	if _, err := copyToFile(f, src); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	var fe *fileWriteError
	if _, err := copyToFile(f, iotest.ErrReader(errors.New("boom"))); err == nil || errors.As(err, &fe) {
		t.Fatalf("err = %v, want the source's error", err)
	}
}

// TestCopyToFileWriteError: a failing write is a *fileWriteError.
func TestCopyToFileWriteError(t *testing.T) {
	f, err := os.Open(os.DevNull) // read-only: writes fail
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var fe *fileWriteError
	if _, err := copyToFile(f, bytes.NewReader([]byte("x"))); !errors.As(err, &fe) {
		t.Fatalf("err = %v, want a *fileWriteError", err)
	}
}

// repeatReader returns block over and over, in reads of at most 1000
// bytes.
type repeatReader struct {
	block []byte
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p[:min(len(p), 1000)], r.block[r.off:])
	r.off = (r.off + n) % len(r.block)
	return n, nil
}
