package view_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"atelier/internal/browsertest"
	"atelier/internal/control"
	"atelier/internal/sessions"
	"atelier/internal/view"
)

// startBrowser starts a headless Chromium for the test.
func startBrowser(t testing.TB) context.Context { return browsertest.Start(t, 1024, 768) }

// page is the viewer page open in a browser tab.
type page struct {
	ctx context.Context
	t   testing.TB
}

func openViewer(t testing.TB, bctx context.Context, f *fleet, session string, mode view.Mode) *page {
	t.Helper()
	u := f.URL + "/sessions/" + session + "/embed?token=" + f.token(t, session, mode)
	if err := chromedp.Do(bctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	p := &page{ctx: bctx, t: t}
	want := map[view.Mode]string{view.ModeView: "view", view.ModeControl: "live"}[mode]
	p.waitJS(fmt.Sprintf(`document.getElementById("state").dataset.state === %q`, want), "state "+want)
	return p
}

func eval[T any](p *page, js string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitJS waits (20 s at most) until the expression js is true.
func (p *page) waitJS(js, what string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if eval[bool](p, js) {
			return
		}
		if time.Now().After(deadline) {
			state := eval[string](p, `document.getElementById("state").textContent`)
			p.t.Fatalf("page never reached %s (it shows %q)", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pixels reads the canvas at desktop coordinates.
func (p *page) pixels(pts [][2]int) []pixel {
	p.t.Helper()
	rgb := eval[[][3]int](p, fmt.Sprintf(`(() => {
		const c = document.querySelector("#screen canvas").getContext("2d");
		return %s.map(([x, y]) => Array.from(c.getImageData(x, y, 1, 1).data.slice(0, 3)));
	})()`, jsPoints(pts)))
	out := make([]pixel, len(rgb))
	for i, c := range rgb {
		out[i] = pixel{byte(c[2]), byte(c[1]), byte(c[0])}
	}
	return out
}

func jsPoints(pts [][2]int) string {
	var b strings.Builder
	b.WriteString("[")
	for i, p := range pts {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "[%d,%d]", p[0], p[1])
	}
	b.WriteString("]")
	return b.String()
}

// waitPixel waits until the canvas shows want at (x, y).
func (p *page) waitPixel(x, y int, want pixel) {
	p.t.Helper()
	p.waitJS(fmt.Sprintf(`(() => {
		const d = document.querySelector("#screen canvas").getContext("2d").getImageData(%d, %d, 1, 1).data;
		return Math.abs(d[0]-%d) <= 8 && Math.abs(d[1]-%d) <= 8 && Math.abs(d[2]-%d) <= 8;
	})()`, x, y, want[2], want[1], want[0]), fmt.Sprintf("pixel %v at (%d,%d)", want, x, y))
}

// pagePoint maps desktop coordinates to the page's (the canvas is scaled).
func (p *page) pagePoint(x, y int) (float64, float64) {
	p.t.Helper()
	xy := eval[[2]float64](p, fmt.Sprintf(`(() => {
		const c = document.querySelector("#screen canvas"), r = c.getBoundingClientRect();
		return [r.left + (%d + 0.5) * r.width / c.width, r.top + (%d + 0.5) * r.height / c.height];
	})()`, x, y))
	return xy[0], xy[1]
}

func (p *page) click(x, y int) {
	p.t.Helper()
	px, py := p.pagePoint(x, y)
	if err := chromedp.Do(p.ctx, chromedp.MouseClickXY(px, py)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *page) typeText(s string) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, chromedp.KeyEvent(s)); err != nil {
		p.t.Fatal(err)
	}
}

// setBackground paints the desktop's background and returns the colour.
func setBackground(t testing.TB, d *testDesktop, hex string) pixel {
	t.Helper()
	d.Msg(t, "output", "*", "bg", hex, "solid_color")
	var r, g, b byte
	fmt.Sscanf(hex, "#%02x%02x%02x", &r, &g, &b)
	return pixel{b, g, r, 0}
}

// smallProbe opens the probe terminal with a wide gap around it, so the
// background shows. (Not by floating it: after a tiled window floats,
// sway 1.7's headless output keeps stale pixels where it was.)
func smallProbe(t testing.TB, d *testDesktop) (log string, x, y int) {
	t.Helper()
	d.Msg(t, "gaps", "outer", "all", "set", "150")
	log, x, y = probe(t, d)
	// Let the desktop settle before a viewer connects: bounded polling on
	// fresh connections (wayvnc answers a new client with a fresh frame).
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn := dialUnix(t, d.VNCSock)
		c := newRFB(t, conn)
		fb := c.screen(t)
		conn.Close()
		if corner(c, fb) == bg && fb[y*c.Width+x] != bg {
			return log, x, y
		}
		if time.Now().After(deadline) {
			t.Fatalf("the probe window did not show within 15s: corner %v, centre %v", corner(c, fb), fb[y*c.Width+x])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The page shows the desktop: its canvas matches a frame read straight
// from the desktop's VNC server at the same moment.
func TestBrowserShowsDesktop(t *testing.T) {
	d := startDesktop(t, res)
	smallProbe(t, d)
	f := newFleet(t, dialer{"s-1": d.VNCSock})
	p := openViewer(t, startBrowser(t), f, "s-1", view.ModeControl)
	// A change after connecting shows live.
	green := setBackground(t, d, "#3a7d44")
	p.waitPixel(res.Width-5, res.Height-5, green)

	direct := newRFB(t, dialUnix(t, d.VNCSock))
	fb := direct.screen(t)
	var pts [][2]int
	for y := 40; y < res.Height; y += 97 {
		for x := 40; x < res.Width; x += 83 {
			pts = append(pts, [2]int{x, y})
		}
	}
	got := p.pixels(pts)
	terminal := 0
	for i, pt := range pts {
		want := fb[pt[1]*res.Width+pt[0]]
		if !near(got[i], want) {
			t.Errorf("canvas (%d,%d) = %v, desktop has %v", pt[0], pt[1], got[i], want)
		}
		if want != green {
			terminal++
		}
	}
	if terminal == 0 || terminal == len(pts) {
		t.Errorf("%d of %d sampled points on the terminal: want both the terminal and the background sampled", terminal, len(pts))
	}
}

// near allows for lossy encodings (noVNC asks for JPEG-compressed tight).
func near(a, b pixel) bool {
	for i := range 3 {
		if d := int(a[i]) - int(b[i]); d > 8 || d < -8 {
			return false
		}
	}
	return true
}

// A click and text typed in the page reach a program in the desktop with
// a control token, and not with a view token.
func TestBrowserInput(t *testing.T) {
	d := startDesktop(t, res)
	log, x, y := smallProbe(t, d)
	f := newFleet(t, dialer{"s-1": d.VNCSock})
	bctx := startBrowser(t)

	viewer := openViewer(t, bctx, f, "s-1", view.ModeView)
	viewer.click(x, y)
	viewer.typeText("seen")
	// Barrier: the canvas can show the second colour only in answer to an
	// update request noVNC sent after the input above; the desktop handles
	// a client's messages in order.
	viewer.waitPixel(res.Width-5, res.Height-5, setBackground(t, d, "#102030"))
	viewer.waitPixel(res.Width-5, res.Height-5, setBackground(t, d, "#302010"))

	ctl := openViewer(t, bctx, f, "s-1", view.ModeControl)
	ctl.click(x, y)
	ctl.typeText("ok")
	got := waitFile(t, log, []byte("ok"))
	if bytes.Contains(got, []byte("seen")) {
		t.Errorf("text typed in a view-only page reached the desktop: %q", got)
	}
	if n := bytes.Count(got, mousePress); n != 1 {
		t.Errorf("%d button presses reached the desktop, want 1 (the control page's): %q", n, got)
	}
	if !bytes.HasPrefix(got, mousePress) {
		t.Errorf("the desktop got %q before the control page's click", got)
	}
}

// After the desktop's VNC server restarts, the page says so and comes back
// live by itself.
func TestBrowserReconnects(t *testing.T) {
	d := startDesktop(t, res)
	f := newFleet(t, dialer{"s-1": d.VNCSock})
	p := openViewer(t, startBrowser(t), f, "s-1", view.ModeView)
	d.StopVNC()
	p.waitJS(`document.getElementById("state").dataset.state === "restarting"`, "state restarting")
	d.StartVNC(t)
	p.waitJS(`document.getElementById("state").dataset.state === "view"`, "state view again")
	p.waitPixel(res.Width-5, res.Height-5, setBackground(t, d, "#4a2a6a"))
}

// A page whose token has expired stops retrying and says why.
func TestBrowserExpiredLink(t *testing.T) {
	d := startDesktop(t, res)
	f := newFleet(t, dialer{"s-1": d.VNCSock})
	var skew atomic.Int64 // how far the fleet's clock is moved ahead
	f.tokens.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	p := openViewer(t, startBrowser(t), f, "s-1", view.ModeView)
	skew.Store(int64(2 * time.Minute)) // the minute-long token is now expired
	d.StopVNC()
	p.waitJS(`document.getElementById("state").dataset.state === "denied"`, "state denied")
}

// browserLeases is a control lease on which session s-1 has task t-1.
func browserLeases(t testing.TB) *control.Leases {
	t.Helper()
	leases := control.New(control.Options{})
	t.Cleanup(leases.Close)
	if err := leases.BeginTask("s-1", "t-1", nil); err != nil {
		t.Fatal(err)
	}
	return leases
}

// waitHolder waits until the page shows holder ("task", "you", "other",
// "nobody") with its words.
func (p *page) waitHolder(holder, text string) {
	p.t.Helper()
	p.waitJS(fmt.Sprintf(`document.getElementById("control").dataset.holder === %q &&
		document.getElementById("holder").textContent === %q`, holder, text), "holder "+holder)
}

// barrier returns once the desktop has handled the input the page sent
// before it (see TestBrowserInput).
func (p *page) barrier(t testing.TB, d *testDesktop) {
	t.Helper()
	p.waitPixel(res.Width-5, res.Height-5, setBackground(t, d, "#102030"))
	p.waitPixel(res.Width-5, res.Height-5, setBackground(t, d, "#302010"))
}

// While a task holds control, the control page's click does not reach the
// desktop; after "Take control" it does, a reload keeps control, and
// "Hand back" gives it to the task with the person's message.
func TestBrowserTakeControl(t *testing.T) {
	d := startDesktop(t, res)
	log, x, y := smallProbe(t, d)
	leases := browserLeases(t)
	f := newFleetWith(t, view.Options{Dialer: dialer{"s-1": d.VNCSock}, Control: leases, Input: sessions.Admission{Gate: leases}})
	p := openViewer(t, startBrowser(t), f, "s-1", view.ModeControl)
	p.waitHolder("task", "Agent in control")

	p.click(x, y)
	p.barrier(t, d)
	if got, _ := os.ReadFile(log); bytes.Contains(got, mousePress) {
		t.Fatalf("a click reached the desktop while the task held control: %q", got)
	}

	if err := chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS("#take"))); err != nil {
		t.Fatal(err)
	}
	p.waitHolder("you", "You have control")
	p.waitJS(`document.getElementById("task-state").textContent === "Paused for you" &&
		document.getElementById("take").hidden && !document.getElementById("handback").hidden`, "hand back offered")
	st := leases.State("s-1")
	if st.Holder == nil || st.Holder.Kind != control.KindPerson || st.Holder.Who != "viewer:control" || st.TaskState != control.TaskPausedForHuman {
		t.Fatalf("after Take control, state %+v, want a person (viewer:control) holding and the task paused", st)
	}
	p.click(x, y)
	waitFile(t, log, mousePress)

	// A reload keeps the viewer's id, so its control and its lease.
	if err := chromedp.Do(p.ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	p.waitJS(`document.getElementById("state").dataset.state === "live"`, "live again")
	p.waitHolder("you", "You have control")
	p.click(x, y)
	p.barrier(t, d)
	if got, _ := os.ReadFile(log); bytes.Count(got, mousePress) != 2 {
		t.Fatalf("after the reload, the desktop got %q: want 2 button presses", got)
	}

	if err := chromedp.Do(p.ctx,
		chromedp.SendKeys(chromedp.CSS("#note"), "the dialog is closed"),
		chromedp.Click(chromedp.CSS("#handback button"))); err != nil {
		t.Fatal(err)
	}
	p.waitHolder("task", "Agent in control")
	if st := leases.State("s-1"); st.Holder == nil || st.Holder.Kind != control.KindTask || st.TaskState != control.TaskRunning {
		t.Errorf("after Hand back, state %+v, want the task holding and running", st)
	}
	r, err := leases.WaitTurn(t.Context(), "s-1", "t-1")
	if err != nil || len(r.Periods) != 1 || r.Periods[0].Message != "the dialog is closed" || r.Periods[0].InputEvents < 4 {
		t.Errorf("the task heard %+v (%v), want one period with the message and both clicks counted", r, err)
	}
}

// A view-token page shows who holds control but offers no button, and
// its token cannot take control.
func TestBrowserViewTokenCannotTakeControl(t *testing.T) {
	d := startDesktop(t, res)
	leases := browserLeases(t)
	f := newFleetWith(t, view.Options{Dialer: dialer{"s-1": d.VNCSock}, Control: leases, Input: sessions.Admission{Gate: leases}})
	p := openViewer(t, startBrowser(t), f, "s-1", view.ModeView)
	p.waitHolder("task", "Agent in control")
	if !eval[bool](p, `document.getElementById("take").hidden && document.getElementById("handback").hidden`) {
		t.Error("a view-token page offers to take or hand back control")
	}
	got, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`fetch("embed/control" + location.search, {
		method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({action: "takeover", viewer: "v-1"}),
	}).then(async (r) => r.status + " " + (await r.json()).error.code)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if got != "403 token_mode" {
		t.Errorf("takeover with a view token: %s, want 403 token_mode", got)
	}
	if st := leases.State("s-1"); st.Holder == nil || st.Holder.Kind != control.KindTask || st.TaskState != control.TaskRunning {
		t.Errorf("after the refused takeover, state %+v, want the task holding and running", st)
	}
}
