package agent_test

import (
	"bytes"
	"context"
	"image"
	"testing"
	"time"

	"atelier/internal/agent"
	"atelier/internal/agent/jpegenc"
	"atelier/internal/agentapi"
	"atelier/internal/wayland"
)

// TestScreenshotFromMirror: while screenshots are asked, a changed screen's
// screenshot comes from the copy the compositor made at the change (no
// capture of its own), and it is the screen as a fresh capture on another
// connection sees it; a screenshot asked the instant a key went in comes
// from that copy too and shows the key. Images encode again only the rows
// that changed: a PNG has the pixels of a fresh capture, a JPEG is the same
// file as a fresh capture encoded whole.
func TestScreenshotFromMirror(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a desktop")
	}
	e := start(t)
	e.sway.Terminal(t, "typing", "exec cat")
	settle(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fresh, err := wayland.Dial(ctx, e.sway.WaylandSocket)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	prev := decode(t, mustShot(t, e, nil))
	fromMirror := 0
	for i, ch := range "abcdefghij" {
		_, before := agent.MirrorState(e.srv)
		e.do(t, agentapi.Request{Action: agentapi.Type, Text: string(ch)})
		now := decode(t, mustShot(t, e, nil))
		_, served := agent.MirrorState(e.srv)
		if samePixels(now, prev) {
			t.Errorf("char %d: the screenshot right after typing %q does not show it", i, ch)
		}
		if served > before {
			fromMirror++
		}

		e.do(t, agentapi.Request{Action: agentapi.Settle, Quiet: 0.2, Duration: 5})
		// A region is new parameters: encoded again, from the copy.
		region := &agentapi.Region{X: 0, Y: 0, Width: 640, Height: 360}
		_, before = agent.MirrorState(e.srv)
		got := decode(t, mustShot(t, e, region))
		if _, served := agent.MirrorState(e.srv); served == before {
			t.Errorf("char %d: a changed screen's screenshot was captured, not taken from the current copy", i)
		}
		err := fresh.Capture(ctx, image.Rect(0, 0, 640, 360), func(f *wayland.Frame) error {
			if !sameAsFrame(got, f) {
				t.Fatalf("char %d: the screenshot differs from a fresh capture: a stale image", i)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		jpg := e.do(t, agentapi.Request{Action: agentapi.Screenshot, Format: agentapi.FormatJPEG}).Image.Data
		prev = decode(t, mustShot(t, e, nil))
		err = fresh.Capture(ctx, image.Rectangle{}, func(f *wayland.Frame) error {
			if !sameAsFrame(prev, f) {
				t.Errorf("char %d: the PNG differs from a fresh capture", i)
			}
			px := jpegenc.Pixels{Pix: f.Pix, Width: f.Width, Height: f.Height, Stride: f.Stride, R: 2, G: 1, B: 0, BottomUp: f.YInvert}
			if f.Format == wayland.FormatABGR8888 || f.Format == wayland.FormatXBGR8888 {
				px.R, px.B = 0, 2
			}
			want, err := jpegenc.Encode(nil, px, agent.DefaultJPEGQuality)
			if err != nil {
				return err
			}
			if !bytes.Equal(jpg, want) {
				t.Errorf("char %d: the JPEG differs from a fresh capture encoded whole", i)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The first shots may find the copy just started; most must use it.
	if fromMirror < 8 {
		t.Errorf("%d of 10 screenshots right after a key came from the current copy, want ≥ 8", fromMirror)
	}
	if buffers, _ := agent.MirrorState(e.srv); buffers == 0 {
		t.Error("no full-size buffers while screenshots are asked")
	}
}

// sameAsFrame reports whether img has the pixels of the captured frame f.
func sameAsFrame(img image.Image, f *wayland.Frame) bool {
	if img.Bounds().Dx() != f.Width || img.Bounds().Dy() != f.Height {
		return false
	}
	ri, bi := 2, 0 // little-endian words: bytes B G R X
	if f.Format == wayland.FormatABGR8888 || f.Format == wayland.FormatXBGR8888 {
		ri, bi = 0, 2
	}
	b := img.Bounds()
	for y := range f.Height {
		row := y
		if f.YInvert {
			row = f.Height - 1 - y
		}
		for x := range f.Width {
			p := f.Pix[row*f.Stride+4*x:]
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			if uint8(r>>8) != p[ri] || uint8(g>>8) != p[1] || uint8(bl>>8) != p[bi] {
				return false
			}
		}
	}
	return true
}
