package files

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

// TestWriteAtomicLarge writes several copyBufSize's worth, in the small
// pieces an upload arrives in, and checks the file byte for byte.
func TestWriteAtomicLarge(t *testing.T) {
	block := make([]byte, 4093) // odd-sized, so writes and reads never align
	for i := range block {
		block[i] = byte(i * 7)
	}
	size := int64(3*copyBufSize + 12345)
	src := io.LimitReader(&repeatReader{block: block}, size)
	path := filepath.Join(t.TempDir(), "f")
	n, err := writeAtomic(path, src, 0, false)
	if err != nil || n != size {
		t.Fatalf("writeAtomic = %d, %v; want %d", n, err, size)
	}
	got, err := os.ReadFile(path)
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

// TestWriteAtomicSourceError: an error of the source, also one that looks
// like an end (io.ErrUnexpectedEOF, as a body cut off mid-chunk gives), is
// the caller's (VALIDATION_FAILED, with the source's message), not taken
// for the end; the file stays as it was and no temporary file is left.
func TestWriteAtomicSourceError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, src := range []io.Reader{
		io.MultiReader(bytes.NewReader(make([]byte, 3<<20)), iotest.ErrReader(io.ErrUnexpectedEOF)),
		iotest.ErrReader(errors.New("boom")),
	} {
		_, err := writeAtomic(path, src, 0, false)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "reading the content") {
			t.Errorf("err = %v, want the source's, as invalid argument", err)
		}
		checkUnchanged(t, dir, path, "before")
	}
}

// TestWriteAtomicWriteError: a failing write (a full disk) is the file's
// error, RESOURCE_EXHAUSTED, and leaves the file as it was.
func TestWriteAtomicWriteError(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("before"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := writeAtomic(path, bytes.NewReader(make([]byte, 1<<20)), 0, false)
	if errdefs.Code(err) != api.CodeResourceExhausted {
		t.Errorf("err = %v (%s), want RESOURCE_EXHAUSTED", err, errdefs.Code(err))
	}
	checkUnchanged(t, dir, path, "before")
}

// checkUnchanged checks that path still holds want, alone in dir.
func checkUnchanged(t *testing.T, dir, path, want string) {
	t.Helper()
	if got, err := os.ReadFile(path); err != nil || string(got) != want {
		t.Errorf("%s holds %q (%v), want %q", path, got, err, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries in %s: a temporary file was left", len(entries), dir)
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
