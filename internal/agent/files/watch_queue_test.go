package files

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
)

// A client too slow for the queue loses changes, and learns it: the
// changes taken are followed by the dropped flag (an overflow event); the
// watch goes on.
func TestWatchQueueDrops(t *testing.T) {
	dir := t.TempDir()
	w, err := newWatcher(dir, false, watchFilter{}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	w.queueMax = 100
	go w.read()
	defer w.close()
	for i := range 300 {
		if err := os.WriteFile(fmt.Sprintf("%s/%03d", dir, i), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		dropped := w.dropped
		w.mu.Unlock()
		if dropped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing dropped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The reader may still be working through the rest of the 300 (all
	// dropped): make a change after them, twice, and wait each time until
	// the reader has read it. Having read the second, it is done with
	// whatever it read with the first, so none of the 300 reaches the
	// queue after the take. (The second's own events may; they are few.)
	for _, name := range []string{"sentinel1", "sentinel2"} {
		if err := os.WriteFile(dir+"/"+name, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		for unread(t, w) > 0 {
			if time.Now().After(deadline) {
				t.Fatal("the reader is stuck")
			}
			time.Sleep(time.Millisecond)
		}
	}
	evs, end := w.take()
	path := func(i int) string { return evs[i].(api.WatchEvent).Path }
	if len(evs) != 101 || end != nil || path(0) != dir+"/000" || path(99) != dir+"/099" ||
		evs[100] != (api.WatchEvent{Type: "event", EventType: watchOverflow, Path: dir, IsDirectory: true}) {
		t.Fatalf("took %d events (end %v): %v", len(evs), end, evs[max(0, len(evs)-1):])
	}
	if err := os.WriteFile(dir+"/after", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case <-w.notify:
		case <-time.After(5 * time.Second):
			t.Fatal("no event after the drop")
		}
		evs, _ := w.take()
		for _, ev := range evs {
			if ev.(api.WatchEvent).EventType == watchOverflow {
				t.Error("dropped again")
			}
		}
		if len(evs) > 0 && evs[len(evs)-1].(api.WatchEvent).Path == dir+"/after" {
			return
		}
	}
}

// unread is how many bytes of events w's inotify instance holds that its
// reader has not read yet (FIONREAD, which x/sys/unix calls TIOCINQ).
func unread(t *testing.T, w *watcher) int {
	t.Helper()
	var n int
	var ioErr error
	if err := w.rc.Control(func(fd uintptr) { n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); err != nil {
		t.Fatal(err)
	}
	if ioErr != nil {
		t.Fatal(ioErr)
	}
	return n
}
