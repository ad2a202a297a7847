package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sandboxd/sandboxd/internal/errdefs"
)

// Port is an exposed port of a sandbox: the record behind its preview URL.
type Port struct {
	SandboxID string
	Port      int
	Name      string
	// Token is the preview URL's token.
	Token string
	// Instance names the container the port was exposed in (see
	// manager's incarnation): a preview URL is stale once the sandbox
	// runs in another container.
	Instance  string
	CreatedAt time.Time
}

// portsSchema is created on open (migrate); on a state file from before
// exposed ports existed, it is the whole migration.
const portsSchema = `
CREATE TABLE IF NOT EXISTS ports (
	sandbox_id TEXT NOT NULL,
	port       INTEGER NOT NULL,
	name       TEXT NOT NULL,
	token      TEXT NOT NULL,
	instance   TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (sandbox_id, port)
);`

const portColumns = `sandbox_id, port, name, token, instance, created_at`

// PutPort inserts or replaces the record of p.SandboxID's port p.Port.
func (s *Store) PutPort(ctx context.Context, p Port) error {
	_, err := s.db.ExecContext(ctx, `INSERT OR REPLACE INTO ports (`+portColumns+`) VALUES (?,?,?,?,?,?)`,
		p.SandboxID, p.Port, p.Name, p.Token, p.Instance, p.CreatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("expose port %d of %s: %w", p.Port, p.SandboxID, err)
	}
	return nil
}

// GetPort returns the record of id's exposed port, or an error wrapping
// errdefs.ErrNotFound if it is not exposed.
func (s *Store) GetPort(ctx context.Context, id string, port int) (Port, error) {
	p, err := scanPort(s.db.QueryRowContext(ctx, `SELECT `+portColumns+` FROM ports WHERE sandbox_id = ? AND port = ?`, id, port))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("port %d of sandbox %s is not exposed: %w", port, id, errdefs.ErrNotFound)
	}
	return p, err
}

// ListPorts returns id's exposed ports, ordered by port.
func (s *Store) ListPorts(ctx context.Context, id string) ([]Port, error) {
	return query(ctx, s.db, scanPort, `SELECT `+portColumns+` FROM ports WHERE sandbox_id = ? ORDER BY port`, id)
}

// DeletePort removes the record of id's exposed port. Deleting one that
// is not there is no error.
func (s *Store) DeletePort(ctx context.Context, id string, port int) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM ports WHERE sandbox_id = ? AND port = ?`, id, port)
	return err
}

func scanPort(row scanner) (Port, error) {
	var p Port
	var created int64
	err := row.Scan(&p.SandboxID, &p.Port, &p.Name, &p.Token, &p.Instance, &created)
	p.CreatedAt = time.UnixMilli(created).UTC()
	return p, err
}
