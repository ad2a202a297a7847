package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// schemaVersion is the state file's user_version once migrate has run.
const schemaVersion = 2

// migrate brings a state file written by an older daemon up to the current
// schema. It is idempotent: it adds only the columns that are missing.
//
// Version 2 adds runtime_name (backfilled with the ID: until then the ID
// named the container) and pooled, and makes runtime names unique.
func migrate(db *sql.DB) error {
	have := map[string]bool{}
	rows, err := db.Query(`SELECT name FROM pragma_table_info('sandboxes')`)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fmt.Errorf("migrate: %w", err)
		}
		have[name] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	tx, err := db.Begin()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	stmts := []string{}
	if !have["runtime_name"] {
		stmts = append(stmts, `ALTER TABLE sandboxes ADD COLUMN runtime_name TEXT NOT NULL DEFAULT ''`)
	}
	if !have["pooled"] {
		stmts = append(stmts, `ALTER TABLE sandboxes ADD COLUMN pooled INTEGER NOT NULL DEFAULT 0`)
	}
	stmts = append(stmts,
		`UPDATE sandboxes SET runtime_name = id WHERE runtime_name = ''`,
		`CREATE UNIQUE INDEX IF NOT EXISTS sandboxes_runtime_name ON sandboxes(runtime_name)`,
		fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion))
	for _, st := range stmts {
		if _, err := tx.Exec(st); err != nil {
			return fmt.Errorf("migrate: %s: %w", st, err)
		}
	}
	return tx.Commit()
}

// checkMax refuses one more record past max (see Create).
func checkMax(ctx context.Context, tx *sql.Tx, max int, pooled bool) error {
	if max <= 0 {
		return nil
	}
	q := `SELECT COUNT(*) FROM sandboxes WHERE pooled = 0`
	if pooled {
		q = `SELECT COUNT(*) FROM sandboxes`
	}
	var n int
	if err := tx.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return err
	}
	if n >= max {
		return fmt.Errorf("%w: the daemon holds its maximum of %d sandboxes", errdefs.ErrResourceExhausted, max)
	}
	return nil
}

// ListPooled returns the pooled records, ordered by ID (their runtime
// name).
func (s *Store) ListPooled(ctx context.Context) ([]Sandbox, error) {
	return s.list(ctx, true)
}

// Count returns the number of sandboxes and of pooled records.
func (s *Store) Count(ctx context.Context) (sandboxes, pooled int, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*) FILTER (WHERE pooled = 0), COUNT(*) FILTER (WHERE pooled = 1) FROM sandboxes`).Scan(&sandboxes, &pooled)
	return sandboxes, pooled, err
}

// Claim turns the pooled record poolID into the sandbox rec, in one
// transaction: rec takes the pooled record's UIDSlot, RuntimeName and
// ImagePath (its running container), everything else is rec's. It returns
// the record as stored.
//
// Errors: an existing rec.ID wraps errdefs.ErrConflict; a missing (or
// already claimed) poolID wraps errdefs.ErrNotFound; past max sandboxes
// (max > 0, as in Create), errdefs.ErrResourceExhausted. On error nothing
// changed.
func (s *Store) Claim(ctx context.Context, poolID string, rec Sandbox, max int) (Sandbox, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return rec, err
	}
	defer tx.Rollback()
	if err := checkFreeID(ctx, tx, rec.ID); err != nil {
		return rec, err
	}
	if err := checkMax(ctx, tx, max, false); err != nil {
		return rec, err
	}
	pool, err := scan(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM sandboxes WHERE id = ? AND pooled = 1`, poolID))
	if errors.Is(err, sql.ErrNoRows) {
		return rec, fmt.Errorf("pooled sandbox %s: %w", poolID, errdefs.ErrNotFound)
	}
	if err != nil {
		return rec, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM sandboxes WHERE id = ?`, poolID); err != nil {
		return rec, fmt.Errorf("claim %s: %w", poolID, err)
	}
	rec.UIDSlot, rec.RuntimeName, rec.ImagePath, rec.Pooled = pool.UIDSlot, pool.RuntimeName, pool.ImagePath, false
	if err := insert(ctx, tx, rec); err != nil {
		return rec, err
	}
	return rec, tx.Commit()
}
