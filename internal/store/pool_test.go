package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/store"
)

func open(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func record(id string, pooled bool) store.Sandbox {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return store.Sandbox{ID: id, Status: api.StatusRunning, Image: "default", ImagePath: "/images/default-1",
		CreatedAt: now, LastActiveAt: now, SleepAfter: time.Minute, Network: "none", Cwd: "/workspace", Pooled: pooled}
}

func TestClaim(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	p, err := s.Create(ctx, record("pool.1", true), 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.RuntimeName != "pool.1" {
		t.Errorf("runtime name = %q, want the ID", p.RuntimeName)
	}
	// Pooled records are invisible to Get and List.
	if _, err := s.Get(ctx, "pool.1"); !errors.Is(err, errdefs.ErrSandboxNotFound) {
		t.Errorf("get pooled: %v, want not found", err)
	}
	if l, err := s.List(ctx); err != nil || len(l) != 0 {
		t.Errorf("list = %v, %v; want none", l, err)
	}
	if l, err := s.ListPooled(ctx); err != nil || len(l) != 1 || l[0].ID != "pool.1" || !l[0].Pooled {
		t.Errorf("list pooled = %+v, %v", l, err)
	}

	want := record("demo", false)
	want.Env, want.Labels, want.KeepAlive, want.ImagePath = map[string]string{"K": "v"}, map[string]string{"a": "b"}, true, "ignored"
	got, err := s.Claim(ctx, "pool.1", want, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "demo" || got.RuntimeName != "pool.1" || got.UIDSlot != p.UIDSlot || got.ImagePath != p.ImagePath || got.Pooled {
		t.Errorf("claimed = %+v", got)
	}
	stored, err := s.Get(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if stored.RuntimeName != "pool.1" || stored.UIDSlot != p.UIDSlot || stored.Env["K"] != "v" || !stored.KeepAlive || stored.Labels["a"] != "b" {
		t.Errorf("stored = %+v", stored)
	}
	if l, _ := s.ListPooled(ctx); len(l) != 0 {
		t.Errorf("pool after claim = %+v", l)
	}
	// A claimed record cannot be claimed again.
	if _, err := s.Claim(ctx, "pool.1", record("other", false), 0); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second claim: %v, want not found", err)
	}
	// A sandbox's runtime name stays its own: a new one with the pooled
	// container's name is refused, not given the same container.
	if _, err := s.Create(ctx, record("pool.1", true), 0); err == nil {
		t.Errorf("create with a taken runtime name succeeded")
	}
}

func TestClaimErrorsChangeNothing(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if _, err := s.Create(ctx, record("pool.1", true), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, record("taken", false), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "pool.1", record("taken", false), 0); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("claim for an existing ID: %v, want conflict", err)
	}
	if _, err := s.Claim(ctx, "pool.1", record("new", false), 1); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Errorf("claim past the maximum: %v, want resource exhausted", err)
	}
	if _, err := s.Claim(ctx, "pool.2", record("new", false), 0); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("claim of a missing pooled record: %v, want not found", err)
	}
	if l, _ := s.ListPooled(ctx); len(l) != 1 {
		t.Errorf("pool after failed claims = %+v", l)
	}
	if _, err := s.Get(ctx, "new"); !errors.Is(err, errdefs.ErrSandboxNotFound) {
		t.Errorf("failed claim left a record: %v", err)
	}
}

// The pool never pushes a sandbox's create past the maximum: pooled records
// do not count for sandboxes, but do for more pooled records.
func TestMaxCountsPooledApart(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	for i := range 2 {
		if _, err := s.Create(ctx, record(fmt.Sprintf("pool.%d", i), true), 2); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, record("pool.x", true), 2); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Errorf("third pooled record with max 2: %v, want resource exhausted", err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := s.Create(ctx, record(id, false), 2); err != nil {
			t.Errorf("create %s with a full pool: %v", id, err)
		}
	}
	if _, err := s.Create(ctx, record("c", false), 2); !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Errorf("third sandbox with max 2: %v, want resource exhausted", err)
	}
	n, p, err := s.Count(ctx)
	if err != nil || n != 2 || p != 2 {
		t.Errorf("count = %d, %d, %v; want 2, 2", n, p, err)
	}
}

// Concurrent claims of one pooled record: exactly one wins.
func TestClaimRace(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	if _, err := s.Create(ctx, record("pool.1", true), 0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() { _, errs[i] = s.Claim(ctx, "pool.1", record(fmt.Sprintf("s%d", i), false), 0) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, errdefs.ErrNotFound):
			t.Errorf("claim: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d claims won, want 1", won)
	}
}

// A state file of schema version 1 (no runtime names) opens with every
// sandbox's runtime name set to its ID.
func TestMigrateV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`CREATE TABLE sandboxes (
	id TEXT PRIMARY KEY, status TEXT NOT NULL, image TEXT NOT NULL, created_at INTEGER NOT NULL,
	last_active_at INTEGER NOT NULL, sleep_after_ms INTEGER NOT NULL, keep_alive INTEGER NOT NULL,
	resources TEXT NOT NULL, network TEXT NOT NULL, cwd TEXT NOT NULL, env TEXT NOT NULL,
	labels TEXT NOT NULL, uid_slot INTEGER NOT NULL UNIQUE, image_path TEXT NOT NULL);
	PRAGMA user_version = 1;
	INSERT INTO sandboxes VALUES ('old', 'running', 'default', 0, 0, 600000, 0, '{}', 'none', '/workspace', '{}', '{}', 1, '/img');`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // and again: migrating is idempotent
		s, err := store.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(context.Background(), "old")
		if err != nil || got.RuntimeName != "old" || got.Pooled || got.UIDSlot != 1 {
			t.Errorf("migrated record = %+v, %v", got, err)
		}
		s.Close()
	}
}
