package store_test

import (
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
		Desired: store.DesiredStopped, Runtime: "docker", SnapshotID: "snap_1", CreatedAt: t0.Add(time.Second), UpdatedAt: t0.Add(time.Second)}
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
