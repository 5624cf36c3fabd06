package agent_test

import (
	"bytes"
	"image"
	"image/png"
	"testing"

	"atelier/internal/agent"
	"atelier/internal/agentapi"
)

// TestScreenshotReusedUntilChange: an unchanged screen answers with the
// previous image, captured and encoded once per set of parameters; a
// change (a typed character) is never answered with the stale image, and
// a screenshot asked for the instant the key went in shows it.
func TestScreenshotReusedUntilChange(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a desktop")
	}
	e := start(t)
	e.sway.Terminal(t, "typing", "exec cat")
	settle(t, e)
	shot := func(req agentapi.Request) (*agentapi.Image, uint64) {
		t.Helper()
		n := agent.Captures(e.srv)
		req.Action = agentapi.Screenshot
		img := e.do(t, req).Image
		return img, agent.Captures(e.srv) - n
	}
	before, _ := shot(agentapi.Request{})
	for _, req := range []agentapi.Request{
		{},
		{Format: agentapi.FormatJPEG},
		{Region: &agentapi.Region{X: 0, Y: 0, Width: 200, Height: 100}},
	} {
		first, _ := shot(req)
		again, captured := shot(req)
		if captured != 0 || !bytes.Equal(first.Data, again.Data) {
			t.Errorf("%+v on a still screen: %d captures, same bytes %v; want the previous image again", req, captured, bytes.Equal(first.Data, again.Data))
		}
	}
	if again, captured := shot(agentapi.Request{}); captured != 0 || !bytes.Equal(again.Data, before.Data) {
		t.Errorf("back to the default parameters: %d captures; want the first image, not recaptured", captured)
	}

	// Each typed character must show in the next screenshot taken once
	// the screen is still, whatever was asked in between: compare the
	// default screenshot with a fresh capture of the same pixels (a
	// full-screen region is new parameters, so it is captured).
	full := &agentapi.Region{X: 0, Y: 0, Width: 1280, Height: 720}
	prev := decode(t, before)
	for i, ch := range "abcdefgh" {
		e.do(t, agentapi.Request{Action: agentapi.Type, Text: string(ch)})
		// At once: the shot waits for the frame the key causes.
		if now := decode(t, mustShot(t, e, nil)); samePixels(now, prev) {
			t.Errorf("char %d: the screenshot right after typing %q does not show it", i, ch)
		}
		e.do(t, agentapi.Request{Action: agentapi.Settle, Quiet: 0.2, Duration: 5})
		img, _ := shot(agentapi.Request{})
		got, fresh := decode(t, img), decode(t, mustShot(t, e, full))
		if !samePixels(got, fresh) {
			t.Fatalf("char %d: the screenshot differs from a fresh capture: a stale image", i)
		}
		if samePixels(got, prev) {
			t.Fatalf("char %d: the screenshot did not change after typing %q", i, ch)
		}
		prev = got
	}
}

func mustShot(t *testing.T, e *env, r *agentapi.Region) *agentapi.Image {
	t.Helper()
	return e.do(t, agentapi.Request{Action: agentapi.Screenshot, Region: r}).Image
}

func decode(t *testing.T, img *agentapi.Image) image.Image {
	t.Helper()
	m, err := png.Decode(bytes.NewReader(img.Data))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// samePixels reports whether a and b have the same size and pixels.
func samePixels(a, b image.Image) bool {
	if a.Bounds().Size() != b.Bounds().Size() {
		return false
	}
	ra, rb := a.Bounds(), b.Bounds()
	for y := 0; y < ra.Dy(); y++ {
		for x := 0; x < ra.Dx(); x++ {
			r1, g1, b1, _ := a.At(ra.Min.X+x, ra.Min.Y+y).RGBA()
			r2, g2, b2, _ := b.At(rb.Min.X+x, rb.Min.Y+y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 {
				return false
			}
		}
	}
	return true
}
