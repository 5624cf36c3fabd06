package store_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"atelier/internal/store"
)

// execFile runs a SQL script on a database made with the plain driver, as
// an older fleet would have left it.
func execFile(t *testing.T, path, script string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(script); err != nil {
		t.Fatal(err)
	}
}

func TestOpenMigratesUnversionedDatabase(t *testing.T) {
	script, err := os.ReadFile("testdata/schema-v0.sql")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "atelier.db")
	execFile(t, path, string(script))

	st, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("open a database of schema 0: %v", err)
	}
	defer st.Close()
	se, err := st.GetSession(t.Context(), "sess_old")
	if err != nil {
		t.Fatalf("session of schema 0 after migration: %v", err)
	}
	if se.Label != "alice" || se.Theme != "graphite" || se.Resolution.Width != 1280 {
		t.Errorf("session after migration = %+v", se)
	}
	tk, err := st.GetTask(t.Context(), "task_old")
	if err != nil || tk.Answer != "done" {
		t.Errorf("task after migration = %+v, %v", tk, err)
	}
	sn, err := st.GetSnapshot(t.Context(), "snap_old")
	if err != nil || sn.Files != 3 {
		t.Errorf("snapshot after migration = %+v, %v", sn, err)
	}
	st.Close()

	if v := userVersion(t, path); v != store.SchemaVersion() {
		t.Errorf("user_version after migration = %d, want %d", v, store.SchemaVersion())
	}
	// Opening again runs nothing and keeps the rows.
	st2, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if _, err := st2.GetSession(t.Context(), "sess_old"); err != nil {
		t.Errorf("second open: %v", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "atelier.db")
	st, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	execFile(t, path, "PRAGMA user_version = 999")
	_, err = store.Open(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), "newer than this fleet") {
		t.Fatalf("open a database of schema 999: %v, want a refusal naming the versions", err)
	}
	if v := userVersion(t, path); v != 999 {
		t.Errorf("a refused open changed user_version to %d", v)
	}
}

func userVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
