package manager_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/manager"
	"github.com/sandboxd/sandboxd/internal/manager/managertest"
	"github.com/sandboxd/sandboxd/internal/metrics"
	"github.com/sandboxd/sandboxd/internal/store"
)

// TestRecoverResolvesInterruptedWork: records a killed daemon left in
// between states are resolved at the next start: an unfinished create is
// rolled back, an unfinished destroy finished, a sleeping sandbox stays
// asleep, a running one whose container is gone is stopped.
func TestRecoverResolvesInterruptedWork(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	images := filepath.Join(dir, "images")
	if err := os.MkdirAll(filepath.Join(images, "default"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UTC()
	for id, status := range map[string]string{
		"half-created":   api.StatusCreating,
		"half-destroyed": manager.StatusDestroying,
		"asleep":         api.StatusSleeping,
		"was-running":    api.StatusRunning,
	} {
		rec := store.Sandbox{ID: id, Status: status, Image: "default", ImagePath: filepath.Join(images, "default"),
			CreatedAt: now, LastActiveAt: now, SleepAfter: time.Minute, Network: api.NetworkNone, Cwd: "/workspace"}
		if _, err := st.Create(ctx, rec, 0); err != nil {
			t.Fatal(err)
		}
	}
	rt := managertest.NewRuntime("", "half-created", "half-destroyed")
	m := manager.New(manager.Config{Store: st, Runtime: rt, ImagesDir: images, Metrics: metrics.New(prometheus.NewRegistry())})
	defer m.Close()
	if err := m.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"half-created", "half-destroyed"} {
		if _, err := m.Get(ctx, id); !errors.Is(err, errdefs.ErrSandboxNotFound) {
			t.Errorf("%s after recovery: %v, want it gone", id, err)
		}
		if rt.Running(id) {
			t.Errorf("%s: its container was left", id)
		}
	}
	for id, want := range map[string]string{"asleep": api.StatusSleeping, "was-running": api.StatusStopped} {
		if got := status(t, m, id); got != want {
			t.Errorf("%s after recovery: %s, want %s", id, got, want)
		}
	}
}
