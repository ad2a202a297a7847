package runc

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestCopySparse: the copy has the same bytes and size, and its holes stay
// holes.
func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	const size = 256 << 20
	head, tail := bytes.Repeat([]byte("h"), 10000), bytes.Repeat([]byte("t"), 5000)
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(head, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(tail, size-int64(len(tail))-100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := copySparse(src, dst); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src)
	b, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("copy differs (err %v, sizes %d and %d)", err, len(a), len(b))
	}
	fi, _ := os.Stat(dst)
	if used := fi.Sys().(*syscall.Stat_t).Blocks * 512; used > 1<<20 {
		t.Errorf("copy of a sparse file takes %d bytes on disk", used)
	}
	if err := copySparse(src, dst); err == nil {
		t.Errorf("copy over an existing file succeeded")
	}
}
