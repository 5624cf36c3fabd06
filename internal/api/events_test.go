package api_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/client"
	"atelier/internal/sessions"
)

// TestEvents checks GET /events streams each session's lifecycle events
// as they happen, from the moment it is open.
func TestEvents(t *testing.T) {
	f := newFixture(t)
	c := client.New(f.url, token, http.DefaultClient)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opened := make(chan struct{})
	got := make(chan apitype.SessionEvent, 10)
	done := make(chan error, 1)
	go func() {
		done <- c.SessionEvents(ctx, func() { close(opened) }, func(ev apitype.SessionEvent) error {
			got <- ev
			return nil
		})
	}()
	select {
	case <-opened:
	case err := <-done:
		t.Fatalf("events: %v", err)
	}
	s, err := c.CreateSession(t.Context(), apitype.CreateSession{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StopSession(t.Context(), f.id); err != nil {
		t.Fatal(err)
	}
	for _, want := range []apitype.SessionEvent{{Session: s.ID, Event: sessions.EventCreated}, {Session: f.id, Event: sessions.EventStopped}} {
		select {
		case ev := <-got:
			if ev != want {
				t.Fatalf("event %+v, want %+v", ev, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event %+v", want)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("events after the reader left: %v, want context.Canceled", err)
	}
	if resp, _ := f.do(t, http.MethodGet, "/events", "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("events without the token: %d, want 401", resp.StatusCode)
	}
}
