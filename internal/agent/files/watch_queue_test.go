package files

import (
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"
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
	evs, dropped, end := w.take()
	if len(evs) != 100 || !dropped || end != nil || evs[0].Path != dir+"/000" || evs[99].Path != dir+"/099" {
		t.Fatalf("took %d events (dropped %v, end %v)", len(evs), dropped, end)
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
		evs, dropped, _ := w.take()
		if dropped {
			t.Error("dropped again")
		}
		if len(evs) > 0 && evs[len(evs)-1].Path == dir+"/after" {
			return
		}
	}
}
