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
// existing ID gives an error wrapping errdefs.ErrConflict; an existing
// runtime name, an error. max > 0 bounds the number of sandboxes: past it,
// an error wrapping errdefs.ErrResourceExhausted. Pooled records do not
// count against max for a sandbox, but a pooled rec is refused once
// sandboxes and pooled records together reach max.
func (s *Store) Create(ctx context.Context, rec Sandbox, max int) (Sandbox, error) {
	if rec.RuntimeName == "" {
		rec.RuntimeName = rec.ID
	}
	err := s.add(ctx, &rec, max, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `
			SELECT MIN(s) FROM (SELECT 1 AS s UNION ALL SELECT uid_slot + 1 FROM sandboxes)
			WHERE s NOT IN (SELECT uid_slot FROM sandboxes)`).Scan(&rec.UIDSlot)
		if err != nil {
			return fmt.Errorf("allocate uid range: %w", err)
		}
		return nil
	})
	return rec, err
}

// add inserts rec in one transaction, once its ID is found free, max not
// reached (see Create) and prepare, which may set rec's fields, succeeded.
func (s *Store) add(ctx context.Context, rec *Sandbox, max int, prepare func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var exists, n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sandboxes WHERE id = ?`, rec.ID).Scan(&exists); err != nil {
		return err
	}
	if exists > 0 {
		return fmt.Errorf("sandbox %s: %w", rec.ID, errdefs.ErrConflict)
	}
	if max > 0 {
		// A sandbox counts sandboxes; a pooled record counts all records.
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sandboxes WHERE pooled = 0 OR ?`, rec.Pooled).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return fmt.Errorf("%w: the daemon holds its maximum of %d sandboxes", errdefs.ErrResourceExhausted, max)
		}
	}
	if err := prepare(tx); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sandboxes (`+columns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, values(*rec)...); err != nil {
		return fmt.Errorf("create sandbox %s: %w", rec.ID, err)
	}
	return tx.Commit()
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
	return query(ctx, s.db, scan, `SELECT `+columns+` FROM sandboxes WHERE pooled = 0 ORDER BY id`)
}

// query returns the rows of q, each read by scanRow.
func query[T any](ctx context.Context, db *sql.DB, scanRow func(scanner) (T, error), q string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scanRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
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
	args := values(rec)
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

// values returns r's columns, in the order of columns.
func values(r Sandbox) []any {
	// Marshalling numbers and maps of strings cannot fail.
	res, _ := json.Marshal(r.Resources)
	env, _ := json.Marshal(nonNil(r.Env))
	labels, _ := json.Marshal(nonNil(r.Labels))
	return []any{r.ID, r.Status, r.Image, r.CreatedAt.UnixMilli(), r.LastActiveAt.UnixMilli(),
		r.SleepAfter.Milliseconds(), r.KeepAlive, string(res), r.Network, r.Cwd, string(env), string(labels), r.UIDSlot, r.ImagePath,
		r.RuntimeName, r.Pooled}
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
