package sessions_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"atelier/internal/audit"
	"atelier/internal/fleetwire"
	"atelier/internal/sessions"
	"atelier/internal/sessions/sessionstest"
	"atelier/internal/store"
)

// TestLifecycleAudited checks that the manager itself writes a session's
// lifecycle to the audit log: what a caller does under its actor, and a
// restart of a dead desktop by the reconcile loop under the fleet's.
func TestLifecycleAudited(t *testing.T) {
	dir := t.TempDir()
	log, err := audit.Open(filepath.Join(dir, "audit"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	st, err := store.Open(t.Context(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	rt := sessionstest.New()
	m, err := sessions.Open(t.Context(), sessions.Options{Runtime: rt, Store: st, Auditor: fleetwire.Audit{Log: log},
		Reconcile: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); st.Close() })

	ctx := audit.WithActor(t.Context(), "token:api")
	s, err := m.Create(ctx, sessions.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stop(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	rt.Stop(t.Context(), s.ID) // the desktop dies; the reconcile loop restarts it
	lifecycle := func() []string {
		var got []string
		for e, err := range log.Read(t.Context(), s.ID, audit.Filter{Kinds: []audit.Kind{audit.KindSession}}) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s %v", e.Actor, e.Detail["event"]))
		}
		return got
	}
	for deadline := time.Now().Add(10 * time.Second); !slices.Contains(lifecycle(), "fleet restarted"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no restart audited in 10s; the audit has %q", lifecycle())
		}
	}
	if err := m.Delete(ctx, s.ID, false); err != nil {
		t.Fatal(err)
	}
	want := []string{"token:api created", "token:api stopped", "token:api started", "fleet restarted", "token:api deleted"}
	if got := lifecycle(); !slices.Equal(got, want) {
		t.Errorf("lifecycle audit = %q, want %q", got, want)
	}
}
