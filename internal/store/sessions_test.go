package store_test

import (
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"atelier/desktop"
	"atelier/internal/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "atelier.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestSessionsRoundTrip(t *testing.T) {
	st := openStore(t)
	ctx := t.Context()
	t0 := time.Date(2026, 11, 29, 10, 0, 0, 123, time.UTC)
	a := store.Session{ID: "sess_a", Label: "alice", Theme: "terracotta", Resolution: desktop.Resolution{Width: 1280, Height: 720},
		Desired: store.DesiredRunning, Runtime: "local", CreatedAt: t0, UpdatedAt: t0}
	b := store.Session{ID: "sess_b", Label: "bob", Theme: "slate", Resolution: desktop.Resolution{Width: 1920, Height: 1080},
		Desired: store.DesiredStopped, Runtime: "docker", SnapshotID: "snap_1", Egress: `{"mode":"none"}`, CreatedAt: t0.Add(time.Second), UpdatedAt: t0.Add(time.Second)}
	for _, se := range []store.Session{b, a} {
		if err := st.InsertSession(ctx, se); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.InsertSession(ctx, a); err == nil {
		t.Error("inserting a duplicate id succeeded")
	}
	got, err := st.ListSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.Session{a, b}, got); diff != "" {
		t.Errorf("ListSessions mismatch (-want +got):\n%s", diff)
	}

	t1 := t0.Add(time.Minute)
	if err := st.SetSessionDesired(ctx, "sess_a", store.DesiredStopped, t1); err != nil {
		t.Fatal(err)
	}
	if err := st.SetSessionTheme(ctx, "sess_a", "ocean", t1); err != nil {
		t.Fatal(err)
	}
	a.Desired, a.Theme, a.UpdatedAt = store.DesiredStopped, "ocean", t1
	gotA, err := st.GetSession(ctx, "sess_a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, gotA); diff != "" {
		t.Errorf("GetSession after updates mismatch (-want +got):\n%s", diff)
	}
	if err := st.SetSessionDesired(ctx, "sess_a", "paused", t1); err == nil {
		t.Error("desired state \"paused\" was accepted")
	}

	if err := st.DeleteSession(ctx, "sess_a"); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"get":    func() error { _, err := st.GetSession(ctx, "sess_a"); return err }(),
		"delete": st.DeleteSession(ctx, "sess_a"),
		"theme":  st.SetSessionTheme(ctx, "sess_a", "x", t1),
		"desire": st.SetSessionDesired(ctx, "sess_a", store.DesiredRunning, t1),
	} {
		if !errors.Is(err, store.ErrSessionNotFound) {
			t.Errorf("%s of a deleted session: got %v, want ErrSessionNotFound", name, err)
		}
	}
}

func TestSessionsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "atelier.db")
	st, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	se := store.Session{ID: "sess_x", Label: "x", Theme: "terracotta", Resolution: desktop.DefaultResolution,
		Desired: store.DesiredRunning, Runtime: "local", CreatedAt: time.Now().UTC(), UpdatedAt: time.Now().UTC()}
	if err := st.InsertSession(t.Context(), se); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.GetSession(t.Context(), "sess_x")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(se, got); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
}

// A database made before a column was added gets it, and keeps its rows.
func TestSessionsUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "atelier.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`CREATE TABLE sessions (id TEXT PRIMARY KEY, label TEXT NOT NULL, theme TEXT NOT NULL,
		width INTEGER NOT NULL, height INTEGER NOT NULL, desired TEXT NOT NULL, runtime TEXT NOT NULL,
		snapshot_id TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
		INSERT INTO sessions VALUES ('sess_old', 'old', 'linen', 1280, 720, 'running', 'local', '', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second open finds the column there
		st, err := store.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		se, err := st.GetSession(t.Context(), "sess_old")
		st.Close()
		if err != nil || se.Label != "old" || se.Egress != "" {
			t.Fatalf("old row after the upgrade: %+v, %v", se, err)
		}
	}
}
