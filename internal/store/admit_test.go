package store_test

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/store"
)

func newSession(id, desired string) store.Session {
	now := time.Now().UTC()
	return store.Session{ID: id, Label: id, Theme: "terracotta", Resolution: desktop.DefaultResolution,
		Desired: desired, Runtime: "local", CreatedAt: now, UpdatedAt: now}
}

// TestAdmitNeverOvershoots admits a burst of sessions at once against a
// limit: exactly the limit get in, the rest are refused with nothing
// recorded.
func TestAdmitNeverOvershoots(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	const limit, burst = 5, 24
	if err := st.InsertSession(ctx, newSession("sess_stopped", store.DesiredStopped)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, burst)
	for i := range burst {
		wg.Go(func() {
			errs[i] = st.AdmitSession(ctx, newSession(fmt.Sprintf("sess_%02d", i), store.DesiredRunning), limit)
		})
	}
	wg.Wait()
	admitted := 0
	for _, err := range errs {
		switch {
		case err == nil:
			admitted++
		case !errors.Is(err, store.ErrLimit):
			t.Errorf("admit: %v, want nil or ErrLimit", err)
		}
	}
	list, err := st.ListSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if admitted != limit || len(list) != limit+1 {
		t.Errorf("%d admitted, %d rows; want %d and %d (a stopped session does not count)", admitted, len(list), limit, limit+1)
	}
	// Starting the stopped one is past the limit too, and changes nothing.
	if err := st.AdmitStart(ctx, "sess_stopped", limit, time.Now()); !errors.Is(err, store.ErrLimit) {
		t.Errorf("start past the limit: %v, want ErrLimit", err)
	}
	if se, _ := st.GetSession(ctx, "sess_stopped"); se.Desired != store.DesiredStopped {
		t.Errorf("refused start left it %s", se.Desired)
	}
	if err := st.AdmitStart(ctx, "sess_stopped", limit+1, time.Now()); err != nil {
		t.Errorf("start within the limit: %v", err)
	}
	running := list[0].ID
	if running == "sess_stopped" {
		running = list[1].ID
	}
	if err := st.AdmitStart(ctx, running, limit+1, time.Now()); err != nil {
		t.Errorf("start of a running session at the limit: %v, want a no-op", err)
	}
	if err := st.AdmitStart(ctx, "sess_nope", 0, time.Now()); !errors.Is(err, store.ErrSessionNotFound) {
		t.Errorf("start of no session: %v", err)
	}
}

func TestRevokeEmbedTokens(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	if err := st.InsertSession(ctx, newSession("sess_a", store.DesiredRunning)); err != nil {
		t.Fatal(err)
	}
	for want := uint64(0); want < 3; want++ {
		g, err := st.EmbedGeneration(ctx, "sess_a")
		if err != nil || g != want {
			t.Fatalf("generation %d, %v; want %d", g, err, want)
		}
		if g, err := st.RevokeEmbedTokens(ctx, "sess_a", time.Now()); err != nil || g != want+1 {
			t.Fatalf("revoke: %d, %v; want %d", g, err, want+1)
		}
	}
	if _, err := st.EmbedGeneration(ctx, "sess_b"); !errors.Is(err, store.ErrSessionNotFound) {
		t.Errorf("generation of no session: %v", err)
	}
	if _, err := st.RevokeEmbedTokens(ctx, "sess_b", time.Now()); !errors.Is(err, store.ErrSessionNotFound) {
		t.Errorf("revoke of no session: %v", err)
	}
}

// TestOpenMigratesAndTightens opens a database an older fleet made (0644,
// sessions without the embed generation, under a permissive umask): its
// rows stay, the column is added, and its files become 0600.
func TestOpenMigratesAndTightens(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "atelier.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`CREATE TABLE sessions (id TEXT PRIMARY KEY, label TEXT NOT NULL, theme TEXT NOT NULL, width INTEGER NOT NULL,
		height INTEGER NOT NULL, desired TEXT NOT NULL CHECK (desired IN ('running', 'stopped')), runtime TEXT NOT NULL,
		snapshot_id TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
		INSERT INTO sessions VALUES ('sess_old','old','linen',1280,720,'running','local','','2026-01-01T00:00:00Z','2026-01-01T00:00:00Z');`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second Open finds the column there, and keeps its value
		st, err := store.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		if se, err := st.GetSession(t.Context(), "sess_old"); err != nil || se.Theme != "linen" {
			t.Errorf("old row: %+v, %v", se, err)
		}
		if g, err := st.EmbedGeneration(t.Context(), "sess_old"); err != nil || g != uint64(i) {
			t.Errorf("generation of an old row: %d, %v; want %d", g, err, i)
		}
		if _, err := st.RevokeEmbedTokens(t.Context(), "sess_old", time.Now()); err != nil {
			t.Fatal(err)
		}
		checkPrivate(t, path)
		st.Close()
	}
}

// TestNewDatabasePrivate makes a database under umask 0: every file is
// 0600 all the same.
func TestNewDatabasePrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "atelier.db")
	st, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.InsertSession(t.Context(), newSession("sess_a", store.DesiredRunning)); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, path)
}

// checkPrivate checks that the database at path and its -wal and -shm are
// 0600.
func checkPrivate(t *testing.T, path string) {
	t.Helper()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %o, want 600", filepath.Base(p), fi.Mode().Perm())
		}
	}
}
