package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// tasksSchemaV1 holds tasks and their steps. The partial unique index is the
// database's half of the one-task-per-session rule: even two fleets sharing
// a file cannot both run a task on one session.
// As schema version 1 made them; later changes are migrations (migrate.go).
const tasksSchemaV1 = `
CREATE TABLE IF NOT EXISTS tasks (
	id         TEXT PRIMARY KEY,
	session_id TEXT NOT NULL,
	goal       TEXT NOT NULL,
	backend    TEXT NOT NULL,
	model      TEXT NOT NULL DEFAULT '',
	max_steps  INTEGER NOT NULL,
	max_usd    REAL NOT NULL DEFAULT 0,
	status     TEXT NOT NULL,
	answer     TEXT NOT NULL DEFAULT '',
	error      TEXT NOT NULL DEFAULT '',
	steps      INTEGER NOT NULL DEFAULT 0,
	cost_usd   REAL NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL,
	ended_at   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tasks_session ON tasks(session_id, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_one_running ON tasks(session_id) WHERE status = 'running';
CREATE TABLE IF NOT EXISTS task_steps (
	task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
	seq     INTEGER NOT NULL,
	event   TEXT NOT NULL,
	PRIMARY KEY (task_id, seq)
);`

// Task statuses the store itself sets or relies on; package tasks owns the rest.
const (
	TaskRunning     = "running"
	TaskInterrupted = "interrupted"
)

// ErrTaskRunning is returned by InsertTask when the session already has a
// running task.
var ErrTaskRunning = errors.New("a task is already running on this session")

// ErrTaskNotFound is returned for a task id that does not exist.
var ErrTaskNotFound = errors.New("task not found")

// Task is one row of the tasks table.
type Task struct {
	ID        string
	SessionID string
	Goal      string
	Backend   string
	Model     string
	MaxSteps  int
	MaxUSD    float64
	Status    string
	Answer    string
	Error     string
	Steps     int
	CostUSD   float64
	CreatedAt time.Time
	EndedAt   time.Time // zero while running
}

const taskColumns = `id, session_id, goal, backend, model, max_steps, max_usd, status, answer, error, steps, cost_usd, created_at, ended_at`

// InsertTask records a new task. It returns ErrTaskRunning if t is running
// and its session already has a running task.
func (s *Store) InsertTask(ctx context.Context, t Task) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO tasks (`+taskColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		t.ID, t.SessionID, t.Goal, t.Backend, t.Model, t.MaxSteps, t.MaxUSD, t.Status, t.Answer, t.Error,
		t.Steps, t.CostUSD, encodeTaskTime(t.CreatedAt), encodeTaskTime(t.EndedAt))
	if se, ok := errors.AsType[*sqlite.Error](err); ok && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
		return ErrTaskRunning
	}
	if err != nil {
		return fmt.Errorf("insert task %s: %w", t.ID, err)
	}
	return nil
}

// FinishTask records a task's outcome.
func (s *Store) FinishTask(ctx context.Context, t Task) error {
	res, err := s.db.ExecContext(ctx, `UPDATE tasks SET status=?, answer=?, error=?, steps=?, cost_usd=?, ended_at=? WHERE id=?`,
		t.Status, t.Answer, t.Error, t.Steps, t.CostUSD, encodeTaskTime(t.EndedAt), t.ID)
	if err != nil {
		return fmt.Errorf("finish task %s: %w", t.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("finish task %s: %w", t.ID, ErrTaskNotFound)
	}
	return nil
}

// AddTaskStep appends one step event (opaque JSON) and the task's running
// totals, in one transaction.
func (s *Store) AddTaskStep(ctx context.Context, taskID string, seq int, event []byte, steps int, costUSD float64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add step to %s: %w", taskID, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO task_steps (task_id, seq, event) VALUES (?,?,?)`, taskID, seq, string(event)); err != nil {
		return fmt.Errorf("add step %d to %s: %w", seq, taskID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE tasks SET steps=?, cost_usd=? WHERE id=?`, steps, costUSD, taskID); err != nil {
		return fmt.Errorf("add step %d to %s: %w", seq, taskID, err)
	}
	return tx.Commit()
}

// TaskSteps returns a task's step events in order.
func (s *Store) TaskSteps(ctx context.Context, taskID string) ([][]byte, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT event FROM task_steps WHERE task_id=? ORDER BY seq`, taskID)
	if err != nil {
		return nil, fmt.Errorf("steps of %s: %w", taskID, err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var ev string
		if err := rows.Scan(&ev); err != nil {
			return nil, fmt.Errorf("steps of %s: %w", taskID, err)
		}
		out = append(out, []byte(ev))
	}
	return out, rows.Err()
}

// GetTask returns one task, or ErrTaskNotFound.
func (s *Store) GetTask(ctx context.Context, id string) (Task, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE id=?`, id)
	t, err := scanTask(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Task{}, ErrTaskNotFound
	}
	if err != nil {
		return Task{}, fmt.Errorf("get task %s: %w", id, err)
	}
	return t, nil
}

// ListTasks returns a session's tasks, newest first, at most limit of them.
func (s *Store) ListTasks(ctx context.Context, sessionID string, limit int) ([]Task, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+taskColumns+` FROM tasks WHERE session_id=? ORDER BY created_at DESC, rowid DESC LIMIT ?`, sessionID, limit)
	if err != nil {
		return nil, fmt.Errorf("list tasks of %s: %w", sessionID, err)
	}
	defer rows.Close()
	var out []Task
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, fmt.Errorf("list tasks of %s: %w", sessionID, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// InterruptRunningTasks marks every running task interrupted, as of now, and
// returns their ids. A fleet calls it at start: no task survives a restart.
func (s *Store) InterruptRunningTasks(ctx context.Context, now time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `UPDATE tasks SET status=?, error=?, ended_at=? WHERE status=? RETURNING id`,
		TaskInterrupted, "the fleet stopped while the task ran", encodeTaskTime(now), TaskRunning)
	if err != nil {
		return nil, fmt.Errorf("interrupt running tasks: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("interrupt running tasks: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

type taskScanner interface{ Scan(dest ...any) error }

func scanTask(r taskScanner) (Task, error) {
	var t Task
	var created, ended string
	err := r.Scan(&t.ID, &t.SessionID, &t.Goal, &t.Backend, &t.Model, &t.MaxSteps, &t.MaxUSD, &t.Status,
		&t.Answer, &t.Error, &t.Steps, &t.CostUSD, &created, &ended)
	if err != nil {
		return Task{}, err
	}
	t.CreatedAt, t.EndedAt = decodeTaskTime(created), decodeTaskTime(ended)
	return t, nil
}

func encodeTaskTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func decodeTaskTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}
