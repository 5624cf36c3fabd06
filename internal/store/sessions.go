package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"atelier/desktop"
)

// sessionsSchema holds one row per session: what the fleet wants of it
// (desired state, theme) and what it was created with. What actually runs is
// the runtime's to say; the store is the fleet's memory across restarts.
const sessionsSchema = `
CREATE TABLE IF NOT EXISTS sessions (
	id          TEXT PRIMARY KEY,
	label       TEXT NOT NULL,
	theme       TEXT NOT NULL,
	width       INTEGER NOT NULL,
	height      INTEGER NOT NULL,
	desired     TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),
	runtime     TEXT NOT NULL,
	snapshot_id TEXT NOT NULL DEFAULT '',
	egress      TEXT NOT NULL DEFAULT '',
	created_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL
);`

// Desired states of a session.
const (
	DesiredRunning = "running"
	DesiredStopped = "stopped"
)

// ErrSessionNotFound is returned for a session id the store has no row for.
var ErrSessionNotFound = errors.New("session not found")

// Session is one row of the sessions table.
type Session struct {
	ID         string
	Label      string
	Theme      string
	Resolution desktop.Resolution
	Desired    string // DesiredRunning or DesiredStopped
	Runtime    string
	SnapshotID string
	// Egress is the session's own egress policy (JSON), "" for the fleet's.
	Egress    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

const sessionColumns = `id, label, theme, width, height, desired, runtime, snapshot_id, egress, created_at, updated_at`

// sessionsUpgrade adds what later versions added to a database an earlier
// one made; a column that exists is left alone.
var sessionsUpgrade = []column{{"sessions", "egress", `TEXT NOT NULL DEFAULT ''`}}

// InsertSession records a new session.
func (s *Store) InsertSession(ctx context.Context, se Session) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
		se.ID, se.Label, se.Theme, se.Resolution.Width, se.Resolution.Height, se.Desired, se.Runtime,
		se.SnapshotID, se.Egress, encodeTaskTime(se.CreatedAt), encodeTaskTime(se.UpdatedAt))
	if err != nil {
		return fmt.Errorf("insert session %s: %w", se.ID, err)
	}
	return nil
}

// GetSession returns one session, or ErrSessionNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (Session, error) {
	se, err := scanSession(s.db.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrSessionNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("get session %s: %w", id, err)
	}
	return se, nil
}

// ListSessions returns every session, oldest first.
func (s *Store) ListSessions(ctx context.Context) ([]Session, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		se, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		out = append(out, se)
	}
	return out, rows.Err()
}

// SetSessionDesired records whether the session should run.
func (s *Store) SetSessionDesired(ctx context.Context, id, desired string, now time.Time) error {
	return s.updateSession(ctx, id, `desired=?`, desired, now)
}

// SetSessionTheme records the session's theme.
func (s *Store) SetSessionTheme(ctx context.Context, id, theme string, now time.Time) error {
	return s.updateSession(ctx, id, `theme=?`, theme, now)
}

func (s *Store) updateSession(ctx context.Context, id, set string, value any, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET `+set+`, updated_at=? WHERE id=?`, value, encodeTaskTime(now), id)
	if err != nil {
		return fmt.Errorf("update session %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrSessionNotFound
	}
	return nil
}

// DeleteSession removes a session's row.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id=?`, id)
	if err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrSessionNotFound
	}
	return nil
}

func scanSession(r taskScanner) (Session, error) {
	var se Session
	var created, updated string
	err := r.Scan(&se.ID, &se.Label, &se.Theme, &se.Resolution.Width, &se.Resolution.Height, &se.Desired,
		&se.Runtime, &se.SnapshotID, &se.Egress, &created, &updated)
	if err != nil {
		return Session{}, err
	}
	se.CreatedAt, se.UpdatedAt = decodeTaskTime(created), decodeTaskTime(updated)
	return se, nil
}
