package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// ledgerSchemaV1 holds what model calls cost (ledger) and the estimates of
// calls in flight (budget_reservations). Money is stored in integer
// nano-dollars so sums are exact.
// As schema version 1 made them; later changes are migrations (migrate.go).
const ledgerSchemaV1 = `
CREATE TABLE IF NOT EXISTS ledger (
	id                 INTEGER PRIMARY KEY,
	day                TEXT NOT NULL,
	at                 TEXT NOT NULL,
	task_id            TEXT NOT NULL,
	session_id         TEXT NOT NULL,
	step               INTEGER NOT NULL,
	model              TEXT NOT NULL,
	input_tokens       INTEGER NOT NULL,
	output_tokens      INTEGER NOT NULL,
	cache_read_tokens  INTEGER NOT NULL,
	cache_write_tokens INTEGER NOT NULL,
	nano_usd           INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_day ON ledger(day);
CREATE TABLE IF NOT EXISTS budget_reservations (
	id         INTEGER PRIMARY KEY,
	day        TEXT NOT NULL,
	task_id    TEXT NOT NULL,
	session_id TEXT NOT NULL,
	nano_usd   INTEGER NOT NULL,
	created_at TEXT NOT NULL
);`

// ErrOverCap is returned by ReserveBudget when the reservation would take
// the day's spend and reservations above the cap.
var ErrOverCap = errors.New("daily budget cap reached")

// LedgerEntry is one priced model call.
type LedgerEntry struct {
	Day              string // UTC, 2006-01-02
	At               time.Time
	TaskID           string
	SessionID        string
	Step             int
	Model            string
	InputTokens      int64
	OutputTokens     int64
	CacheReadTokens  int64
	CacheWriteTokens int64
	USD              float64
	// Basis says how USD was arrived at (budget.Basis*); "" is "usage".
	Basis string
}

// BudgetTotals is one day's money: settled spend and open reservations.
type BudgetTotals struct {
	SpentUSD    float64
	ReservedUSD float64
}

func toNano(usd float64) int64 { return int64(math.Round(usd * 1e9)) }

func fromNano(n int64) float64 { return float64(n) / 1e9 }

// ReserveBudget takes a reservation of usd on day for a task, in one
// transaction that first checks spent + reserved + usd against capUSD (no
// cap when capUSD is 0). Because the store opens transactions with
// BEGIN IMMEDIATE, concurrent reservations serialize and cannot together
// pass the cap.
func (s *Store) ReserveBudget(ctx context.Context, day, taskID, sessionID string, usd, capUSD float64, now time.Time) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("reserve budget: %w", err)
	}
	defer tx.Rollback()
	var spent, reserved int64
	err = tx.QueryRowContext(ctx, `SELECT
		(SELECT COALESCE(SUM(nano_usd), 0) FROM ledger WHERE day=?),
		(SELECT COALESCE(SUM(nano_usd), 0) FROM budget_reservations WHERE day=?)`, day, day).Scan(&spent, &reserved)
	if err != nil {
		return 0, fmt.Errorf("reserve budget: %w", err)
	}
	want := toNano(usd)
	if capUSD > 0 && spent+reserved+want > toNano(capUSD) {
		return 0, ErrOverCap
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO budget_reservations (day, task_id, session_id, nano_usd, created_at) VALUES (?,?,?,?,?)`,
		day, taskID, sessionID, want, encodeTaskTime(now))
	if err != nil {
		return 0, fmt.Errorf("reserve budget: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("reserve budget: %w", err)
	}
	return id, tx.Commit()
}

// SettleBudget releases reservation id and records e in the ledger, in one
// transaction. A reservation already gone (cleared at a restart) still
// records e.
func (s *Store) SettleBudget(ctx context.Context, id int64, e LedgerEntry) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("settle budget: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM budget_reservations WHERE id=?`, id); err != nil {
		return fmt.Errorf("settle budget: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO ledger (day, at, task_id, session_id, step, model, input_tokens, output_tokens,
		cache_read_tokens, cache_write_tokens, nano_usd, basis) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		e.Day, encodeTaskTime(e.At), e.TaskID, e.SessionID, e.Step, e.Model, e.InputTokens, e.OutputTokens,
		e.CacheReadTokens, e.CacheWriteTokens, toNano(e.USD), cmp.Or(e.Basis, "usage"))
	if err != nil {
		return fmt.Errorf("settle budget: %w", err)
	}
	return tx.Commit()
}

// ReleaseBudget drops reservation id without recording spend (the call
// never reached the model).
func (s *Store) ReleaseBudget(ctx context.Context, id int64) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM budget_reservations WHERE id=?`, id); err != nil {
		return fmt.Errorf("release budget: %w", err)
	}
	return nil
}

// ClearBudgetReservations drops every reservation: at fleet start, none of
// them belongs to a call still in flight.
func (s *Store) ClearBudgetReservations(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM budget_reservations`); err != nil {
		return fmt.Errorf("clear budget reservations: %w", err)
	}
	return nil
}

// BudgetDay returns day's spend and open reservations.
func (s *Store) BudgetDay(ctx context.Context, day string) (BudgetTotals, error) {
	var spent, reserved int64
	err := s.db.QueryRowContext(ctx, `SELECT
		(SELECT COALESCE(SUM(nano_usd), 0) FROM ledger WHERE day=?),
		(SELECT COALESCE(SUM(nano_usd), 0) FROM budget_reservations WHERE day=?)`, day, day).Scan(&spent, &reserved)
	if err != nil {
		return BudgetTotals{}, fmt.Errorf("budget of %s: %w", day, err)
	}
	return BudgetTotals{SpentUSD: fromNano(spent), ReservedUSD: fromNano(reserved)}, nil
}

// Ledger returns day's ledger entries in the order they were recorded.
func (s *Store) Ledger(ctx context.Context, day string) ([]LedgerEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT day, at, task_id, session_id, step, model, input_tokens, output_tokens,
		cache_read_tokens, cache_write_tokens, nano_usd, basis FROM ledger WHERE day=? ORDER BY id`, day)
	if err != nil {
		return nil, fmt.Errorf("ledger of %s: %w", day, err)
	}
	defer rows.Close()
	var out []LedgerEntry
	for rows.Next() {
		var e LedgerEntry
		var at string
		var nano int64
		if err := rows.Scan(&e.Day, &at, &e.TaskID, &e.SessionID, &e.Step, &e.Model, &e.InputTokens, &e.OutputTokens,
			&e.CacheReadTokens, &e.CacheWriteTokens, &nano, &e.Basis); err != nil {
			return nil, fmt.Errorf("ledger of %s: %w", day, err)
		}
		e.At, e.USD = decodeTaskTime(at), fromNano(nano)
		out = append(out, e)
	}
	return out, rows.Err()
}

// SpendByDay returns the settled spend of each day from since (UTC,
// 2006-01-02) on; days without spend are absent.
func (s *Store) SpendByDay(ctx context.Context, since string) (map[string]float64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT day, SUM(nano_usd) FROM ledger WHERE day >= ? GROUP BY day`, since)
	if err != nil {
		return nil, fmt.Errorf("spend since %s: %w", since, err)
	}
	defer rows.Close()
	out := map[string]float64{}
	for rows.Next() {
		var day string
		var nano int64
		if err := rows.Scan(&day, &nano); err != nil {
			return nil, fmt.Errorf("spend since %s: %w", since, err)
		}
		out[day] = fromNano(nano)
	}
	return out, rows.Err()
}
