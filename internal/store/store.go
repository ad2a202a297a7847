// Package store keeps the daemon's durable state in one SQLite file (WAL,
// synchronous writes): a record per sandbox with everything needed to start
// it again after a daemon restart. The files of a sandbox live elsewhere
// (the runtime's directory); this is the index of what exists.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, so the daemon stays static

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// Sandbox is a sandbox's record.
type Sandbox struct {
	ID     string
	Status string
	Image  string
	// ImagePath is the image's directory as resolved when the sandbox was
	// created: the sandbox keeps its image even if the name later points
	// to a newer build (its upper layer belongs to that lower layer).
	ImagePath    string
	CreatedAt    time.Time
	LastActiveAt time.Time
	SleepAfter   time.Duration
	KeepAlive    bool
	Resources    api.Resources
	Network      string
	Cwd          string
	Env          map[string]string
	Labels       map[string]string
	// UIDSlot numbers the sandbox's uid range; no two records share one.
	UIDSlot int
	// RuntimeName names the sandbox's container to the runtime (its runc
	// name, directory and cgroup); no two records share one. It is the ID
	// for a sandbox created as such, and the pool's name for one claimed
	// from the warm pool (see Claim).
	RuntimeName string
	// Pooled marks a warm-pool sandbox: started ahead, not yet claimed by
	// an ID. Get, List and the sandbox limit ignore pooled records.
	Pooled bool
}

// Store is the SQLite state file. It is safe for concurrent use.
type Store struct {
	db *sql.DB
}

const schema = `
CREATE TABLE IF NOT EXISTS sandboxes (
	id             TEXT PRIMARY KEY,
	status         TEXT NOT NULL,
	image          TEXT NOT NULL,
	created_at     INTEGER NOT NULL,
	last_active_at INTEGER NOT NULL,
	sleep_after_ms INTEGER NOT NULL,
	keep_alive     INTEGER NOT NULL,
	resources      TEXT NOT NULL,
	network        TEXT NOT NULL,
	cwd            TEXT NOT NULL,
	env            TEXT NOT NULL,
	labels         TEXT NOT NULL,
	uid_slot       INTEGER NOT NULL UNIQUE,
	image_path     TEXT NOT NULL,
	runtime_name   TEXT NOT NULL DEFAULT '',
	pooled         INTEGER NOT NULL DEFAULT 0
);`

// Open opens (creating if needed) the state file at path. The file is
// readable by root only (SQLite gives its -wal and -shm files the same
// mode): it holds sandboxes' environments.
func Open(path string) (*Store, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, err
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	// One connection: writes are serialized anyway, and it rules out
	// SQLITE_BUSY between our own connections.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	if err := migratePorts(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

const columns = `id, status, image, created_at, last_active_at, sleep_after_ms, keep_alive,
	resources, network, cwd, env, labels, uid_slot, image_path, runtime_name, pooled`

// Create inserts rec, giving it the lowest free UIDSlot (1 and up) and, if
// it has none, the RuntimeName rec.ID, and returns it as stored. An
// existing ID (or runtime name) gives an error wrapping
// errdefs.ErrConflict. max > 0 bounds the number of sandboxes: past it, an
// error wrapping errdefs.ErrResourceExhausted. Pooled records do not count
// against max for a sandbox, but a pooled rec is refused once sandboxes and
// pooled records together reach max.
func (s *Store) Create(ctx context.Context, rec Sandbox, max int) (Sandbox, error) {
	if rec.RuntimeName == "" {
		rec.RuntimeName = rec.ID
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return rec, err
	}
	defer tx.Rollback()
	if err := checkFreeID(ctx, tx, rec.ID); err != nil {
		return rec, err
	}
	if err := checkMax(ctx, tx, max, rec.Pooled); err != nil {
		return rec, err
	}
	err = tx.QueryRowContext(ctx, `
		SELECT MIN(s) FROM (SELECT 1 AS s UNION ALL SELECT uid_slot + 1 FROM sandboxes)
		WHERE s NOT IN (SELECT uid_slot FROM sandboxes)`).Scan(&rec.UIDSlot)
	if err != nil {
		return rec, fmt.Errorf("allocate uid range: %w", err)
	}
	if err := insert(ctx, tx, rec); err != nil {
		return rec, err
	}
	return rec, tx.Commit()
}

func insert(ctx context.Context, tx *sql.Tx, rec Sandbox) error {
	args, err := values(rec)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sandboxes (`+columns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, args...); err != nil {
		return fmt.Errorf("create sandbox %s: %w", rec.ID, err)
	}
	return nil
}

// checkFreeID returns an error wrapping errdefs.ErrConflict if a sandbox
// named id exists.
func checkFreeID(ctx context.Context, tx *sql.Tx, id string) error {
	var exists int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sandboxes WHERE id = ?`, id).Scan(&exists); err != nil {
		return err
	}
	if exists > 0 {
		return fmt.Errorf("sandbox %s: %w", id, errdefs.ErrConflict)
	}
	return nil
}

// Get returns the record of id, or an error wrapping
// errdefs.ErrSandboxNotFound.
func (s *Store) Get(ctx context.Context, id string) (Sandbox, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+columns+` FROM sandboxes WHERE id = ? AND pooled = 0`, id)
	rec, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		return rec, fmt.Errorf("sandbox %s: %w", id, errdefs.ErrSandboxNotFound)
	}
	return rec, err
}

// List returns every record but pooled ones, ordered by ID.
func (s *Store) List(ctx context.Context) ([]Sandbox, error) {
	return s.list(ctx, false)
}

func (s *Store) list(ctx context.Context, pooled bool) ([]Sandbox, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+columns+` FROM sandboxes WHERE pooled = ? ORDER BY id`, pooled)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Sandbox
	for rows.Next() {
		rec, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}

// Update applies fn to the record of id (pooled or not) and stores the
// result, in one transaction. fn must not change ID, UIDSlot, RuntimeName
// or Pooled.
func (s *Store) Update(ctx context.Context, id string, fn func(*Sandbox) error) (Sandbox, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Sandbox{}, err
	}
	defer tx.Rollback()
	rec, err := scan(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM sandboxes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return rec, fmt.Errorf("sandbox %s: %w", id, errdefs.ErrSandboxNotFound)
	}
	if err != nil {
		return rec, err
	}
	if err := fn(&rec); err != nil {
		return rec, err
	}
	rec.ID = id
	args, err := values(rec)
	if err != nil {
		return rec, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE sandboxes SET status=?, image=?, created_at=?, last_active_at=?,
		sleep_after_ms=?, keep_alive=?, resources=?, network=?, cwd=?, env=?, labels=?, image_path=? WHERE id=?`,
		append(slices.Clone(args[1:12]), rec.ImagePath, id)...)
	if err != nil {
		return rec, fmt.Errorf("update sandbox %s: %w", id, err)
	}
	return rec, tx.Commit()
}

// SaveActivity sets the lastActiveAt of each ID in active to its time, in
// one transaction (one disk sync for all of them), where that is later than
// the stored one: a value that arrives late never moves a record back. IDs
// without a record (destroyed meanwhile) are skipped.
func (s *Store) SaveActivity(ctx context.Context, active map[string]time.Time) error {
	if len(active) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `UPDATE sandboxes SET last_active_at = ?1 WHERE id = ?2 AND last_active_at < ?1`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for id, t := range active {
		if _, err := stmt.ExecContext(ctx, t.UnixMilli(), id); err != nil {
			return fmt.Errorf("save activity of %s: %w", id, err)
		}
	}
	return tx.Commit()
}

// Delete removes the record of id, with its exposed ports. Deleting a
// missing record is no error.
func (s *Store) Delete(ctx context.Context, id string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM ports WHERE sandbox_id = ?`, id); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM sandboxes WHERE id = ?`, id); err != nil {
		return err
	}
	return tx.Commit()
}

func values(r Sandbox) ([]any, error) {
	res, err := json.Marshal(r.Resources)
	if err != nil {
		return nil, err
	}
	env, err := json.Marshal(nonNil(r.Env))
	if err != nil {
		return nil, err
	}
	labels, err := json.Marshal(nonNil(r.Labels))
	if err != nil {
		return nil, err
	}
	return []any{r.ID, r.Status, r.Image, r.CreatedAt.UnixMilli(), r.LastActiveAt.UnixMilli(),
		r.SleepAfter.Milliseconds(), r.KeepAlive, string(res), r.Network, r.Cwd, string(env), string(labels), r.UIDSlot, r.ImagePath,
		r.RuntimeName, r.Pooled}, nil
}

type scanner interface{ Scan(dest ...any) error }

func scan(row scanner) (Sandbox, error) {
	var r Sandbox
	var created, active, sleepMs int64
	var res, env, labels string
	err := row.Scan(&r.ID, &r.Status, &r.Image, &created, &active, &sleepMs, &r.KeepAlive,
		&res, &r.Network, &r.Cwd, &env, &labels, &r.UIDSlot, &r.ImagePath, &r.RuntimeName, &r.Pooled)
	if err != nil {
		return r, err
	}
	r.CreatedAt, r.LastActiveAt = time.UnixMilli(created).UTC(), time.UnixMilli(active).UTC()
	r.SleepAfter = time.Duration(sleepMs) * time.Millisecond
	if err := json.Unmarshal([]byte(res), &r.Resources); err != nil {
		return r, fmt.Errorf("sandbox %s resources: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(env), &r.Env); err != nil {
		return r, fmt.Errorf("sandbox %s env: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(labels), &r.Labels); err != nil {
		return r, fmt.Errorf("sandbox %s labels: %w", r.ID, err)
	}
	return r, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
