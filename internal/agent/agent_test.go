package agent_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/agent"
	"atelier/internal/agentapi"
	"atelier/internal/desktoptest"
)

// probeBin is the probe program (testdata/probe), built once for all tests.
var probeBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "atelier-probe-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(dir, 0o755) // the desktop user runs it
	probeBin = filepath.Join(dir, "probe")
	out, err := exec.Command("go", "build", "-o", probeBin, "./testdata/probe").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build probe: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is a bare sway with an agent serving it.
type env struct {
	sway   *desktoptest.Sway
	sock   string
	client *agentapi.Client
	srv    *agent.Server
}

func start(t testing.TB) *env {
	t.Helper()
	sw := desktoptest.StartSway(t, desktop.DefaultResolution)
	return serve(t, sw.WaylandSocket, sw)
}

// serve runs an agent for waylandSocket until the test ends.
func serve(t testing.TB, waylandSocket string, sw *desktoptest.Sway) *env {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := agent.New(agent.Options{
		WaylandSocket: waylandSocket,
		Status: func() agentapi.Status {
			return agentapi.Status{Ready: true, Components: []agentapi.Component{{Name: "sway", State: agentapi.StateRunning}}}
		},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	e := &env{sway: sw, sock: sock, client: agentapi.UnixClient(sock), srv: srv}
	t.Cleanup(func() {
		e.client.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after its context ended")
		}
	})
	return e
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func (e *env) do(t testing.TB, req agentapi.Request) agentapi.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := e.client.Do(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", req.Action, err)
	}
	return resp
}

// doErr sends req and returns the protocol error code it gets.
func (e *env) doErr(t testing.TB, req agentapi.Request) agentapi.Code {
	t.Helper()
	_, err := e.client.Do(context.Background(), req)
	var apiErr *agentapi.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("%s: want a protocol error, got %v", req.Action, err)
	}
	return apiErr.Code
}

// probe is the probe program running in a focused terminal.
type probe struct {
	out        string
	win        desktoptest.Rect
	rows, cols int
	cellW      int
	cellH      int
}

func (e *env) openProbe(t testing.TB) *probe {
	t.Helper()
	out := filepath.Join(e.sway.Dir, "probe.out")
	os.Remove(out)
	os.Remove(out + ".size")
	// One wheel step is one report (foot scrolls three lines per step by default).
	e.sway.Exec(t, fmt.Sprintf("foot --app-id=probe -o pad=0x0 -o scrollback.multiplier=1 -- %s %s", probeBin, out))
	p := &probe{out: out, win: e.sway.WaitWindow(t, "probe")}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(out + ".size")
		var xpix, ypix int
		if err == nil {
			// The size is final once it fills the tiled window.
			_, err = fmt.Sscanf(string(b), "%d %d %d %d", &p.rows, &p.cols, &xpix, &ypix)
			if err == nil && xpix > p.win.Width/2 && ypix > p.win.Height/2 {
				p.cellW, p.cellH = xpix/p.cols, ypix/p.rows
				p.win = e.sway.WaitWindow(t, "probe") // the layout has settled now
				t.Logf("probe terminal: %q in window %+v", b, p.win)
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// expect waits (5 s at most) until the probe has received exactly want.
func (p *probe) expect(t testing.TB, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := os.ReadFile(p.out)
		if string(got) == want {
			os.WriteFile(p.out, nil, 0o644) // the next expectation starts empty
			return
		}
		if time.Now().After(deadline) || (len(got) > len(want)) {
			// Give stragglers a moment so the message shows everything that came.
			time.Sleep(100 * time.Millisecond)
			got, _ = os.ReadFile(p.out)
			t.Fatalf("probe received\n %q\nwant\n %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cell returns the output pixel at the centre of the 1-based cell.
func (p *probe) cell(col, row int) *agentapi.Point {
	return &agentapi.Point{X: p.win.X + (col-1)*p.cellW + p.cellW/2, Y: p.win.Y + (row-1)*p.cellH + p.cellH/2}
}

func TestScreenshot(t *testing.T) {
	e := start(t)
	for _, tc := range []struct {
		name string
		req  agentapi.Request
		w, h int
	}{
		{"png", agentapi.Request{Action: agentapi.Screenshot}, 1280, 720},
		{"jpeg", agentapi.Request{Action: agentapi.Screenshot, Format: agentapi.FormatJPEG, Quality: 60}, 1280, 720},
		{"region", agentapi.Request{Action: agentapi.Screenshot, Region: &agentapi.Region{X: 100, Y: 50, Width: 300, Height: 200}}, 300, 200},
		{"scale", agentapi.Request{Action: agentapi.Screenshot, Scale: 0.5}, 640, 360},
		{"region scaled jpeg", agentapi.Request{Action: agentapi.Screenshot, Format: agentapi.FormatJPEG, Scale: 0.25,
			Region: &agentapi.Region{X: 1000, Y: 600, Width: 280, Height: 120}}, 70, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.do(t, tc.req)
			im := resp.Image
			if im == nil || im.Width != tc.w || im.Height != tc.h {
				t.Fatalf("image %+v, want %dx%d", im, tc.w, tc.h)
			}
			var img image.Image
			var err error
			if tc.req.Format == agentapi.FormatJPEG {
				img, err = jpeg.Decode(bytes.NewReader(im.Data))
			} else {
				img, err = png.Decode(bytes.NewReader(im.Data))
			}
			if err != nil {
				t.Fatalf("decode %s: %v", im.Format, err)
			}
			if b := img.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
				t.Fatalf("decoded %v, want %dx%d", b, tc.w, tc.h)
			}
		})
	}
}

// TestScreenshotShowsTerminal checks the pixels are the desktop's: they
// change where a terminal opens, and a region matches the same part of the
// full screenshot.
func TestScreenshotShowsTerminal(t *testing.T) {
	e := start(t)
	shot := func(region *agentapi.Region) *image.NRGBA {
		resp := e.do(t, agentapi.Request{Action: agentapi.Screenshot, Region: region})
		img, err := png.Decode(bytes.NewReader(resp.Image.Data))
		if err != nil {
			t.Fatal(err)
		}
		n := image.NewNRGBA(img.Bounds())
		for y := range img.Bounds().Dy() {
			for x := range img.Bounds().Dx() {
				n.Set(x, y, img.At(x, y))
			}
		}
		return n
	}
	before := shot(nil)
	p := e.openProbe(t)
	// The terminal draws its first frame in its own time.
	after := shot(nil)
	for deadline := time.Now().Add(5 * time.Second); bytes.Equal(before.Pix, after.Pix); after = shot(nil) {
		if time.Now().After(deadline) {
			t.Fatal("screenshot did not change after a terminal opened")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The first change may be a frame of several: compare a region with a
	// full shot only once the screen is still.
	e.do(t, agentapi.Request{Action: agentapi.Settle, Quiet: 0.2, Duration: 5})
	after = shot(nil)
	// The background is uniform; the terminal is not the background colour.
	bg, term := before.NRGBAAt(640, 360), after.NRGBAAt(p.win.X+5, p.win.Y+5)
	if bg != before.NRGBAAt(10, 700) || bg == term {
		t.Errorf("background %v, terminal %v: want a uniform background the terminal differs from", bg, term)
	}
	r := &agentapi.Region{X: 200, Y: 100, Width: 64, Height: 48}
	part := shot(r)
	for y := range r.Height {
		for x := range r.Width {
			if part.NRGBAAt(x, y) != after.NRGBAAt(r.X+x, r.Y+y) {
				t.Fatalf("region pixel (%d,%d) = %v, full screenshot has %v", x, y, part.NRGBAAt(x, y), after.NRGBAAt(r.X+x, r.Y+y))
			}
		}
	}
}

func TestTypeArrives(t *testing.T) {
	e := start(t)
	p := e.openProbe(t)
	// The first keystroke after a keymap change must arrive: the accented
	// letter makes the agent extend its keymap before typing.
	for _, text := range []string{
		"héllo ✓ wörld",
		"The quick brown fox jumps over the lazy dog 0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
		"日本語のテキスト 中文 한국어",
		"emoji 😀🎉👍🏽",
		"a\tb\nc",
	} {
		e.do(t, agentapi.Request{Action: agentapi.Type, Text: text})
		want := strings.NewReplacer("\n", "\r").Replace(text) // Return sends CR
		p.expect(t, want)
	}
}

// TestTypeManyDistinct types more distinct characters than the keymap can
// hold at once, so it is reset and uploaded several times in one request.
func TestTypeManyDistinct(t *testing.T) {
	e := start(t)
	p := e.openProbe(t)
	var b strings.Builder
	for r := rune(0x4e00); r < 0x4e00+200; r++ {
		b.WriteRune(r)
	}
	e.do(t, agentapi.Request{Action: agentapi.Type, Text: b.String()})
	p.expect(t, b.String())
	e.do(t, agentapi.Request{Action: agentapi.Type, Text: "ok é"})
	p.expect(t, "ok é")
}

func TestKeyCombos(t *testing.T) {
	e := start(t)
	p := e.openProbe(t)
	for _, tc := range []struct{ key, want string }{
		{"ctrl+a", "\x01"},
		{"Control+E", "\x05"},
		{"shift+Tab", "\x1b[Z"},
		{"alt+x", "\x1bx"},
		{"Return", "\r"},
		{"Enter", "\r"},
		{"BackSpace", "\x7f"},
		{"Escape", "\x1b"},
		{"Up", "\x1b[A"},
		{"shift+a", "A"},
		{"F10", "\x1b[21~"},
		{"space", " "},
		{"ctrl+a ctrl+e", "\x01\x05"},
		{"é", "é"},
	} {
		e.do(t, agentapi.Request{Action: agentapi.Key, Text: tc.key})
		p.expect(t, tc.want)
	}
	e.do(t, agentapi.Request{Action: agentapi.HoldKey, Text: "x", Duration: 0.05})
	p.expect(t, "x")
}

func TestClickLandsOnCell(t *testing.T) {
	e := start(t)
	p := e.openProbe(t)
	for _, c := range []struct{ col, row int }{{1, 1}, {10, 3}, {p.cols, p.rows}, {p.cols / 2, p.rows / 2}} {
		at := p.cell(c.col, c.row)
		resp := e.do(t, agentapi.Request{Action: agentapi.LeftClick, Coordinate: at})
		if resp.Cursor == nil || *resp.Cursor != *at {
			t.Errorf("cursor %v after clicking %v", resp.Cursor, at)
		}
		p.expect(t, fmt.Sprintf("\x1b[<0;%d;%dM\x1b[<0;%d;%dm", c.col, c.row, c.col, c.row))
	}
	// Buttons, a click where the pointer is, modifiers (shift adds 4, ctrl 16).
	e.do(t, agentapi.Request{Action: agentapi.MouseMove, Coordinate: p.cell(7, 2)})
	e.do(t, agentapi.Request{Action: agentapi.RightClick})
	p.expect(t, "\x1b[<2;7;2M\x1b[<2;7;2m")
	e.do(t, agentapi.Request{Action: agentapi.MiddleClick, Coordinate: p.cell(8, 2)})
	p.expect(t, "\x1b[<1;8;2M\x1b[<1;8;2m")
	e.do(t, agentapi.Request{Action: agentapi.LeftClick, Coordinate: p.cell(9, 2), Modifiers: "ctrl"})
	p.expect(t, "\x1b[<16;9;2M\x1b[<16;9;2m")
	e.do(t, agentapi.Request{Action: agentapi.DoubleClick, Coordinate: p.cell(3, 3)})
	p.expect(t, strings.Repeat("\x1b[<0;3;3M\x1b[<0;3;3m", 2))
	e.do(t, agentapi.Request{Action: agentapi.TripleClick})
	p.expect(t, strings.Repeat("\x1b[<0;3;3M\x1b[<0;3;3m", 3))
	resp := e.do(t, agentapi.Request{Action: agentapi.CursorPosition})
	if *resp.Cursor != *p.cell(3, 3) {
		t.Errorf("cursor_position %v, want %v", resp.Cursor, p.cell(3, 3))
	}
}

func TestScrollAndDrag(t *testing.T) {
	e := start(t)
	p := e.openProbe(t)
	at := p.cell(5, 5)
	for _, tc := range []struct {
		dir    string
		amount int
		button int
	}{{"up", 2, 64}, {"down", 0, 65}, {"left", 1, 66}, {"right", 4, 67}} {
		e.do(t, agentapi.Request{Action: agentapi.Scroll, Coordinate: at, ScrollDirection: tc.dir, ScrollAmount: tc.amount})
		n := tc.amount
		if n == 0 {
			n = agent.DefaultScrollAmount
		}
		one := fmt.Sprintf("\x1b[<%d;5;5M", tc.button)
		if tc.button >= 66 { // foot reports a release for the horizontal wheel buttons
			one += fmt.Sprintf("\x1b[<%d;5;5m", tc.button)
		}
		p.expect(t, strings.Repeat(one, n))
	}
	// Drag: press at the start, motion with the button held, release at the end.
	e.do(t, agentapi.Request{Action: agentapi.LeftClickDrag, StartCoordinate: p.cell(2, 2), Coordinate: p.cell(6, 2)})
	got, _ := os.ReadFile(p.out)
	deadline := time.Now().Add(5 * time.Second)
	for !bytes.HasSuffix(got, []byte("m")) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		got, _ = os.ReadFile(p.out)
	}
	s := string(got)
	if !strings.HasPrefix(s, "\x1b[<0;2;2M") || !strings.Contains(s, "\x1b[<32;4;2M") || !strings.HasSuffix(s, "\x1b[<0;6;2m") {
		t.Fatalf("drag reported %q: want press at 2;2, motion through 4;2, release at 6;2", s)
	}
	os.WriteFile(p.out, nil, 0o644)
	e.do(t, agentapi.Request{Action: agentapi.LeftMouseDown, Coordinate: p.cell(3, 4)})
	e.do(t, agentapi.Request{Action: agentapi.LeftMouseUp, Coordinate: p.cell(3, 4)})
	p.expect(t, "\x1b[<0;3;4M\x1b[<0;3;4m")
}

// TestBadRequests checks that each bad request gets its code and does
// nothing: the probe receives nothing and the cursor stays put.
func TestBadRequests(t *testing.T) {
	e := start(t)
	p := e.openProbe(t)
	home := p.cell(4, 4)
	e.do(t, agentapi.Request{Action: agentapi.MouseMove, Coordinate: home})
	for _, tc := range []struct {
		line string
		code agentapi.Code
	}{
		{`{"v":1,"action":"fly"}`, agentapi.CodeUnknownAction},
		{`{"v":2,"action":"left_click"}`, agentapi.CodeBadVersion},
		{`{"v":1,"action":"left_click","colour":"red"}`, agentapi.CodeUnknownField},
		{`{"v":1,"action":"left_click","coordinate":[1280,10]}`, agentapi.CodeBadCoordinate},
		{`{"v":1,"action":"mouse_move","coordinate":[-1,10]}`, agentapi.CodeBadCoordinate},
		{`{"v":1,"action":"screenshot","region":{"x":1200,"y":0,"width":100,"height":10}}`, agentapi.CodeBadCoordinate},
		{`{"v":1,"action":"key","text":"ctrl+nosuchkey"}`, agentapi.CodeBadKey},
		{`{"v":1,"action":"key","text":"hyper+a"}`, agentapi.CodeBadKey},
		{`{"v":1,"action":"key","text":"a ctrl+bogus"}`, agentapi.CodeBadKey},
		{`{"v":1,"action":"left_click","coordinate":[5,5],"modifiers":"ctrl+banana"}`, agentapi.CodeBadKey},
		{`{"v":1,"action":"type","text":"ab\u0007c"}`, agentapi.CodeBadField},
		{`{"v":1,"action":"type"}`, agentapi.CodeMissingField},
		{`not json`, agentapi.CodeBadJSON},
	} {
		resp := rawRequest(t, e.sock, tc.line)
		if resp.OK || resp.Error == nil || resp.Error.Code != tc.code {
			t.Errorf("%s: got %+v, want code %s", tc.line, resp.Error, tc.code)
		}
	}
	time.Sleep(100 * time.Millisecond) // nothing is expected; give a stray event time to show
	if got, _ := os.ReadFile(p.out); len(got) != 0 {
		t.Errorf("bad requests reached the terminal: %q", got)
	}
	if resp := e.do(t, agentapi.Request{Action: agentapi.CursorPosition}); *resp.Cursor != *home {
		t.Errorf("cursor moved to %v by bad requests", resp.Cursor)
	}
}

// rawRequest sends one line on a fresh connection and reads the response.
func rawRequest(t testing.TB, sock, line string) agentapi.Response {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := agentapi.ReadResponse(bufioReader(c))
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return resp
}
