package session

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFifoDrainEndsBusyWriter: a background writer that never stops (and
// a slow reader, so the FIFO never runs empty) does not hold copyTo past
// drain's deadline; what the command wrote before is delivered.
func TestFifoDrainEndsBusyWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	f, err := openFifo(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // the background child
		chunk := bytes.Repeat([]byte("y\n"), 4<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}()
	got := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.copyTo(func(p []byte) {
			got += len(p)
			time.Sleep(5 * time.Millisecond)
		})
	}()
	time.Sleep(50 * time.Millisecond)
	f.drain()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("copyTo still copying 3 s after drain (grace 100 ms)")
	}
	if got == 0 {
		t.Fatal("nothing delivered")
	}
}
