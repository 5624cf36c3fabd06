package sessions_test

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"atelier/internal/sessions"
	"atelier/internal/sessions/sessionstest"
	"atelier/internal/store"
)

// TestSessionLimit creates a burst of sessions at once past MaxSessions:
// exactly the limit are made, the rest get ErrTooMany having made no row
// and no desktop; a stopped session frees its place, and starting it
// again past the limit is refused as well.
func TestSessionLimit(t *testing.T) {
	const limit, burst = 3, 16
	rt := sessionstest.New()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sessions.Open(t.Context(), sessions.Options{Runtime: rt, Store: st, Reconcile: 10 * time.Millisecond, MaxSessions: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); st.Close() })
	ctx := t.Context()

	var wg sync.WaitGroup
	var mu sync.Mutex
	var made []string
	refused := 0
	for range burst {
		wg.Go(func() {
			se, err := m.Create(ctx, sessions.CreateOptions{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				made = append(made, se.ID)
			case errors.Is(err, sessions.ErrTooMany):
				refused++
			default:
				t.Errorf("Create: %v", err)
			}
		})
	}
	wg.Wait()
	if len(made) != limit || refused != burst-limit {
		t.Fatalf("%d made, %d refused; want %d and %d", len(made), refused, limit, burst-limit)
	}
	if list, _ := m.List(ctx); len(list) != limit {
		t.Errorf("%d sessions stored, want %d", len(list), limit)
	}
	if n := rt.Len(); n != limit {
		t.Errorf("runtime has %d desktops, want %d", n, limit)
	}

	if _, err := m.Stop(ctx, made[0]); err != nil {
		t.Fatal(err)
	}
	extra, err := m.Create(ctx, sessions.CreateOptions{})
	if err != nil {
		t.Fatalf("create after a stop: %v", err)
	}
	if _, err := m.Start(ctx, made[0]); !errors.Is(err, sessions.ErrTooMany) {
		t.Errorf("start past the limit: %v, want ErrTooMany", err)
	}
	if se, _ := m.Get(ctx, made[0]); se.Desired != store.DesiredStopped {
		t.Errorf("a refused start left the session %s", se.Desired)
	}
	if err := m.Delete(ctx, extra.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(ctx, made[0]); err != nil {
		t.Errorf("start within the limit: %v", err)
	}
}
