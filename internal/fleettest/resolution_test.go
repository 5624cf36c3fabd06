package fleettest_test

import (
	"testing"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/client"
	"atelier/internal/fleettest"
)

// TestResolution: a running desktop's size changes through the API; the
// next screenshots have it, actions are checked against it, and it stays
// across a stop and start.
func TestResolution(t *testing.T) {
	fleettest.RequireDesktops(t)
	f := fleettest.New(t, fleettest.Options{Token: token})
	ctx := t.Context()
	c := f.Client
	s, err := c.CreateSession(ctx, apitype.CreateSession{Resolution: "1280x720"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitShot := func(w, h int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			im, err := c.Screenshot(ctx, s.ID, client.ScreenshotOptions{})
			if err == nil && im.Width == w && im.Height == h {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("screenshot %dx%d (%v), want %dx%d", im.Width, im.Height, err, w, h)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if _, err := c.SetResolution(ctx, s.ID, "640x"); !isCode(err, apitype.CodeBadResolution) {
		t.Errorf("a malformed resolution: %v, want bad_resolution", err)
	}
	got, err := c.SetResolution(ctx, s.ID, "1024x768")
	if err != nil || got.Resolution != "1024x768" {
		t.Fatalf("set resolution: %+v %v", got, err)
	}
	waitShot(1024, 768)
	// Actions are checked against the new size.
	if _, err := c.Act(ctx, s.ID, map[string]any{"action": "mouse_move", "coordinate": []int{1100, 700}}); !isCode(err, apitype.CodeBadCoordinate) {
		t.Errorf("a move past the new width: %v, want bad_coordinate", err)
	}
	act(t, c, s.ID, map[string]any{"action": "mouse_move", "coordinate": []int{1000, 760}})
	// Kept across a stop and a start.
	if _, err := c.StopSession(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if s, err = c.StartSession(ctx, s.ID, 60*time.Second); err != nil || s.Resolution != "1024x768" {
		t.Fatalf("start: %+v %v", s, err)
	}
	waitShot(1024, 768)
}
