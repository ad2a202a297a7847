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

// migrate creates the tables a state file lacks and brings one written by
// an older daemon up to the current schema. It is idempotent: it adds only
// the columns that are missing.
//
// Version 2 adds runtime_name (backfilled with the ID: until then the ID
// named the container) and pooled, and makes runtime names unique.
func migrate(db *sql.DB) error {
	if _, err := db.Exec(schema + portsSchema); err != nil {
		return err
	}
	tx, err := db.Begin()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	var stmts []string
	for _, col := range [][2]string{{"runtime_name", "TEXT NOT NULL DEFAULT ''"}, {"pooled", "INTEGER NOT NULL DEFAULT 0"}} {
		var n int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM pragma_table_info('sandboxes') WHERE name = ?`, col[0]).Scan(&n); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if n == 0 {
			stmts = append(stmts, `ALTER TABLE sandboxes ADD COLUMN `+col[0]+` `+col[1])
		}
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

// ListPooled returns the pooled records, ordered by ID (their runtime
// name).
func (s *Store) ListPooled(ctx context.Context) ([]Sandbox, error) {
	return query(ctx, s.db, scan, `SELECT `+columns+` FROM sandboxes WHERE pooled = 1 ORDER BY id`)
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
	rec.Pooled = false
	err := s.add(ctx, &rec, max, func(tx *sql.Tx) error {
		pool, err := scan(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM sandboxes WHERE id = ? AND pooled = 1`, poolID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("pooled sandbox %s: %w", poolID, errdefs.ErrNotFound)
		}
		if err != nil {
			return err
		}
		rec.UIDSlot, rec.RuntimeName, rec.ImagePath = pool.UIDSlot, pool.RuntimeName, pool.ImagePath
		if _, err := tx.ExecContext(ctx, `DELETE FROM sandboxes WHERE id = ?`, poolID); err != nil {
			return fmt.Errorf("claim %s: %w", poolID, err)
		}
		return nil
	})
	return rec, err
}
