package sessions_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"atelier/internal/sessions"
	"atelier/internal/sessions/sessionstest"
)

// TestWatch checks a watcher is told each lifecycle event in order, a
// slow one is dropped rather than waited for, and its channel closes when
// its context ends.
func TestWatch(t *testing.T) {
	m := openManager(t, sessionstest.New(), filepath.Join(t.TempDir(), "db"))
	ctx, cancel := context.WithCancel(t.Context())
	ch := m.Watch(ctx)
	slow := m.Watch(t.Context())
	s, err := m.Create(t.Context(), sessions.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stop(t.Context(), s.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(t.Context(), s.ID, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{sessions.EventCreated, sessions.EventStopped, sessions.EventDeleted} {
		select {
		case c := <-ch:
			if c != (sessions.Change{Session: s.ID, Event: want}) {
				t.Fatalf("change %+v, want %s of %s", c, want, s.ID)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s change", want)
		}
	}
	cancel()
	if _, open := <-ch; open {
		t.Error("a change after the watch's context ended")
	}

	// slow read nothing: past its buffer it is dropped, not waited on.
	for range 70 {
		if _, err := m.Create(t.Context(), sessions.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for range slow {
		n++
	}
	if n != 64 {
		t.Errorf("a reader that fell behind got %d changes before its channel closed, want its 64 buffered", n)
	}
}
