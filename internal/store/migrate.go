package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations take a database from one schema version (PRAGMA user_version)
// to the next: migrations[i] moves version i to i+1, in one transaction.
// They are append-only: a released entry is never edited, since databases
// made by that release have already run it; a change is a new entry.
//
// Version 1 is the schema as it stood before versioning. Its statements are
// idempotent (IF NOT EXISTS), so a database made before versions existed
// (user_version 0, tables present) migrates like a new one.
var migrations = []string{
	sessionsSchemaV1 + tasksSchemaV1 + ledgerSchemaV1 + snapshotsSchemaV1,
	// 2: each session's embed token generation (revoking its links bumps it).
	`ALTER TABLE sessions ADD COLUMN embed_generation INTEGER NOT NULL DEFAULT 0;`,
	// 3: a session's own egress policy (JSON); '' follows the fleet's.
	`ALTER TABLE sessions ADD COLUMN egress TEXT NOT NULL DEFAULT '';`,
	// 4: what a ledger entry's cost rests on: usage, unpriced, reservation
	// (a call abandoned by a cancel). Older entries were all priced by usage.
	`ALTER TABLE ledger ADD COLUMN basis TEXT NOT NULL DEFAULT 'usage';`,
	// 5: batches (one goal dispatched to many sessions) and the console's
	// sign-in sessions.
	batchesSchemaV5 + consoleSchemaV5,
}

// SchemaVersion is the version this build migrates databases to.
func SchemaVersion() int { return len(migrations) }

// migrate brings db up to SchemaVersion. A database from a newer fleet is
// refused: this build cannot know what its later versions changed.
func migrate(ctx context.Context, db *sql.DB) error {
	var have int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this fleet's %d: run the newer fleet, or restore a backup made before it", have, len(migrations))
	}
	for v := have; v < len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate to schema %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to schema %d: %w", v+1, err)
		}
		// PRAGMA takes no bound parameters; v+1 is a number this code made.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to schema %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate to schema %d: %w", v+1, err)
		}
	}
	return nil
}
