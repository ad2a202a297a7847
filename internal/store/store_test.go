package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/store"
)

func TestCreateGetUpdateDelete(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	rec := store.Sandbox{ID: "a", Status: api.StatusCreating, Image: "default", CreatedAt: now, LastActiveAt: now,
		SleepAfter: 10 * time.Minute, Resources: api.Resources{MemoryMB: 512}, Network: "none", Cwd: "/workspace",
		Env: map[string]string{"K": "v"}, Labels: map[string]string{"team": "x"}, ImagePath: "/images/default-abc"}
	a, err := s.Create(ctx, rec, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.UIDSlot != 1 {
		t.Errorf("first slot = %d, want 1", a.UIDSlot)
	}
	if _, err := s.Create(ctx, rec, 0); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("duplicate create: %v, want ErrConflict", err)
	}
	rec.ID = "b"
	b, _ := s.Create(ctx, rec, 0)
	rec.ID = "c"
	c, _ := s.Create(ctx, rec, 0)
	if b.UIDSlot != 2 || c.UIDSlot != 3 {
		t.Errorf("slots %d %d, want 2 3", b.UIDSlot, c.UIDSlot)
	}
	if err := s.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	rec.ID = "d"
	d, _ := s.Create(ctx, rec, 0)
	if d.UIDSlot != 2 {
		t.Errorf("freed slot not reused: got %d, want 2", d.UIDSlot)
	}

	if _, err := s.Update(ctx, "a", func(r *store.Sandbox) error { r.Status = api.StatusRunning; r.KeepAlive = true; return nil }); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Everything survives a reopen (a daemon restart).
	s, err = store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != api.StatusRunning || !got.KeepAlive || got.Env["K"] != "v" || got.Labels["team"] != "x" ||
		got.Resources.MemoryMB != 512 || !got.CreatedAt.Equal(now) || got.SleepAfter != 10*time.Minute || got.UIDSlot != 1 || got.ImagePath != "/images/default-abc" {
		t.Errorf("reopened record = %+v", got)
	}
	if _, err := s.Get(ctx, "b"); !errors.Is(err, errdefs.ErrSandboxNotFound) {
		t.Errorf("get deleted: %v", err)
	}
	if _, err := s.Update(ctx, "b", func(*store.Sandbox) error { return nil }); !errors.Is(err, errdefs.ErrSandboxNotFound) {
		t.Errorf("update deleted: %v", err)
	}
	rec.ID = "e"
	if _, err := s.Create(ctx, rec, 3); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Errorf("create past the slot limit: %v", err)
	}
	all, err := s.List(ctx)
	if err != nil || len(all) != 3 || all[0].ID != "a" || all[2].ID != "d" {
		t.Errorf("list = %v, %v", all, err)
	}
}

// SaveActivity writes many records' lastActiveAt at once, only forward,
// and skips IDs without a record.
func TestSaveActivity(t *testing.T) {
	ctx := context.Background()
	s, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	for _, id := range []string{"a", "b", "c"} {
		rec := store.Sandbox{ID: id, Status: api.StatusRunning, Image: "default", CreatedAt: t0, LastActiveAt: t0, Network: "none", Cwd: "/workspace"}
		if _, err := s.Create(ctx, rec, 0); err != nil {
			t.Fatal(err)
		}
	}
	later, earlier := t0.Add(90*time.Second), t0.Add(-time.Hour)
	if err := s.SaveActivity(ctx, map[string]time.Time{"a": later, "b": earlier, "gone": later}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]time.Time{"a": later, "b": t0, "c": t0} {
		rec, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !rec.LastActiveAt.Equal(want) {
			t.Errorf("%s: lastActiveAt %v, want %v", id, rec.LastActiveAt, want)
		}
	}
	if _, err := s.Get(ctx, "gone"); !errors.Is(err, errdefs.ErrSandboxNotFound) {
		t.Errorf("activity of a missing ID made a record: %v", err)
	}
	if err := s.SaveActivity(ctx, nil); err != nil {
		t.Errorf("nothing to save: %v", err)
	}
}
