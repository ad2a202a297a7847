package process

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"
)

// TestProcLogFollow: follow passes every record from an offset on, live,
// and io.EOF once the log is closed; the ends of records (event ids) are
// the only valid offsets.
func TestProcLogFollow(t *testing.T) {
	l, err := newProcLog(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	l.append(streamStdout, []byte("one"))
	l.append(streamStderr, []byte("two"))
	go func() {
		time.Sleep(50 * time.Millisecond)
		l.append(streamStdout, []byte("three"))
		l.close()
	}()
	var got []record
	if err := l.follow(context.Background(), 0, func(r record) bool { got = append(got, r); return true }); err != io.EOF {
		t.Fatalf("follow: %v, want io.EOF", err)
	}
	if len(got) != 3 || string(got[0].data) != "one" || got[1].stream != streamStderr || string(got[2].data) != "three" {
		t.Fatalf("records %+v", got)
	}
	size, _, _, _ := l.state()
	for off, want := range map[int64]bool{0: true, got[0].end: true, got[1].end: true, size: true, 1: false, got[0].end + 1: false} {
		if l.validOffset(off, size) != want {
			t.Errorf("validOffset(%d) = %v, want %v", off, !want, want)
		}
	}
	// From an event id on; stopped by fn.
	var n int
	if err := l.follow(context.Background(), got[0].end, func(r record) bool { n++; return false }); err != nil || n != 1 {
		t.Errorf("follow from %d: %v after %d records", got[0].end, err, n)
	}
}

// TestProcLogValidOffsetIndexed: offsets past the index's first entries
// are checked from the nearest indexed record on.
func TestProcLogValidOffsetIndexed(t *testing.T) {
	l, err := newProcLog(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	var ends []int64
	for i := range 3*indexEvery + 7 {
		l.append(streamStdout, make([]byte, 1+i%13))
		size, _, _, _ := l.state()
		ends = append(ends, size)
	}
	size := ends[len(ends)-1]
	for _, i := range []int{0, indexEvery - 1, indexEvery, indexEvery + 1, 2*indexEvery + 5, len(ends) - 2} {
		if !l.validOffset(ends[i], size) {
			t.Errorf("the end of record %d (%d) is not valid", i, ends[i])
		}
		if l.validOffset(ends[i]+1, size) {
			t.Errorf("the end of record %d plus one (%d) is valid", i, ends[i]+1)
		}
	}
}
