package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// consoleSchemaV5 holds the console's sign-ins. Only hashes are kept: the
// cookie's secret never rests on disk, and token_hash ties a sign-in to
// the API token it was made with, so changing that token ends it.
const consoleSchemaV5 = `
CREATE TABLE console_sessions (
	id_hash    TEXT PRIMARY KEY,
	csrf       TEXT NOT NULL,
	token_hash TEXT NOT NULL,
	expires_at TEXT NOT NULL
);`

// ErrConsoleSessionNotFound is returned for a sign-in that does not exist
// (signed out, expired, or never made).
var ErrConsoleSessionNotFound = errors.New("console session not found")

// ConsoleSession is one sign-in.
type ConsoleSession struct {
	IDHash    string
	CSRF      string
	TokenHash string
	ExpiresAt time.Time
}

// InsertConsoleSession records a sign-in and drops expired ones.
func (s *Store) InsertConsoleSession(ctx context.Context, cs ConsoleSession, now time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM console_sessions WHERE expires_at <= ?`, encodeTaskTime(now)); err != nil {
		return fmt.Errorf("prune console sessions: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO console_sessions (id_hash, csrf, token_hash, expires_at) VALUES (?,?,?,?)`,
		cs.IDHash, cs.CSRF, cs.TokenHash, encodeTaskTime(cs.ExpiresAt)); err != nil {
		return fmt.Errorf("insert console session: %w", err)
	}
	return nil
}

// GetConsoleSession returns a sign-in by its id's hash, or
// ErrConsoleSessionNotFound.
func (s *Store) GetConsoleSession(ctx context.Context, idHash string) (ConsoleSession, error) {
	cs := ConsoleSession{IDHash: idHash}
	var exp string
	err := s.db.QueryRowContext(ctx, `SELECT csrf, token_hash, expires_at FROM console_sessions WHERE id_hash=?`, idHash).Scan(&cs.CSRF, &cs.TokenHash, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return ConsoleSession{}, ErrConsoleSessionNotFound
	}
	if err != nil {
		return ConsoleSession{}, fmt.Errorf("get console session: %w", err)
	}
	cs.ExpiresAt = decodeTaskTime(exp)
	return cs, nil
}

// DeleteConsoleSession ends a sign-in; ending one that is gone is no error.
func (s *Store) DeleteConsoleSession(ctx context.Context, idHash string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash=?`, idHash); err != nil {
		return fmt.Errorf("delete console session: %w", err)
	}
	return nil
}
