package view_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
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

// BenchmarkTightFrame reads whole frames of a terminal full of text
// straight from vnc.sock in Tight, as noVNC asks for it by default
// (quality level 6: lossless zlib tiles from wayvnc 0.5) and as the
// viewer does (level 9: JPEG tiles), and reports their size: what a
// full-screen change costs a viewer's link. One op is one frame.
func BenchmarkTightFrame(b *testing.B) {
	d := startDesktop(b, desktop.DefaultResolution)
	d.Terminal(b, "text", `ls -l --color=always /usr/bin /usr/lib | head -c 20000; sleep 3600`)
	for _, q := range []struct {
		name  string
		level int32
	}{{"lossless", qualityLevel6}, {"jpeg", qualityLevel9}} {
		b.Run(q.name, func(b *testing.B) {
			conn := dialUnix(b, d.VNCSock)
			conn.SetDeadline(time.Now().Add(2 * time.Minute))
			c := newRFB(b, conn)
			m := []byte{2, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 0}
			binary.BigEndian.PutUint32(m[8:], uint32(q.level))
			if _, err := conn.Write(m); err != nil {
				b.Fatal(err)
			}
			var total int
			for b.Loop() {
				if err := c.request(false); err != nil {
					b.Fatal(err)
				}
				n, err := tightFrame(c.r)
				if err != nil {
					b.Fatal(err)
				}
				total += n
			}
			b.ReportMetric(float64(total)/float64(b.N)/1e3, "kB/frame")
		})
	}
}

// tightFrame reads one FramebufferUpdate of Tight rectangles as wayvnc
// 0.5 sends them (basic compression without a filter, JPEG) and returns
// its size in bytes.
func tightFrame(r *bufio.Reader) (int, error) {
	h := make([]byte, 12)
	if _, err := io.ReadFull(r, h[:4]); err != nil {
		return 0, err
	}
	if h[0] != 0 {
		return 0, fmt.Errorf("server message %d, want a FramebufferUpdate", h[0])
	}
	read := 4
	for range binary.BigEndian.Uint16(h[2:]) {
		if _, err := io.ReadFull(r, h); err != nil {
			return read, err
		}
		w, ht := int(binary.BigEndian.Uint16(h[4:])), int(binary.BigEndian.Uint16(h[6:]))
		if enc := int32(binary.BigEndian.Uint32(h[8:])); enc != 7 {
			return read, fmt.Errorf("rect encoding %d, want Tight", enc)
		}
		control, err := r.ReadByte()
		if err != nil {
			return read, err
		}
		read += 13
		var n int
		switch op := control >> 4; {
		case op == 0x9: // JPEG
		case op < 0x4: // basic, copy filter: 3 bytes a pixel
			if n = w * ht * 3; n < 12 {
				break // sent as is
			}
			n = 0
		default:
			return read, fmt.Errorf("Tight compression control %#x", control)
		}
		if n == 0 {
			// A compact length: 7 bits a byte, low first, at most 3 bytes.
			for i := range 3 {
				c, err := r.ReadByte()
				if err != nil {
					return read, err
				}
				read++
				n |= int(c&0x7f) << (7 * i)
				if c&0x80 == 0 {
					break
				}
			}
		}
		if _, err := r.Discard(n); err != nil {
			return read, err
		}
		read += n
	}
	return read, nil
}

// toggleScript flips its terminal's colour at every left button press,
// and then appends the time (seconds since the epoch, µs) to the file $1.
const toggleScript = `export LC_ALL=C
printf '\033[?1000h\033[41m\033[2J'
stty raw -echo
i=0
while IFS= read -r -n 6 -d '' m; do
  if [ "${m:3:1}" = " " ]; then
    i=$((1 - i))
    if [ $i = 1 ]; then printf '\033[44m\033[2J'; else printf '\033[41m\033[2J'; fi
    echo "$EPOCHREALTIME" >> "$1"
  fi
done
`

// BenchmarkInputToPixel measures, in the browser, the time from a click on
// the viewer's canvas (the page's mousedown) to the changed pixels on its
// canvas, and splits it into stages timed at the proxy's desktop side and
// in the page (see clickToPixel). "lease" passes each input through a
// control lease the viewer holds; "ungated" has no lease; "lossless" has
// none either, and asks for noVNC's default quality level instead of the
// viewer's, to compare: wayvnc 0.5 answers it with zlib tiles, not JPEG.
func BenchmarkInputToPixel(b *testing.B) {
	d := startDesktop(b, desktop.DefaultResolution)
	script := d.FileOwnedByDesktop(b, "toggle.sh")
	if err := os.WriteFile(script, []byte(toggleScript), 0o644); err != nil {
		b.Fatal(err)
	}
	toggles := d.FileOwnedByDesktop(b, "toggles")
	r := d.Terminal(b, "toggle", "bash "+script+" "+toggles)
	// The click goes to the centre; the colour is read 40 px away, clear
	// of the pointer drawn there.
	x, y := r.X+r.Width/2, r.Y+r.Height/2
	bctx := startBrowser(b)
	timePages(b, bctx)
	for _, name := range []string{"ungated", "lease", "lossless"} {
		gated := name == "lease"
		b.Run(name, func(b *testing.B) {
			clock := &stageClock{toggles: toggles}
			opts := view.Options{Dialer: timedDialer{dialer{"s-1": d.VNCSock}, clock, name == "lossless"}}
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
			clickToPixel(b, p, d, clock, x, y)
		})
	}
}

// pageTimes keeps, for each WebSocket message, when it arrived and when
// noVNC was done with it (window.wsAt, [arrived, handled] in
// performance.now(), the last 64): a listener added at construction runs
// before noVNC's, which it sets before the socket opens; one added at
// opening runs after. (noVNC checks a socket's own prototype: it has to
// be a WebSocket's.)
const pageTimes = `window.wsAt = [];
const NativeWebSocket = WebSocket;
window.WebSocket = function (...args) {
	const ws = new NativeWebSocket(...args);
	let arrived = 0;
	ws.addEventListener("message", () => { arrived = performance.now(); });
	ws.addEventListener("open", () => ws.addEventListener("message", () => {
		window.wsAt.push([arrived, performance.now()]);
		if (window.wsAt.length > 64) window.wsAt.shift();
	}));
	return ws;
};
Object.assign(window.WebSocket, {prototype: NativeWebSocket.prototype,
	CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});`

// timePages makes every page the browser opens run pageTimes.
func timePages(t testing.TB, bctx context.Context) {
	t.Helper()
	_, err := chromedp.Run(bctx, func(ctx context.Context, tg *chromedp.Target) (cdppage.AddScriptToEvaluateOnNewDocumentResult, error) {
		return cdp.Call(ctx, tg, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: pageTimes})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// clickToPixel runs BenchmarkInputToPixel's loop on page p, viewing d,
// clicking at (x, y), and reports the click → pixel time and its stages, each as p50
// and p90 in ms:
//
//   - up: mousedown → the button press written to the desktop (noVNC's
//     send, the WebSocket, the proxy's filter);
//   - input: → the terminal's answer written (wayvnc's input into sway,
//     the terminal's mouse report, the script's read and print);
//   - frame: → the desktop's first bytes after the press read at the
//     proxy (the terminal's drawing, sway's frame clock, wayvnc's capture
//     and encoding);
//   - down: → the arrival of the last WebSocket message noVNC handled
//     before the pixel changed (the proxy's send, the browser's socket);
//   - draw: → noVNC done with that message (its decoding, and drawing
//     into the canvas shown);
//   - poll: → the changed pixel read by the page's poll: the poll's timer
//     (4 ms apart once nested, more when the page is busy), and Chrome's
//     work to read the canvas (more after JPEG tiles);
//
// and the size of the desktop's answer (kB read from the desktop between
// the press and the pixel).
func clickToPixel(b *testing.B, p *page, d *testDesktop, clock *stageClock, x, y int) {
	// Start once the page shows what the desktop does: a click armed while
	// the page still draws its first frame would time that frame.
	direct := newRFB(b, dialUnix(b, d.VNCSock))
	fb := direct.screen(b)
	p.waitPixel(x+40, y+40, fb[(y+40)*direct.Width+x+40])
	eval[bool](p, `(() => {
		window.clickedAt = 0;
		document.addEventListener("mousedown", () => { window.clickedAt = performance.now(); }, true);
		const ctx = document.querySelector("#screen canvas").getContext("2d");
		const at = () => Array.from(ctx.getImageData(`+fmt.Sprint(x+40, ",", y+40)+`, 1, 1).data).join();
		window.armChange = () => {
			const before = at();
			window.changed = new Promise((resolve) => {
				const poll = () => {
					if (at() === before) {
						setTimeout(poll, 1);
						return;
					}
					const seen = performance.now();
					const [arrived, handled] = window.wsAt.findLast(([, h]) => h <= seen) ?? [NaN, NaN];
					resolve([window.clickedAt, arrived, handled, seen]);
				};
				poll();
			});
			return true;
		};
		return true;
	})()`)
	origin := pageOrigin(b, p)
	var total, up, input, frame, down, draw, poll, update []float64
	// click clicks once and, if record, keeps the times of its stages.
	click := func(record bool) {
		eval[bool](p, `window.armChange()`)
		presses, toggles := clock.presses(), len(clock.toggled(b))
		p.click(x, y)
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		t, err := chromedp.Run(ctx, chromedp.Evaluate[[4]float64](`window.changed`, chromedp.EvalAwaitPromise))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		// In page time (ms since its origin): mousedown, the last message
		// before the pixel arrived and handled, pixel seen; the proxy's and
		// terminal's times mapped onto it.
		clicked, arrived, handled, seen := t[0], t[1], t[2], t[3]
		pressed, answered, ok := clock.answer(presses)
		if !ok {
			b.Fatalf("the desktop connection saw no press after the click (or no update after it): %d presses before, %d now", presses, clock.presses())
		}
		toggled := clock.toggled(b)
		if len(toggled) <= toggles {
			b.Fatal("the terminal did not note its answer to the click")
		}
		if !record {
			return
		}
		pw, tg, fr := pageTime(origin, pressed), pageTime(origin, toggled[toggles]), pageTime(origin, answered)
		update = append(update, float64(clock.read(pressed, origin.Add(time.Duration(seen*float64(time.Millisecond)))))/1e3)
		total = append(total, seen-clicked)
		up = append(up, pw-clicked)
		input = append(input, tg-pw)
		frame = append(frame, fr-tg)
		down = append(down, arrived-fr)
		draw = append(draw, handled-arrived)
		poll = append(poll, seen-handled)
	}
	// A new page's first clicks are slower (its first JPEG decodes, noVNC's
	// code not yet compiled): 6–10 ms more at p50 over 30 clicks when one
	// case ran first. They are not what a viewer feels after a moment.
	const warmClicks = 5
	for range warmClicks {
		click(false)
	}
	for b.Loop() {
		click(true)
	}
	for _, s := range []struct {
		name string
		ms   []float64
	}{{"", total}, {"up-", up}, {"input-", input}, {"frame-", frame}, {"down-", down}, {"draw-", draw}, {"poll-", poll}} {
		slices.Sort(s.ms)
		b.ReportMetric(s.ms[len(s.ms)/2], s.name+"p50-ms")
		b.ReportMetric(s.ms[len(s.ms)*9/10], s.name+"p90-ms")
	}
	slices.Sort(update)
	b.ReportMetric(update[len(update)/2], "update-p50-kB")
}

// pageOrigin is the wall-clock time of the page's performance.now() 0:
// its performance.timeOrigin, on the same clock as the test's time.Now().
func pageOrigin(t testing.TB, p *page) time.Time {
	t.Helper()
	ms := eval[float64](p, `performance.timeOrigin`)
	return time.UnixMicro(int64(ms * 1e3))
}

// pageTime is t in the page's performance.now() ms.
func pageTime(origin, t time.Time) float64 {
	return float64(t.Sub(origin)) / float64(time.Millisecond)
}

// stageClock keeps, for BenchmarkInputToPixel's stages, when the proxy
// wrote each button press to the desktop and when each of the desktop's
// reads returned; the terminal keeps when it answered each press.
type stageClock struct {
	// toggles is toggleScript's file of the times it answered.
	toggles string

	mu        sync.Mutex
	pressedAt []time.Time
	readAt    []time.Time
	readN     []int
}

// presses is how many button presses have been written so far.
func (c *stageClock) presses() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pressedAt)
}

// answer returns when press i (0: the first) was written and when the
// first read from the desktop after it returned.
func (c *stageClock) answer(i int) (pressed, answered time.Time, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i >= len(c.pressedAt) {
		return pressed, answered, false
	}
	pressed = c.pressedAt[i]
	j := slices.IndexFunc(c.readAt, func(r time.Time) bool { return r.After(pressed) })
	if j < 0 {
		return pressed, answered, false
	}
	return pressed, c.readAt[j], true
}

// toggled returns when the terminal answered each press so far.
func (c *stageClock) toggled(t testing.TB) []time.Time {
	t.Helper()
	b, err := os.ReadFile(c.toggles)
	if err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	for line := range strings.Lines(string(b)) {
		sec, err := strconv.ParseFloat(strings.TrimSpace(line), 64)
		if err != nil {
			t.Fatalf("toggle time %q: %v", line, err)
		}
		at = append(at, time.UnixMicro(int64(math.Round(sec*1e6))))
	}
	return at
}

// read is how many bytes the reads from the desktop returning after from
// and before to brought.
func (c *stageClock) read(from, to time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for i, t := range c.readAt {
		if t.After(from) && t.Before(to) {
			n += c.readN[i]
		}
	}
	return n
}

// timedDialer dials as d does and times the connection on clock.
type timedDialer struct {
	d        dialer
	clock    *stageClock
	lossless bool // see timedConn
}

func (d timedDialer) DialVNC(ctx context.Context, id string) (net.Conn, error) {
	c, err := d.d.DialVNC(ctx, id)
	if err != nil {
		return nil, err
	}
	// The handshake's bytes: version, security type, ClientInit.
	return &timedConn{Conn: c, clock: d.clock, lossless: d.lossless, skip: 12 + 1 + 1}, nil
}

// timedConn is the proxy's connection to the desktop, timed: it follows
// the viewer's messages in what the proxy writes to find button presses.
type timedConn struct {
	net.Conn
	clock *stageClock
	// lossless makes the viewer's SetEncodings ask for noVNC's default
	// quality level (6, lossless for wayvnc 0.5) instead of 9 (JPEG).
	lossless bool
	// pending is the written bytes not yet a whole message; skip, the
	// handshake's (version, security type, ClientInit) still to come;
	// lost, a message not understood: the rest goes out as it comes.
	pending []byte
	skip    int
	lost    bool
}

func (c *timedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		now := time.Now()
		c.clock.mu.Lock()
		c.clock.readAt = append(c.clock.readAt, now)
		c.clock.readN = append(c.clock.readN, n)
		c.clock.mu.Unlock()
	}
	return n, err
}

// Write sends the viewer's messages on once whole (the handshake's bytes
// as they come), noting when each button press went out.
func (c *timedConn) Write(b []byte) (int, error) {
	c.pending = append(c.pending, b...)
	n := min(c.skip, len(c.pending))
	c.skip -= n
	presses := 0
	for c.skip == 0 && !c.lost {
		m := clientMessageLen(c.pending[n:])
		if m < 0 {
			c.lost = true
			break
		}
		if m == 0 || n+m > len(c.pending) {
			break
		}
		switch msg := c.pending[n : n+m]; {
		case msg[0] == 5 && msg[1]&1 != 0:
			presses++
		case msg[0] == 2 && c.lossless:
			for i := 4; i < m; i += 4 {
				if e := int32(binary.BigEndian.Uint32(msg[i:])); e == qualityLevel9 {
					e = qualityLevel6
					binary.BigEndian.PutUint32(msg[i:], uint32(e))
				}
			}
		}
		n += m
	}
	if c.lost {
		n = len(c.pending)
	}
	_, err := c.Conn.Write(c.pending[:n])
	now := time.Now()
	c.pending = append(c.pending[:0], c.pending[n:]...)
	c.clock.mu.Lock()
	for range presses {
		c.clock.pressedAt = append(c.clock.pressedAt, now)
	}
	c.clock.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// noVNC's quality levels (pseudo-encodings).
const (
	qualityLevel6 int32 = -26
	qualityLevel9 int32 = -23
)

// clientMessageLen is the length of the RFB client message at the start
// of b, 0 while b is too short to tell, -1 for a type it does not know.
func clientMessageLen(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	field := func(at, size int) (int, bool) {
		if len(b) < at+size {
			return 0, false
		}
		v := 0
		for _, x := range b[at : at+size] {
			v = v<<8 | int(x)
		}
		return v, true
	}
	switch b[0] {
	case 0: // SetPixelFormat
		return 20
	case 2: // SetEncodings
		n, ok := field(2, 2)
		if !ok {
			return 0
		}
		return 4 + 4*n
	case 3, 150: // FramebufferUpdateRequest, EnableContinuousUpdates
		return 10
	case 4: // KeyEvent
		return 8
	case 5: // PointerEvent
		return 6
	case 6: // ClientCutText
		n, ok := field(4, 4)
		if !ok {
			return 0
		}
		return 8 + n
	case 248: // Fence
		n, ok := field(8, 1)
		if !ok {
			return 0
		}
		return 9 + n
	case 255: // QEMU extended key event
		return 12
	}
	return -1
}
