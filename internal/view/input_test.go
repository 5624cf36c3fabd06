package view_test

import (
	"bytes"
	"os"
	"testing"
	"time"

	"atelier/internal/control"
	"atelier/internal/sessions"
	"atelier/internal/view"
)

// probeScript runs in a terminal of the desktop: it turns on xterm mouse
// reporting and records every byte the terminal receives (keys, and
// ESC [ M b x y for each button press and release) in the file named last.
const probeScript = `printf '\033[?1000h'; stty raw -echo; exec cat > `

// probe opens a terminal running probeScript and returns the file it
// writes and the centre of its window.
func probe(t testing.TB, d *testDesktop) (log string, x, y int) {
	t.Helper()
	log = d.FileOwnedByDesktop(t, "probe.log")
	r := d.Terminal(t, "probe", probeScript+log)
	return log, r.X + r.Width/2, r.Y + r.Height/2
}

// waitFile waits (20 s at most) until the file at path contains want and
// returns its content.
func waitFile(t testing.TB, path string, want []byte) []byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if bytes.Contains(b, want) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never got %q; it has %q", path, want, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mousePress is how the probe's terminal reports a left button press.
var mousePress = []byte("\x1b[M ")

// A view token's keys and clicks never reach the desktop; a control
// token's do.
func TestViewModeDropsInput(t *testing.T) {
	d := startDesktop(t, res)
	log, x, y := probe(t, d)
	f := newFleet(t, dialer{"s-1": d.VNCSock})

	viewer := netConn(t, f.dialView(t, "s-1", view.ModeView))
	if err := viewer.typeText("seen\n"); err != nil {
		t.Fatal(err)
	}
	if err := viewer.click(x, y); err != nil {
		t.Fatal(err)
	}
	// Had the proxy passed them, the desktop would have applied them before
	// answering this, and before anything the controller sends next.
	viewer.barrier(t)

	controller := netConn(t, f.dialView(t, "s-1", view.ModeControl))
	if err := controller.click(x, y); err != nil {
		t.Fatal(err)
	}
	if err := controller.typeText("ok"); err != nil {
		t.Fatal(err)
	}
	got := waitFile(t, log, []byte("ok"))
	if bytes.Contains(got, []byte("seen")) {
		t.Errorf("the view token's keys reached the desktop: %q", got)
	}
	if n := bytes.Count(got, mousePress); n != 1 {
		t.Errorf("%d button presses reached the desktop, want 1 (the controller's): %q", n, got)
	}
	if !bytes.HasPrefix(got, mousePress) {
		t.Errorf("the desktop got %q before the controller's click", got)
	}
}

// With a control lease, a control viewer's input reaches the desktop only
// while its claim is admitted: not while a task holds the lease, yes once
// the viewer took control, not for another viewer meanwhile, and not
// after handing back.
func TestControlLeaseGatesInput(t *testing.T) {
	d := startDesktop(t, res)
	log, x, y := probe(t, d)
	leases := control.New(control.Options{})
	t.Cleanup(leases.Close)
	if err := leases.BeginTask("s-1", "t-1", nil); err != nil {
		t.Fatal(err)
	}
	f := newFleetWith(t, view.Options{Dialer: dialer{"s-1": d.VNCSock}, Control: leases, Input: sessions.Admission{Gate: leases}})
	mine := netConn(t, f.dialViewer(t, "s-1", view.ModeControl, "v-mine"))
	other := netConn(t, f.dialViewer(t, "s-1", view.ModeControl, "v-other"))
	anonymous := netConn(t, f.dialView(t, "s-1", view.ModeControl))

	// The task holds the lease: nobody's input passes.
	for _, c := range []*rfbClient{mine, other, anonymous} {
		if err := c.click(x, y); err != nil {
			t.Fatal(err)
		}
		if err := c.typeText("task"); err != nil {
			t.Fatal(err)
		}
		c.barrier(t)
	}
	lease, err := leases.TakeOver(t.Context(), "s-1", "viewer:control", "v-mine")
	if err != nil {
		t.Fatal(err)
	}
	// Someone else's input still does not pass.
	for _, c := range []*rfbClient{other, anonymous} {
		if err := c.typeText("other"); err != nil {
			t.Fatal(err)
		}
		c.barrier(t)
	}
	if err := mine.click(x, y); err != nil {
		t.Fatal(err)
	}
	if err := mine.typeText("mine"); err != nil {
		t.Fatal(err)
	}
	// All of it, releases too, must be through before handing back: a
	// release refused would leave the key down on the desktop.
	mine.barrier(t)
	if _, err := leases.HandBack("s-1", "viewer:control", lease.ID, ""); err != nil {
		t.Fatal(err)
	}
	if err := mine.typeText("after"); err != nil {
		t.Fatal(err)
	}
	mine.barrier(t)
	// Taking control again, the same connection's input passes: what was
	// dropped was dropped by the lease, not lost with the connection.
	if _, err := leases.TakeOver(t.Context(), "s-1", "viewer:control", "v-mine"); err != nil {
		t.Fatal(err)
	}
	if err := mine.typeText("end"); err != nil {
		t.Fatal(err)
	}
	got := waitFile(t, log, []byte("end"))
	for _, dropped := range []string{"task", "other", "after"} {
		if bytes.Contains(got, []byte(dropped)) {
			t.Errorf("%q reached the desktop: %q", dropped, got)
		}
	}
	if n := bytes.Count(got, mousePress); n != 1 || !bytes.HasPrefix(got, mousePress) {
		t.Errorf("the desktop got %q: want one button press, first (the viewer's once it had control)", got)
	}
	if !bytes.Contains(got, []byte("mineend")) {
		t.Errorf("the desktop got %q, want \"mine\" then \"end\"", got)
	}
}
