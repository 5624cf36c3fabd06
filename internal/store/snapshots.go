package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// snapshotsSchemaV1 holds one row per snapshot: its home archive lives in the
// data dir's snapshots/ (<id>.tar.gz), its image (docker) in the engine.
// As schema version 1 made them; later changes are migrations (migrate.go).
const snapshotsSchemaV1 = `
CREATE TABLE IF NOT EXISTS snapshots (
	id         TEXT PRIMARY KEY,
	session_id TEXT NOT NULL,
	runtime    TEXT NOT NULL,
	created_at TEXT NOT NULL,
	size       INTEGER NOT NULL,
	sha256     TEXT NOT NULL,
	files      INTEGER NOT NULL,
	image      TEXT NOT NULL DEFAULT ''
);`

// ErrSnapshotNotFound is returned for a snapshot id the store has no row for.
var ErrSnapshotNotFound = errors.New("snapshot not found")

// Snapshot is one row of the snapshots table.
type Snapshot struct {
	ID        string
	SessionID string // the session it was taken of
	Runtime   string // the runtime that session ran on
	CreatedAt time.Time
	Size      int64  // bytes of the gzipped home archive
	SHA256    string // hex digest of the gzipped home archive
	Files     int    // entries in the home archive
	Image     string // the image of the desktop's filesystem changes, if the runtime has images
}

const snapshotColumns = `id, session_id, runtime, created_at, size, sha256, files, image`

// InsertSnapshot records a new snapshot.
func (s *Store) InsertSnapshot(ctx context.Context, sn Snapshot) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO snapshots (`+snapshotColumns+`) VALUES (?,?,?,?,?,?,?,?)`,
		sn.ID, sn.SessionID, sn.Runtime, encodeTaskTime(sn.CreatedAt), sn.Size, sn.SHA256, sn.Files, sn.Image)
	if err != nil {
		return fmt.Errorf("insert snapshot %s: %w", sn.ID, err)
	}
	return nil
}

// GetSnapshot returns one snapshot, or ErrSnapshotNotFound.
func (s *Store) GetSnapshot(ctx context.Context, id string) (Snapshot, error) {
	sn, err := scanSnapshot(s.db.QueryRowContext(ctx, `SELECT `+snapshotColumns+` FROM snapshots WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Snapshot{}, ErrSnapshotNotFound
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("get snapshot %s: %w", id, err)
	}
	return sn, nil
}

// ListSnapshots returns every snapshot, oldest first.
func (s *Store) ListSnapshots(ctx context.Context) ([]Snapshot, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+snapshotColumns+` FROM snapshots ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	defer rows.Close()
	var out []Snapshot
	for rows.Next() {
		sn, err := scanSnapshot(rows)
		if err != nil {
			return nil, fmt.Errorf("list snapshots: %w", err)
		}
		out = append(out, sn)
	}
	return out, rows.Err()
}

// DeleteSnapshot removes a snapshot's row, or returns ErrSnapshotNotFound.
func (s *Store) DeleteSnapshot(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM snapshots WHERE id=?`, id)
	if err != nil {
		return fmt.Errorf("delete snapshot %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrSnapshotNotFound
	}
	return nil
}

func scanSnapshot(r taskScanner) (Snapshot, error) {
	var sn Snapshot
	var created string
	if err := r.Scan(&sn.ID, &sn.SessionID, &sn.Runtime, &created, &sn.Size, &sn.SHA256, &sn.Files, &sn.Image); err != nil {
		return Snapshot{}, err
	}
	sn.CreatedAt = decodeTaskTime(created)
	return sn, nil
}
