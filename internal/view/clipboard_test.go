package view_test

import (
	"slices"
	"testing"
	"time"

	"atelier/internal/view"
)

// TestViewTokenGetsNoClipboard: text copied in the desktop reaches a
// control viewer as ServerCutText, while a view viewer of the same
// desktop keeps getting the screen and never the clipboard.
func TestViewTokenGetsNoClipboard(t *testing.T) {
	d := startDesktop(t, res)
	f := newFleet(t, dialer{"s-1": d.VNCSock})
	viewer := netConn(t, f.dialView(t, "s-1", view.ModeView))
	ctrl := netConn(t, f.dialView(t, "s-1", view.ModeControl))
	viewer.screen(t)
	ctrl.screen(t)

	const secret = "copied-in-the-desktop-2718"
	d.Exec(t, "wl-copy "+secret)
	// Each full update request is answered at once: the loop reads on.
	for deadline := time.Now().Add(20 * time.Second); !slices.Contains(ctrl.CutTexts, secret); {
		if time.Now().After(deadline) {
			t.Fatalf("the control viewer never got the clipboard; it got %q", ctrl.CutTexts)
		}
		ctrl.screen(t)
		time.Sleep(50 * time.Millisecond)
	}
	// wayvnc sends the clipboard to every client at once: the answer to a
	// full update request sent after that comes after it.
	fb := viewer.screen(t)
	if len(viewer.CutTexts) != 0 {
		t.Errorf("the view viewer got the clipboard: %q", viewer.CutTexts)
	}
	// And what it got instead is the desktop's screen: the background's
	// colour in the corner, as the control viewer sees it.
	if got, want := corner(viewer, fb), corner(ctrl, ctrl.screen(t)); got != want {
		t.Errorf("view viewer's corner pixel %v, control viewer's %v", got, want)
	}
}
