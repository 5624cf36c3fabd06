// Package store is the fleet's embedded SQLite database (modernc.org/sqlite,
// WAL): sessions, snapshots, tasks, steps and the cost ledger. It holds the
// fleet's only SQL.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Store is an open database. It is safe for concurrent use.
type Store struct {
	db *sql.DB
}

// Open opens (creating if needed) the database at path and migrates it to
// the current schema version. The database and its -wal and -shm files
// are the fleet's alone (0600) whatever the umask: SQLite gives the latter
// two the database's mode, so the database is made before SQLite opens it,
// and the modes of files an older fleet made are tightened.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := private(path); err != nil {
		return nil, err
	}
	// _txlock=immediate makes every transaction take the write lock at BEGIN,
	// so read-then-write transactions (budget reservations) serialize instead
	// of failing with SQLITE_BUSY on upgrade.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// private creates the database file at path with mode 0600 if missing and
// sets its files' modes to 0600.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("database file mode: %w", err)
		}
	}
	return nil
}

// CheckWritable reports whether the database takes writes: it makes a
// table in a transaction it rolls back, so nothing changes.
func (s *Store) CheckWritable(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store not writable: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "CREATE TABLE ready_probe (x)"); err != nil {
		return fmt.Errorf("store not writable: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }
