package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"atelier/desktop"
)

// sessionsSchemaV1 holds one row per session: what the fleet wants of it
// (desired state, theme) and what it was created with. What actually runs is
// the runtime's to say; the store is the fleet's memory across restarts. It
// is the table as schema version 1 made it; later changes are migrations
// (migrate.go).
const sessionsSchemaV1 = `
CREATE TABLE IF NOT EXISTS sessions (
	id          TEXT PRIMARY KEY,
	label       TEXT NOT NULL,
	theme       TEXT NOT NULL,
	width       INTEGER NOT NULL,
	height      INTEGER NOT NULL,
	desired     TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),
	runtime     TEXT NOT NULL,
	snapshot_id TEXT NOT NULL DEFAULT '',
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

// InsertSession records a new session.
func (s *Store) InsertSession(ctx context.Context, se Session) error {
	return s.AdmitSession(ctx, se, 0)
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
	return s.updateSession(ctx, id, `desired=?`, now, desired)
}

// SetSessionTheme records the session's theme.
func (s *Store) SetSessionTheme(ctx context.Context, id, theme string, now time.Time) error {
	return s.updateSession(ctx, id, `theme=?`, now, theme)
}

// SetSessionResolution records the session's output size.
func (s *Store) SetSessionResolution(ctx context.Context, id string, r desktop.Resolution, now time.Time) error {
	return s.updateSession(ctx, id, `width=?, height=?`, now, r.Width, r.Height)
}

// updateSession sets columns of a session: set has one ? per value.
func (s *Store) updateSession(ctx context.Context, id, set string, now time.Time, values ...any) error {
	res, err := s.db.ExecContext(ctx, `UPDATE sessions SET `+set+`, updated_at=? WHERE id=?`, append(values, encodeTaskTime(now), id)...)
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

// ErrLimit is returned when admitting a session would take the running
// sessions past their limit.
var ErrLimit = errors.New("session limit reached")

// countRunning counts the sessions that should run.
const countRunning = `SELECT count(*) FROM sessions WHERE desired='running'`

// admit runs do in one transaction, after checking that fewer than limit
// sessions should run (0: no limit). The transaction takes the write lock
// at BEGIN (_txlock=immediate), so concurrent admissions serialize and
// never overshoot, even across processes.
func (s *Store) admit(ctx context.Context, limit int, do func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if limit > 0 {
		var n int
		if err := tx.QueryRowContext(ctx, countRunning).Scan(&n); err != nil {
			return err
		}
		if n >= limit {
			return fmt.Errorf("%w: %d of %d sessions are running", ErrLimit, n, limit)
		}
	}
	if err := do(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// AdmitSession records a new session that should run, unless limit
// sessions (0: no limit) should run already: then ErrLimit and nothing
// is recorded.
func (s *Store) AdmitSession(ctx context.Context, se Session, limit int) error {
	err := s.admit(ctx, limit, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
			se.ID, se.Label, se.Theme, se.Resolution.Width, se.Resolution.Height, se.Desired, se.Runtime,
			se.SnapshotID, se.Egress, encodeTaskTime(se.CreatedAt), encodeTaskTime(se.UpdatedAt))
		return err
	})
	if err != nil && !errors.Is(err, ErrLimit) {
		return fmt.Errorf("insert session %s: %w", se.ID, err)
	}
	return err
}

// AdmitStart records that a stopped session should run, unless limit
// sessions (0: no limit) should run already (ErrLimit). A session that
// should run already is left as it is.
func (s *Store) AdmitStart(ctx context.Context, id string, limit int, now time.Time) error {
	se, err := s.GetSession(ctx, id)
	if err != nil || se.Desired == DesiredRunning {
		return err
	}
	err = s.admit(ctx, limit, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sessions SET desired='running', updated_at=? WHERE id=?`, encodeTaskTime(now), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrSessionNotFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrLimit) && !errors.Is(err, ErrSessionNotFound) {
		return fmt.Errorf("start session %s: %w", id, err)
	}
	return err
}

// EmbedGeneration returns the generation of session id's embed tokens:
// tokens minted for an older one are revoked.
func (s *Store) EmbedGeneration(ctx context.Context, id string) (uint64, error) {
	var g uint64
	err := s.db.QueryRowContext(ctx, `SELECT embed_generation FROM sessions WHERE id=?`, id).Scan(&g)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrSessionNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("embed generation of %s: %w", id, err)
	}
	return g, nil
}

// RevokeEmbedTokens moves session id to the next generation of embed
// tokens, revoking every one minted before, and returns it.
func (s *Store) RevokeEmbedTokens(ctx context.Context, id string, now time.Time) (uint64, error) {
	var g uint64
	err := s.db.QueryRowContext(ctx, `UPDATE sessions SET embed_generation=embed_generation+1, updated_at=? WHERE id=? RETURNING embed_generation`,
		encodeTaskTime(now), id).Scan(&g)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrSessionNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("revoke embed tokens of %s: %w", id, err)
	}
	return g, nil
}
