package store_test

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"atelier/internal/store"
)

// TestLedgerBasisAddedToOldDatabase: a database made before the ledger had
// a basis column gets it at Open, its entries counting as priced by usage;
// new entries keep the basis they are recorded with.
func TestLedgerBasisAddedToOldDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "atelier.db")
	old, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = old.Exec(`CREATE TABLE ledger (id INTEGER PRIMARY KEY, day TEXT NOT NULL, at TEXT NOT NULL, task_id TEXT NOT NULL,
		session_id TEXT NOT NULL, step INTEGER NOT NULL, model TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
		cache_read_tokens INTEGER NOT NULL, cache_write_tokens INTEGER NOT NULL, nano_usd INTEGER NOT NULL);
		INSERT INTO ledger VALUES (1, '2026-11-29', '2026-11-29T10:00:00Z', 'task_a', 's1', 1, 'claude-sonnet-4-5', 10, 1, 0, 0, 1000);`)
	old.Close()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second Open finds the column there
		st, err := store.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	st, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 11, 29, 11, 0, 0, 0, time.UTC)
	if err := st.SettleBudget(t.Context(), 0, store.LedgerEntry{Day: "2026-11-29", At: at, TaskID: "task_b", SessionID: "s1", Step: 1, Model: "m", USD: 0.5, Basis: "reservation"}); err != nil {
		t.Fatal(err)
	}
	led, err := st.Ledger(t.Context(), "2026-11-29")
	if err != nil || len(led) != 2 || led[0].Basis != "usage" || led[1].Basis != "reservation" || led[1].USD != 0.5 {
		t.Fatalf("ledger = %+v, %v; want the old entry by usage, the new one by reservation", led, err)
	}
}
