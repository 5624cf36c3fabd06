// Package store is the fleet's embedded SQLite database (modernc.org/sqlite,
// WAL): sessions, snapshots, tasks, steps and the cost ledger. It holds the
// fleet's only SQL.
package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Store is an open database. It is safe for concurrent use.
type Store struct {
	db *sql.DB
}

// schema is applied in order at every Open; each statement is idempotent.
// Each domain keeps its tables in its own file.
var schema = []string{sessionsSchema, tasksSchema, ledgerSchema, snapshotsSchema}

// Open opens (creating if needed) the database at path and applies the schema.
func Open(ctx context.Context, path string) (*Store, error) {
	// _txlock=immediate makes every transaction take the write lock at BEGIN,
	// so read-then-write transactions (budget reservations) serialize instead
	// of failing with SQLITE_BUSY on upgrade.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	for _, stmt := range schema {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("apply schema to %s: %w", path, err)
		}
	}
	for _, c := range addedColumns {
		if err := addColumn(ctx, db, c); err != nil {
			db.Close()
			return nil, fmt.Errorf("apply schema to %s: %w", path, err)
		}
	}
	return &Store{db: db}, nil
}

// column is a column added to a table after its first release: databases
// made before it get it at Open.
type column struct{ table, name, decl string }

// addedColumns lists them; each domain's file declares its own.
var addedColumns = []column{ledgerBasis}

// addColumn adds c to its table unless the table has it already.
func addColumn(ctx context.Context, db *sql.DB, c column) error {
	var n int
	err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info(?) WHERE name=?`, c.table, c.name).Scan(&n)
	if err != nil || n > 0 {
		return err
	}
	_, err = db.ExecContext(ctx, "ALTER TABLE "+c.table+" ADD COLUMN "+c.name+" "+c.decl)
	return err
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }
