package wayland_test

import (
	"bytes"
	"context"
	"image"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/desktoptest"
	"atelier/internal/wayland"
)

// TestMirrorCooling: the mirror holds its full-size buffers while
// screenshots are asked, serves the screen as a plain capture sees it, and
// gives the buffers back once they stop.
func TestMirrorCooling(t *testing.T) {
	defer wayland.SetKeepMirror(time.Second)()
	s := desktoptest.StartSway(t, desktop.Resolution{Width: 800, Height: 600})
	d := dial(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if n, _ := d.MirrorState(); n != 0 {
		t.Fatalf("%d mirror buffers before any screenshot, want 0", n)
	}
	// A still screen: swaybg draws the background (#202020) some time
	// after sway is up, later still on a busy machine.
	desktoptest.Eventually(t, 10*time.Second, "swaybg drew no background", func() bool {
		drawn := false
		err := d.Capture(ctx, image.Rect(10, 20, 11, 21), func(f *wayland.Frame) error {
			drawn = rows(f)[0] == 0x20
			return nil
		})
		if err != nil {
			t.Fatalf("waiting for the background: %v", err)
		}
		return drawn
	})
	if still, _, err := d.WaitStill(ctx, 300*time.Millisecond, 10*time.Second); err != nil || !still {
		t.Fatalf("the screen did not settle: still %v, %v", still, err)
	}
	var got []byte
	var served bool
	for range 100 {
		ok, err := d.CaptureCurrent(ctx, image.Rect(10, 20, 110, 70), func(f *wayland.Frame) error {
			got = rows(f)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if served = ok; ok {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !served {
		t.Fatal("the mirror never served a still screen")
	}
	// The third buffer follows the first trusted copy.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, _ := d.MirrorState()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mirror buffers while screenshots are asked, want 3", n)
		}
	}
	err := d.Capture(ctx, image.Rect(10, 20, 110, 70), func(f *wayland.Frame) error {
		if want := rows(f); !bytes.Equal(got, want) {
			t.Error("the mirror's region differs from a capture of it")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, _ := d.MirrorState()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mirror buffers 5 s after the last screenshot, want 0", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rows returns f's pixels top-down, without the stride's padding.
func rows(f *wayland.Frame) []byte {
	var b []byte
	for y := range f.Height {
		row := y
		if f.YInvert {
			row = f.Height - 1 - y
		}
		b = append(b, f.Pix[row*f.Stride:][:4*f.Width]...)
	}
	return b
}
