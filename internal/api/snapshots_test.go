package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"atelier/internal/api"
	"atelier/internal/apitype"
	"atelier/internal/sessions"
	"atelier/internal/sessions/sessionstest"
	"atelier/internal/snapshot"
	"atelier/internal/store"
)

// TestSnapshotInUse: a snapshot a session is being created from (its
// archive open) cannot be deleted; once the creation is done it can.
func TestSnapshotInUse(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := snapshot.New(snapshot.Options{DB: st, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rt := sessionstest.New()
	m, err := sessions.Open(t.Context(), sessions.Options{Runtime: rt, Store: st, Snapshots: snaps})
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Create(t.Context(), sessions.CreateOptions{Label: "original"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(recording(api.New(api.Options{Sessions: m, Token: token, Snapshots: snaps, Desktops: rt})))
	t.Cleanup(func() { hs.Close(); m.Close(); st.Close() })
	f := &fixture{url: hs.URL}

	resp, b := f.do(t, "POST", "/sessions/"+s.ID+"/snapshot", "")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("snapshot: %d %s", resp.StatusCode, b)
	}
	var sn apitype.Snapshot
	if err := json.Unmarshal(b, &sn); err != nil || sn.ID == "" || len(sn.SHA256) != 64 {
		t.Fatalf("snapshot %s: %v", b, err)
	}

	// What a creation from the snapshot holds while it extracts.
	home, _, err := snaps.OpenSnapshot(t.Context(), sn.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp, b = f.do(t, "DELETE", "/snapshots/"+sn.ID, "")
	if resp.StatusCode != http.StatusConflict || apiErr(t, b).Code != apitype.CodeSnapshotInUse {
		t.Errorf("delete while in use: %d %s, want 409 snapshot_in_use", resp.StatusCode, b)
	}
	home.Close()
	if resp, b = f.do(t, "DELETE", "/snapshots/"+sn.ID, ""); resp.StatusCode != http.StatusNoContent {
		t.Errorf("delete once released: %d %s, want 204", resp.StatusCode, b)
	}
	for path, want := range map[string]int{"/snapshots/" + sn.ID: 404, "/snapshots/NOT-AN-ID": 400} {
		if resp, b = f.do(t, "DELETE", path, ""); resp.StatusCode != want {
			t.Errorf("DELETE %s: %d %s, want %d", path, resp.StatusCode, b, want)
		}
	}
	if resp, b = f.do(t, "POST", "/sessions/sess_aaaaaaaaaaaaaaaaaaaaaaaaaa/snapshot", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("snapshot of an unknown session: %d %s, want 404", resp.StatusCode, b)
	}
}
