package desktoptest_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	_ "image/jpeg"
	"image/png"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"atelier/desktop"
	"atelier/internal/agent/supervisor"
	"atelier/internal/agentapi"
	"atelier/internal/desktoptest"
	"atelier/internal/desktoptest/ttyinput"
)

func TestMain(m *testing.M) { desktoptest.Main(m) }

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short: starts a real desktop")
	}
}

// TestDesktopInput drives one desktop through agent.sock and checks, with the
// probe in a terminal, that what a client asks for arrives.
func TestDesktopInput(t *testing.T) {
	skipShort(t)
	d := desktoptest.Start(t, desktoptest.Options{})
	p := d.StartProbe(t, "probe")

	t.Run("status", func(t *testing.T) {
		st := d.Status(t)
		if st.Width != 1280 || st.Height != 720 || !st.Ready {
			t.Errorf("status = %dx%d ready=%v, want 1280x720 ready", st.Width, st.Height, st.Ready)
		}
		var names []string
		for _, c := range st.Components {
			names = append(names, c.Name)
			if c.State != agentapi.StateRunning || c.PID == 0 || c.Restarts != 0 {
				t.Errorf("component %+v: want running, with a pid, never restarted", c)
			}
		}
		if diff := cmp.Diff([]string{"sway", "wayvnc", "waybar"}, names); diff != "" {
			t.Errorf("components (-want +got):\n%s", diff)
		}
		if log := d.ComponentLog(supervisor.Sway); strings.Contains(log, "Error on line") {
			t.Errorf("sway rejects part of its config:\n%s", log)
		}
		conn, err := net.Dial("unix", filepath.Join(d.RunDir, desktop.VNCSocket))
		if err != nil {
			t.Fatalf("vnc.sock: %v", err)
		}
		defer conn.Close()
		banner := make([]byte, 12)
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(conn, banner); err != nil || string(banner) != "RFB 003.008\n" {
			t.Fatalf("vnc.sock greets %q (%v), want the RFB 3.8 banner", banner, err)
		}
		// The fleet's viewer connects without a password: security type None (1).
		conn.Write(banner)
		types := make([]byte, 1)
		if _, err := io.ReadFull(conn, types); err != nil || types[0] == 0 {
			t.Fatalf("no security types after the version (%v)", err)
		}
		types = make([]byte, types[0])
		if _, err := io.ReadFull(conn, types); err != nil || !bytes.Contains(types, []byte{1}) {
			t.Errorf("vnc.sock offers security types %v (%v), want None (1) among them", types, err)
		}
	})

	t.Run("type", func(t *testing.T) {
		for _, text := range []string{"hello, world", "héllo ✓ wörld", "日本語", "🎉", "line one\nline two\tcolumn"} {
			evs := p.Do(t, agentapi.Request{Action: agentapi.Type, Text: text})
			if got := desktoptest.AsText(evs); got != text {
				t.Errorf("type %q: the probe got %q", text, got)
			}
		}
	})

	t.Run("key", func(t *testing.T) {
		tests := []struct {
			combo   string
			wantHex string
		}{
			{"ctrl+a", "01"},
			{"Escape", "1b"},
			{"alt+x", "1b78"},
			{"shift+Tab", "1b5b5a"},
			{"Return", "0d"},
			{"Tab", "09"},
			{"BackSpace", "7f"},
			{"Up", "1b5b41"},
			{"Down", "1b5b42"},
			{"Right", "1b5b43"},
			{"Left", "1b5b44"},
			{"F5", "1b5b31357e"},
			{"shift+F10", "1b5b32313b327e"},
			{"ctrl+Up", "1b5b313b3541"},
		}
		for _, tt := range tests {
			evs := p.Do(t, agentapi.Request{Action: agentapi.Key, Text: tt.combo})
			var got strings.Builder
			for _, e := range evs {
				if e.Kind != ttyinput.KindMouse { // a window retiling may move the pointer over it
					got.WriteString(e.Hex)
				}
			}
			if got.String() != tt.wantHex {
				t.Errorf("key %q: the probe got %s (%q), want %s", tt.combo, got.String(), desktoptest.AsText(evs), tt.wantHex)
			}
		}
	})

	t.Run("click lands on the cell", func(t *testing.T) {
		tests := []struct {
			action    agentapi.Verb
			modifiers string
			col, row  int
			want      ttyinput.Mouse // the press; the release is the same with Press false
		}{
			{agentapi.LeftClick, "", 10, 5, ttyinput.Mouse{Button: 1}},
			{agentapi.LeftClick, "", 1, 1, ttyinput.Mouse{Button: 1}},
			{agentapi.RightClick, "", 40, 12, ttyinput.Mouse{Button: 3}},
			{agentapi.MiddleClick, "", 77, 20, ttyinput.Mouse{Button: 2}},
			{agentapi.LeftClick, "ctrl", 33, 8, ttyinput.Mouse{Button: 1, Ctrl: true}},
			{agentapi.LeftClick, "alt", 5, 15, ttyinput.Mouse{Button: 1, Alt: true}},
		}
		for _, tt := range tests {
			at := p.Cell(t, tt.col, tt.row)
			evs := p.Do(t, agentapi.Request{Action: tt.action, Coordinate: &at, Modifiers: tt.modifiers})
			press, release := tt.want, tt.want
			press.Press, press.Col, press.Row = true, tt.col, tt.row
			release.Col, release.Row = tt.col, tt.row
			if diff := cmp.Diff([]ttyinput.Mouse{press, release}, desktoptest.Mice(evs, false)); diff != "" {
				t.Errorf("%s %s at cell %d,%d (pixel %v): (-want +got)\n%s", tt.modifiers, tt.action, tt.col, tt.row, at, diff)
			}
		}
	})

	t.Run("double click", func(t *testing.T) {
		at := p.Cell(t, 20, 3)
		ms := desktoptest.Mice(p.Do(t, agentapi.Request{Action: agentapi.DoubleClick, Coordinate: &at}), false)
		press := ttyinput.Mouse{Button: 1, Press: true, Col: 20, Row: 3}
		release := ttyinput.Mouse{Button: 1, Col: 20, Row: 3}
		if diff := cmp.Diff([]ttyinput.Mouse{press, release, press, release}, ms); diff != "" {
			t.Errorf("double click: (-want +got)\n%s", diff)
		}
	})

	t.Run("mouse_move reports the cell", func(t *testing.T) {
		at := p.Cell(t, 50, 10)
		ms := desktoptest.Mice(p.Do(t, agentapi.Request{Action: agentapi.MouseMove, Coordinate: &at}), true)
		if len(ms) == 0 || ms[len(ms)-1] != (ttyinput.Mouse{Button: 0, Press: true, Motion: true, Col: 50, Row: 10}) {
			t.Errorf("mouse_move to cell 50,10: the probe got %+v", ms)
		}
	})

	t.Run("scroll", func(t *testing.T) {
		at := p.Cell(t, 30, 6)
		for _, tt := range []struct {
			dir    string
			amount int
			button int
		}{{"up", 3, 4}, {"down", 2, 5}, {"down", 1, 5}, {"up", 5, 4}} {
			ms := desktoptest.Mice(p.Do(t, agentapi.Request{Action: agentapi.Scroll, Coordinate: &at, ScrollDirection: tt.dir, ScrollAmount: tt.amount}), false)
			var want []ttyinput.Mouse
			for range tt.amount {
				want = append(want, ttyinput.Mouse{Button: tt.button, Press: true, Col: 30, Row: 6})
			}
			if diff := cmp.Diff(want, ms); diff != "" {
				t.Errorf("scroll %s %d: (-want +got)\n%s", tt.dir, tt.amount, diff)
			}
		}
	})

	t.Run("drag", func(t *testing.T) {
		from, to := p.Cell(t, 5, 4), p.Cell(t, 25, 9)
		ms := desktoptest.Mice(p.Do(t, agentapi.Request{Action: agentapi.LeftClickDrag, StartCoordinate: &from, Coordinate: &to}), false)
		if len(ms) < 3 {
			t.Fatalf("drag: the probe got %+v, want press, motion, release", ms)
		}
		first, last := ms[0], ms[len(ms)-1]
		if first != (ttyinput.Mouse{Button: 1, Press: true, Col: 5, Row: 4}) {
			t.Errorf("drag starts with %+v, want a left press at 5,4", first)
		}
		if last != (ttyinput.Mouse{Button: 1, Col: 25, Row: 9}) {
			t.Errorf("drag ends with %+v, want a left release at 25,9", last)
		}
		for _, m := range ms[1 : len(ms)-1] {
			if !m.Motion || m.Button != 1 {
				t.Errorf("drag in between: %+v, want motion with the left button held", m)
			}
		}
	})

	t.Run("bad requests change nothing", func(t *testing.T) {
		ctx := t.Context()
		out := agentapi.Point{X: 1280, Y: 10}
		for _, tt := range []struct {
			req  agentapi.Request
			code agentapi.Code
		}{
			{agentapi.Request{Action: agentapi.LeftClick, Coordinate: &out}, agentapi.CodeBadCoordinate},
			{agentapi.Request{Action: agentapi.LeftClickDrag, StartCoordinate: &agentapi.Point{X: 5, Y: 5}, Coordinate: &agentapi.Point{X: 5, Y: -1}}, agentapi.CodeBadCoordinate},
			{agentapi.Request{Action: agentapi.Key, Text: "ctrl+nosuchkey"}, agentapi.CodeBadKey},
			{agentapi.Request{Action: agentapi.LeftClick, Modifiers: "hyper"}, agentapi.CodeBadKey},
			{agentapi.Request{Action: agentapi.Screenshot, Region: &agentapi.Region{X: 1200, Y: 0, Width: 100, Height: 10}}, agentapi.CodeBadCoordinate},
		} {
			start := len(p.Input(t))
			_, err := d.Client.Do(ctx, tt.req)
			var apiErr *agentapi.Error
			if !errors.As(err, &apiErr) || apiErr.Code != tt.code || apiErr.Message == "" {
				t.Errorf("%s: err = %v, want code %s with a message", tt.req.String(), err, tt.code)
			}
			if evs := p.Do(t); len(evs) != 0 || len(p.Input(t)) != start+1 {
				t.Errorf("%s: the refused request reached the terminal: %q", tt.req.String(), desktoptest.AsText(evs))
			}
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		for _, tt := range []struct {
			req        agentapi.Request
			wantFormat string
			w, h       int
		}{
			{agentapi.Request{Action: agentapi.Screenshot}, "png", 1280, 720},
			{agentapi.Request{Action: agentapi.Screenshot, Format: "jpeg"}, "jpeg", 1280, 720},
			{agentapi.Request{Action: agentapi.Screenshot, Scale: 0.5}, "png", 640, 360},
			{agentapi.Request{Action: agentapi.Screenshot, Region: &agentapi.Region{X: 100, Y: 50, Width: 300, Height: 200}}, "png", 300, 200},
		} {
			resp := d.Do(t, tt.req)
			img, format, err := image.Decode(bytes.NewReader(resp.Image.Data))
			if err != nil {
				t.Errorf("screenshot %+v: decode: %v", tt.req, err)
				continue
			}
			if b := img.Bounds(); format != tt.wantFormat || b.Dx() != tt.w || b.Dy() != tt.h {
				t.Errorf("screenshot %+v: %s %dx%d, want %s %dx%d", tt.req, format, b.Dx(), b.Dy(), tt.wantFormat, tt.w, tt.h)
			}
		}
	})

	t.Run("pixels change after typing", func(t *testing.T) {
		// The probe does not echo: print through a second terminal instead.
		region := &agentapi.Region{X: p.Rect.X, Y: p.Rect.Y, Width: p.Rect.Width, Height: p.Rect.Height}
		before := d.Do(t, agentapi.Request{Action: agentapi.Screenshot, Region: region}).Image.Data
		d.Terminal(t, "echo", "cat")
		d.Do(t, agentapi.Request{Action: agentapi.Type, Text: "the quick brown fox jumps over the lazy dog\n"})
		desktoptest.Eventually(t, 10*time.Second, "the screen did not change after typing", func() bool {
			after := d.Do(t, agentapi.Request{Action: agentapi.Screenshot, Region: region}).Image.Data
			return !bytes.Equal(before, after)
		})
	})

	// Last: it opens a window, which retiles the probe's terminal.
	t.Run("super+Return opens a terminal that runs what is typed", func(t *testing.T) {
		proof := filepath.Join(d.Home, "proof")
		d.UserTerminal(t, "echo typed by the agent > ~/proof")
		desktoptest.Eventually(t, 10*time.Second, "the command typed into the new terminal did not run", func() bool {
			b, _ := os.ReadFile(proof)
			return string(b) == "typed by the agent\n"
		})
	})
}

// TestDesktopTheme changes the theme through the run dir's theme file, as
// the fleet does, and checks the wallpaper and the bar change colour live.
func TestDesktopTheme(t *testing.T) {
	skipShort(t)
	d := desktoptest.Start(t, desktoptest.Options{Resolution: desktop.Resolution{Width: 1024, Height: 768}})
	terracotta, _ := desktop.LookupTheme("terracotta")
	graphite, _ := desktop.LookupTheme("graphite")
	wallpaper := image.Point{X: 512, Y: 500} // no window open: the wallpaper shows
	bar := image.Point{X: 300, Y: 4}         // between the workspaces and the title

	for _, th := range []desktop.Theme{terracotta, graphite, terracotta} {
		d.SetTheme(t, th.Name)
		desktoptest.Eventually(t, 10*time.Second, "theme "+th.Name+" did not show", func() bool {
			img := screenshot(t, d)
			return colorIs(img.At(wallpaper.X, wallpaper.Y), th.Wallpaper) && colorIs(img.At(bar.X, bar.Y), th.Surface)
		})
	}
	pids := map[string]int{}
	for _, c := range d.Status(t).Components {
		pids[c.Name] = c.PID
		if c.Restarts != 0 {
			t.Errorf("%s restarted %d times for a theme change; want a live reload", c.Name, c.Restarts)
		}
	}

	// An unknown theme is ignored: nothing changes.
	d.SetTheme(t, "neon")
	desktoptest.Eventually(t, 5*time.Second, "an unknown theme was not reported in the log", func() bool {
		return strings.Contains(d.Log(), "theme file ignored")
	})
	if img := screenshot(t, d); !colorIs(img.At(wallpaper.X, wallpaper.Y), terracotta.Wallpaper) {
		t.Errorf("an unknown theme changed the wallpaper to %v", img.At(wallpaper.X, wallpaper.Y))
	}

	// The budget module turns the warning colour near the cap.
	d.SetBudget(t, desktop.Budget{SpentUSD: 1.9, CapUSD: 2, Updated: time.Now()})
	desktoptest.Eventually(t, 10*time.Second, "the bar shows no budget warning", func() bool {
		img := screenshot(t, d)
		for x := 0; x < img.Bounds().Dx(); x++ {
			if colorIs(img.At(x, 4), terracotta.Warning) {
				return true
			}
		}
		return false
	})
	for _, c := range d.Status(t).Components {
		if c.PID != pids[c.Name] {
			t.Errorf("%s changed pid from %d to %d", c.Name, pids[c.Name], c.PID)
		}
	}
}

// TestDesktopRestartsCrashedComponents kills sway and then wayvnc and
// checks the supervisor brings them back, says so in status, and the
// ready file returns.
func TestDesktopRestartsCrashedComponents(t *testing.T) {
	skipShort(t)
	d := desktoptest.Start(t, desktoptest.Options{})
	for _, name := range []string{supervisor.Sway, supervisor.WayVNC} {
		before := component(t, d, name)
		notReady := strings.Count(d.Log(), "desktop not ready")
		if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s: %v", name, err)
		}
		desktoptest.Eventually(t, 10*time.Second, "the ready file was not withdrawn after "+name+" crashed", func() bool {
			return strings.Count(d.Log(), "desktop not ready") > notReady
		})
		desktoptest.Eventually(t, 20*time.Second, name+" was not restarted", func() bool {
			c := component(t, d, name)
			return c.State == agentapi.StateRunning && c.Restarts == before.Restarts+1 && c.PID != before.PID
		})
		if c := component(t, d, name); c.LastError == "" {
			t.Errorf("%s restarted without a last error", name)
		}
		d.WaitReady(t)
		// The agent works again: a screenshot needs sway.
		if img := screenshot(t, d); img.Bounds().Dx() != 1280 {
			t.Errorf("screenshot after the restart is %v wide", img.Bounds().Dx())
		}
	}
	if c := component(t, d, supervisor.Waybar); c.State != agentapi.StateRunning || c.Restarts < 1 {
		t.Errorf("waybar after a sway crash: %+v, want restarted after it and running", c)
	}
}

// TestDesktopStops checks SIGTERM stops the whole desktop and cleans the run dir.
func TestDesktopStops(t *testing.T) {
	skipShort(t)
	d := desktoptest.Start(t, desktoptest.Options{})
	d.StartProbe(t, "probe")
	d.Stop(t)
	for _, name := range []string{desktop.ReadyFile, desktop.AgentSocket, desktop.VNCSocket, "xdg/" + supervisor.SwaySocket, "xdg/" + supervisor.WaylandDisplay} {
		if _, err := os.Stat(filepath.Join(d.RunDir, name)); err == nil {
			t.Errorf("%s is still in the run dir after the agent stopped", name)
		}
	}
}

func component(t *testing.T, d *desktoptest.Desktop, name string) agentapi.Component {
	t.Helper()
	for _, c := range d.Status(t).Components {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no component %s in status", name)
	return agentapi.Component{}
}

func screenshot(t *testing.T, d *desktoptest.Desktop) image.Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := d.Client.Do(ctx, agentapi.Request{Action: agentapi.Screenshot})
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(resp.Image.Data))
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	return img
}

// colorIs reports whether c is exactly the palette colour want.
func colorIs(c color.Color, want desktop.Color) bool {
	r, g, b, _ := c.RGBA()
	var wr, wg, wb uint8
	for i, p := range []*uint8{&wr, &wg, &wb} {
		for _, d := range want[1+2*i : 3+2*i] {
			*p = *p*16 + uint8(strings.IndexRune("0123456789abcdef", d))
		}
	}
	return uint8(r>>8) == wr && uint8(g>>8) == wg && uint8(b>>8) == wb
}

// BenchmarkDesktopStart measures a desktop's start, from launching
// atelier-agent to its ready file, and its stop.
func BenchmarkDesktopStart(b *testing.B) {
	desktoptest.Start(b, desktoptest.Options{}).Stop(b) // builds the binaries
	var toReady time.Duration
	for b.Loop() {
		t0 := time.Now()
		d := desktoptest.Start(b, desktoptest.Options{})
		toReady += time.Since(t0)
		d.Stop(b)
	}
	b.ReportMetric(float64(toReady.Milliseconds())/float64(b.N), "ms-to-ready/op")
}
