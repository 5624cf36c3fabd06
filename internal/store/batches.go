package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// batchesSchemaV5 holds dispatched batches and what each member session
// made of the goal: the task it started, or why it could not.
const batchesSchemaV5 = `
CREATE TABLE batches (
	id         TEXT PRIMARY KEY,
	goal       TEXT NOT NULL,
	selector   TEXT NOT NULL DEFAULT '',
	created_at TEXT NOT NULL
);
CREATE TABLE batch_members (
	batch_id   TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
	seq        INTEGER NOT NULL,
	session_id TEXT NOT NULL,
	outcome    TEXT NOT NULL,
	task_id    TEXT NOT NULL DEFAULT '',
	message    TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (batch_id, seq)
);`

// ErrBatchNotFound is returned for a batch id that does not exist.
var ErrBatchNotFound = errors.New("batch not found")

// Batch is one row of batches with its members, in dispatch order.
type Batch struct {
	ID        string
	Goal      string
	Selector  string
	CreatedAt time.Time
	Members   []BatchMember
}

// BatchMember is what one session made of a batch's goal.
type BatchMember struct {
	SessionID string
	Outcome   string
	TaskID    string
	Message   string
}

// InsertBatch records a batch and its members in one transaction.
func (s *Store) InsertBatch(ctx context.Context, b Batch) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("insert batch %s: %w", b.ID, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO batches (id, goal, selector, created_at) VALUES (?,?,?,?)`,
		b.ID, b.Goal, b.Selector, encodeTaskTime(b.CreatedAt)); err != nil {
		return fmt.Errorf("insert batch %s: %w", b.ID, err)
	}
	for i, m := range b.Members {
		if _, err := tx.ExecContext(ctx, `INSERT INTO batch_members (batch_id, seq, session_id, outcome, task_id, message) VALUES (?,?,?,?,?,?)`,
			b.ID, i, m.SessionID, m.Outcome, m.TaskID, m.Message); err != nil {
			return fmt.Errorf("insert batch %s: %w", b.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("insert batch %s: %w", b.ID, err)
	}
	return nil
}

// GetBatch returns one batch with its members, or ErrBatchNotFound.
func (s *Store) GetBatch(ctx context.Context, id string) (Batch, error) {
	b := Batch{ID: id}
	var created string
	err := s.db.QueryRowContext(ctx, `SELECT goal, selector, created_at FROM batches WHERE id=?`, id).Scan(&b.Goal, &b.Selector, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Batch{}, ErrBatchNotFound
	}
	if err != nil {
		return Batch{}, fmt.Errorf("get batch %s: %w", id, err)
	}
	b.CreatedAt = decodeTaskTime(created)
	rows, err := s.db.QueryContext(ctx, `SELECT session_id, outcome, task_id, message FROM batch_members WHERE batch_id=? ORDER BY seq`, id)
	if err != nil {
		return Batch{}, fmt.Errorf("get batch %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var m BatchMember
		if err := rows.Scan(&m.SessionID, &m.Outcome, &m.TaskID, &m.Message); err != nil {
			return Batch{}, fmt.Errorf("get batch %s: %w", id, err)
		}
		b.Members = append(b.Members, m)
	}
	return b, rows.Err()
}

// ListBatches returns the newest batches (without members), at most limit.
func (s *Store) ListBatches(ctx context.Context, limit int) ([]Batch, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, goal, selector, created_at FROM batches ORDER BY created_at DESC, rowid DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	defer rows.Close()
	var out []Batch
	for rows.Next() {
		var b Batch
		var created string
		if err := rows.Scan(&b.ID, &b.Goal, &b.Selector, &created); err != nil {
			return nil, fmt.Errorf("list batches: %w", err)
		}
		b.CreatedAt = decodeTaskTime(created)
		out = append(out, b)
	}
	return out, rows.Err()
}
