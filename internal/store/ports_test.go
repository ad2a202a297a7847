package store_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
	"github.com/sandboxd/sandboxd/internal/store"
)

func TestPorts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	rec := store.Sandbox{ID: "a", Status: api.StatusRunning, Image: "default", CreatedAt: now, LastActiveAt: now, Network: "none"}
	if _, err := s.Create(ctx, rec, 0); err != nil {
		t.Fatal(err)
	}
	rec.ID = "b"
	if _, err := s.Create(ctx, rec, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPort(ctx, "a", 8000); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("get of a port never exposed: %v, want ErrNotFound", err)
	}
	p := store.Port{SandboxID: "a", Port: 8000, Name: "web", Token: "tok", Instance: "1:2", CreatedAt: now}
	for _, q := range []store.Port{p, {SandboxID: "a", Port: 3001, Token: "t2", CreatedAt: now}, {SandboxID: "b", Port: 8000, Token: "t3", CreatedAt: now}} {
		if err := s.PutPort(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	p.Instance = "3:4" // replace
	if err := s.PutPort(ctx, p); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = store.Open(path); err != nil { // ports survive a reopen
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.GetPort(ctx, "a", 8000)
	if err != nil || got != p {
		t.Fatalf("get = %+v, %v; want %+v", got, err, p)
	}
	list, err := s.ListPorts(ctx, "a")
	if err != nil || len(list) != 2 || list[0].Port != 3001 || list[1].Port != 8000 {
		t.Fatalf("list = %+v, %v; want ports 3001, 8000", list, err)
	}
	if err := s.DeletePort(ctx, "a", 3001); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePort(ctx, "a", 3001); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	// Destroying a sandbox forgets its ports, and only its own.
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.ListPorts(ctx, "a"); len(list) != 0 {
		t.Errorf("ports of a deleted sandbox remain: %+v", list)
	}
	if _, err := s.GetPort(ctx, "b", 8000); err != nil {
		t.Errorf("port of another sandbox: %v", err)
	}
}

// TestPortsMigration opens a state file written before exposed ports
// existed.
func TestPortsMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE sandboxes (id TEXT PRIMARY KEY, status TEXT NOT NULL, image TEXT NOT NULL,
		created_at INTEGER NOT NULL, last_active_at INTEGER NOT NULL, sleep_after_ms INTEGER NOT NULL,
		keep_alive INTEGER NOT NULL, resources TEXT NOT NULL, network TEXT NOT NULL, cwd TEXT NOT NULL,
		env TEXT NOT NULL, labels TEXT NOT NULL, uid_slot INTEGER NOT NULL UNIQUE, image_path TEXT NOT NULL);
		INSERT INTO sandboxes VALUES ('old', 'stopped', 'default', 0, 0, 0, 0, '{}', 'none', '/workspace', '{}', '{}', 1, '/img');
		PRAGMA user_version = 1;`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Get(ctx, "old"); err != nil {
		t.Fatalf("old record: %v", err)
	}
	if err := s.PutPort(ctx, store.Port{SandboxID: "old", Port: 8080, Token: "x"}); err != nil {
		t.Fatalf("expose on a migrated file: %v", err)
	}
}
