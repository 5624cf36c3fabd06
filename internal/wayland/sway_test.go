package wayland_test

import (
	"context"
	"errors"
	"image"
	"strings"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/desktoptest"
	"atelier/internal/wayland"
)

func dial(t *testing.T, s *desktoptest.Sway) *wayland.Display {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := wayland.Dial(ctx, s.WaylandSocket)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestCaptureSizes(t *testing.T) {
	s := desktoptest.StartSway(t, desktop.Resolution{Width: 800, Height: 600})
	d := dial(t, s)
	if w, h := d.OutputSize(); w != 800 || h != 600 {
		t.Fatalf("output size %dx%d, want 800x600", w, h)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		r    image.Rectangle
		w, h int
	}{
		{image.Rectangle{}, 800, 600},
		{image.Rect(10, 20, 110, 70), 100, 50},
		{image.Rectangle{}, 800, 600}, // back to the full size: the buffer is remade
	} {
		err := d.Capture(ctx, tc.r, func(f *wayland.Frame) error {
			if f.Width != tc.w || f.Height != tc.h || f.Stride < 4*f.Width || len(f.Pix) != f.Stride*f.Height {
				t.Errorf("region %v: frame %dx%d stride %d len %d, want %dx%d", tc.r, f.Width, f.Height, f.Stride, len(f.Pix), tc.w, tc.h)
			}
			t.Logf("format %#x yinvert %v px0 %v", f.Format, f.YInvert, f.Pix[:4])
			return nil
		})
		if err != nil {
			t.Fatalf("capture %v: %v", tc.r, err)
		}
	}
}

// TestProtocolError checks a request the compositor refuses ends the
// connection with the compositor's reason: a key before any keymap.
func TestProtocolError(t *testing.T) {
	s := desktoptest.StartSway(t, desktop.DefaultResolution)
	d := dial(t, s)
	kbd, err := d.NewKeyboard()
	if err != nil {
		t.Fatal(err)
	}
	kbd.Key(30, wayland.Pressed)
	err = d.Roundtrip(context.Background())
	var pe *wayland.ProtocolError
	if !errors.As(err, &pe) || !strings.Contains(pe.Error(), "keymap") {
		t.Fatalf("roundtrip after a key without keymap: %v, want a protocol error about the keymap", err)
	}
	select {
	case <-d.Done():
	default:
		t.Fatal("connection still open after a protocol error")
	}
}

// TestConcurrentCreates creates objects from many goroutines at once
// (round trips, captures, the damage watch re-arming on the reader
// goroutine): the compositor refuses a new id sent before a lower one, so
// an allocation and its request must be one step, or the connection dies
// with a protocol error.
func TestConcurrentCreates(t *testing.T) {
	s := desktoptest.StartSway(t, desktop.Resolution{Width: 320, Height: 240})
	d := dial(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := d.DamageSeq(ctx); err != nil {
		t.Fatal(err)
	}
	s.Terminal(t, "busy", "while :; do date +%s%N; sleep 0.005; done") // damage, so the watch re-arms
	errs := make(chan error, 9)
	for i := range 8 {
		go func() {
			var err error
			for j := 0; j < 200 && err == nil; j++ {
				if i == 0 && j%20 == 0 {
					err = d.Capture(ctx, image.Rect(0, 0, 8, 8), func(*wayland.Frame) error { return nil })
				} else {
					err = d.Roundtrip(ctx)
				}
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent requests: %v", err)
		}
	}
}
