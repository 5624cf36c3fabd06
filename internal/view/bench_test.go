package view_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"atelier/desktop"
	"atelier/internal/control"
	"atelier/internal/sessions"
	"atelier/internal/view"
)

// BenchmarkThroughput streams full-screen updates (raw encoding, 1280x720,
// 32 bits: 3.7 MB a frame) from a desktop whose whole screen changes all
// the time, straight from vnc.sock and through the proxy. One op is one
// frame; compare MB/s and frames/s of the three.
func BenchmarkThroughput(b *testing.B) {
	d := startDesktop(b, desktop.DefaultResolution)
	// A terminal repainting its whole window in alternating colours, about
	// 50 times a second (wayvnc sends at most 30 frames a second).
	d.Terminal(b, "flood", `while :; do printf '\033[41m\033[2J'; sleep 0.02; printf '\033[44m\033[2J'; sleep 0.02; done`)
	f := newFleet(b, dialer{"s-1": d.VNCSock})
	// A view token's stream is framed (its clipboard dropped), a control
	// token's copied as is.
	for _, via := range []string{"direct", "view", "control"} {
		b.Run(via, func(b *testing.B) {
			var conn net.Conn
			if via == "direct" {
				conn = dialUnix(b, d.VNCSock)
			} else {
				ws := f.dialView(b, "s-1", view.Mode(via))
				defer ws.CloseNow()
				conn = websocket.NetConn(b.Context(), ws, websocket.MessageBinary)
			}
			// Fail rather than hang if the desktop stops sending.
			conn.SetDeadline(time.Now().Add(2 * time.Minute))
			c := newRFB(b, conn)
			fb := make([]pixel, c.Width*c.Height)
			c.request(false)
			if _, err := c.frame(fb); err != nil {
				b.Fatal(err)
			}
			var total int
			t0 := time.Now()
			b.ResetTimer()
			for b.Loop() {
				if err := c.request(true); err != nil {
					b.Fatal(err)
				}
				n, err := c.frame(fb)
				if err != nil {
					b.Fatal(err)
				}
				total += n
			}
			secs := time.Since(t0).Seconds()
			b.ReportMetric(float64(total)/secs/1e6, "MB/s")
			b.ReportMetric(float64(b.N)/secs, "frames/s")
		})
	}
}

// toggleScript flips its terminal's colour at every left button press.
const toggleScript = `export LC_ALL=C
printf '\033[?1000h\033[41m\033[2J'
stty raw -echo
i=0
while IFS= read -r -n 6 -d '' m; do
  if [ "${m:3:1}" = " " ]; then
    i=$((1 - i))
    if [ $i = 1 ]; then printf '\033[44m\033[2J'; else printf '\033[41m\033[2J'; fi
  fi
done
`

// BenchmarkInputToPixel measures, in the browser, the time from a click on
// the viewer's canvas (the page's mousedown) to the changed pixels on its
// canvas; it reports the median. "lease" passes each input through a
// control lease the viewer holds; "ungated" has no lease.
func BenchmarkInputToPixel(b *testing.B) {
	d := startDesktop(b, desktop.DefaultResolution)
	script := d.FileOwnedByDesktop(b, "toggle.sh")
	if err := os.WriteFile(script, []byte(toggleScript), 0o644); err != nil {
		b.Fatal(err)
	}
	r := d.Terminal(b, "toggle", "bash "+script)
	// The click goes to the centre; the colour is read 40 px away, clear
	// of the pointer drawn there.
	x, y := r.X+r.Width/2, r.Y+r.Height/2
	bctx := startBrowser(b)
	for _, gated := range []bool{false, true} {
		name := map[bool]string{false: "ungated", true: "lease"}[gated]
		b.Run(name, func(b *testing.B) {
			opts := view.Options{Dialer: dialer{"s-1": d.VNCSock}}
			var leases *control.Leases
			if gated {
				leases = control.New(control.Options{})
				defer leases.Close()
				opts.Control, opts.Input = leases, sessions.Admission{Gate: leases}
			}
			p := openViewer(b, bctx, newFleetWith(b, opts), "s-1", view.ModeControl)
			if gated {
				viewer := eval[string](p, `sessionStorage.getItem("atelier.viewer")`)
				if _, err := leases.TakeOver(b.Context(), "s-1", "viewer:control", viewer); err != nil {
					b.Fatal(err)
				}
			}
			clickToPixel(b, p, x, y)
		})
	}
}

// clickToPixel runs BenchmarkInputToPixel's loop on page p, clicking at
// (x, y).
func clickToPixel(b *testing.B, p *page, x, y int) {
	eval[bool](p, `(() => {
		window.clickedAt = 0;
		document.addEventListener("mousedown", () => { window.clickedAt = performance.now(); }, true);
		const ctx = document.querySelector("#screen canvas").getContext("2d");
		const at = () => Array.from(ctx.getImageData(`+fmt.Sprint(x+40, ",", y+40)+`, 1, 1).data).join();
		window.armChange = () => {
			const before = at();
			window.changed = new Promise((resolve) => {
				const poll = () => at() !== before ? resolve(performance.now() - window.clickedAt) : setTimeout(poll, 1);
				poll();
			});
			return true;
		};
		return true;
	})()`)
	var lat []float64
	for b.Loop() {
		eval[bool](p, `window.armChange()`)
		p.click(x, y)
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`window.changed`, chromedp.EvalAwaitPromise))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, ms)
	}
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*9/10], "p90-ms")
}
