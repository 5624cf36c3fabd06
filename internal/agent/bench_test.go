package agent_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"atelier/internal/agent"
	"atelier/internal/agentapi"
)

// BenchmarkVerbs measures request → response on agent.sock against a real
// sway, per verb. The agent answers after a wl_display.sync round trip, so
// the time includes the compositor having the events. Screenshots are of
// realistic screens: a terminal full of text, then a web page in Chromium
// (the _page cases). It reports p50, p95 and p99 in milliseconds.
//
// A screenshot of an unchanged screen returns the previous image (the
// _unchanged cases, back to back). The other screenshot cases change the
// screen first, outside the timing (a key echoed by the terminal, then a
// settle; on the page a scroll), so they capture and encode: the compositor copies a frame at
// its next repaint, at most every 16.7 ms (60 Hz). The _after_type cases
// take the shot the moment a typed key has reached the compositor.
//
// cpu-ms/op is the CPU of this process (agent and client) during the
// timed requests; sway-cpu-ms/op is sway's CPU per round, untimed change
// included (the copies sway makes for the agent's current copy of the
// screen are made at the change).
func BenchmarkVerbs(b *testing.B) {
	e := start(b)
	p := e.openProbe(b) // a focused client receives the input, as in real use
	at := p.cell(20, 10)
	mixed := "Hello, wörld! ✓ 日本 😀 The quick brown fox jumps ov" // 50 characters
	png := agentapi.Request{Action: agentapi.Screenshot}
	jpeg := agentapi.Request{Action: agentapi.Screenshot, Format: agentapi.FormatJPEG}
	var screen string // what is on the screen now
	for _, bc := range []struct {
		name   string
		screen string // for screenshots: "text" or "page"
		req    agentapi.Request
		change bool // change the screen and settle before each, untimed
		after  bool // type a key, untimed, just before each
	}{
		{"mouse_move", "", agentapi.Request{Action: agentapi.MouseMove, Coordinate: at}, false, false},
		{"left_click", "", agentapi.Request{Action: agentapi.LeftClick, Coordinate: at}, false, false},
		{"key", "", agentapi.Request{Action: agentapi.Key, Text: "ctrl+a"}, false, false},
		{"scroll", "", agentapi.Request{Action: agentapi.Scroll, Coordinate: at, ScrollDirection: "down", ScrollAmount: 1}, false, false},
		{"type50", "", agentapi.Request{Action: agentapi.Type, Text: mixed}, false, false},
		{"screenshot_png_unchanged", "text", png, false, false},
		{"screenshot_jpeg_unchanged", "text", jpeg, false, false},
		{"screenshot_png", "text", png, true, false},
		{"screenshot_jpeg", "text", jpeg, true, false},
		{"screenshot_png_after_type", "text", png, false, true},
		{"screenshot_jpeg_after_type", "text", jpeg, false, true},
		{"screenshot_png_page", "page", png, true, false},
		{"screenshot_jpeg_page", "page", jpeg, true, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.screen != screen {
				screen = bc.screen
				e.show(b, bc.screen)
			}
			ctx := context.Background()
			var times []time.Duration
			var cpu time.Duration
			sway0 := e.swayCPU(b)
			for b.Loop() {
				if bc.change || bc.after {
					b.StopTimer()
					if bc.screen == "page" {
						dir := [2]string{"down", "up"}[len(times)%2]
						e.do(b, agentapi.Request{Action: agentapi.Scroll, Coordinate: &agentapi.Point{X: 640, Y: 360}, ScrollDirection: dir, ScrollAmount: 3})
					} else {
						e.do(b, agentapi.Request{Action: agentapi.Type, Text: "x"})
					}
					if bc.change {
						e.do(b, agentapi.Request{Action: agentapi.Settle, Quiet: 0.05, Duration: 2})
					}
					b.StartTimer()
				}
				t0, cpu0 := time.Now(), agent.CPUTime()
				if _, err := e.client.Do(ctx, bc.req); err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(t0))
				cpu += agent.CPUTime() - cpu0
			}
			n := float64(len(times))
			b.ReportMetric(float64(cpu.Microseconds())/1000/n, "cpu-ms/op")
			b.ReportMetric(float64((e.swayCPU(b)-sway0).Microseconds())/1000/n, "sway-cpu-ms/op")
			agent.ReportPercentiles(b, times)
		})
	}
}

// swayCPU is the CPU time sway has used: the process whose command line
// names the config in the desktop's directory.
func (e *env) swayCPU(b *testing.B) time.Duration {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		cmd, err := os.ReadFile(filepath.Join(filepath.Dir(st), "cmdline"))
		if err != nil || !bytes.HasPrefix(cmd, []byte("sway\x00")) || !bytes.Contains(cmd, []byte(e.sway.Dir)) {
			continue
		}
		data, err := os.ReadFile(st)
		if err != nil {
			break
		}
		// After the command name in parentheses: utime and stime are
		// fields 14 and 15 of the line, 12 and 13 after it.
		f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
		utime, _ := strconv.Atoi(f[11])
		stime, _ := strconv.Atoi(f[12])
		return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
	}
	b.Fatal("no sway process found")
	return 0
}

// show fills the screen with realistic content: "text" is a terminal of
// hex dump, long listings and columns in colour; "page" is
// testdata/page.html in Chromium. It returns once the screen is still.
func (e *env) show(b *testing.B, screen string) {
	switch screen {
	case "text":
		e.sway.Terminal(b, "text", "od -A x -t x1z -w32 /usr/bin/ls | head -n 22; "+
			"ls --color=always -l /usr/lib/x86_64-linux-gnu | tail -n 14; "+
			"ls --color=always -C -w 180 /usr/bin | head -n 14; exec sleep 1000000")
		e.sway.Msg(b, "fullscreen", "enable")
	case "page":
		html, err := os.ReadFile("testdata/page.html")
		if err != nil {
			b.Fatal(err)
		}
		page := e.sway.FileOwnedByDesktop(b, "page.html")
		if err := os.WriteFile(page, html, 0o644); err != nil {
			b.Fatal(err)
		}
		e.sway.Msg(b, "[app_id=text]", "kill")
		e.sway.Msg(b, "[app_id=probe]", "kill")
		e.sway.Exec(b, "chromium --ozone-platform=wayland --no-first-run --user-data-dir="+e.sway.Dir+"/chromium --app=file://"+page)
		// Chromium names an app window after its URL's host and path.
		e.sway.WaitWindow(b, "chrome-_"+strings.ReplaceAll(page, "/", "_")+"-Default")
	}
	settle(b, e)
}
