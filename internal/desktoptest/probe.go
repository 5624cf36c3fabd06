package desktoptest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/desktoptest/ttyinput"
)

// FenceKey is the key Probe.Do presses after a test's requests: once its
// event arrives, every event the requests caused has arrived before it.
const FenceKey = "shift+F12"

// Probe is the probe program running in a terminal of a desktop.
type Probe struct {
	d       *Desktop
	AppID   string
	LogPath string
	Rect    Rect // the terminal's content, in output pixels
}

// StartProbe opens a terminal running the probe under appID, focused, and
// returns once the probe records input.
func (d *Desktop) StartProbe(t testing.TB, appID string) *Probe {
	t.Helper()
	p := &Probe{d: d, AppID: appID, LogPath: filepath.Join(d.RunDir, "probe-"+appID+".jsonl")}
	if err := os.WriteFile(p.LogPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p.LogPath, d.uid, d.gid); err != nil {
		t.Fatal(err)
	}
	// One wheel step, one report: foot's default multiplies them by three.
	d.Exec(t, fmt.Sprintf("foot --app-id=%s -o pad=0x0 -o scrollback.multiplier=1 -- %s %s",
		appID, shellQuote(d.probeBin), shellQuote(p.LogPath)))
	p.Rect = d.WaitWindow(t, appID)
	Eventually(t, 15*time.Second, "probe did not log ready", func() bool {
		for _, e := range p.Events(t) {
			if e.Kind == ttyinput.KindReady {
				return true
			}
		}
		return false
	})
	return p
}

// Events returns every event the probe has logged so far.
func (p *Probe) Events(t testing.TB) []ttyinput.Event {
	t.Helper()
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	var evs []ttyinput.Event
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e ttyinput.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("probe log line %q: %v", sc.Bytes(), err)
		}
		evs = append(evs, e)
	}
	return evs
}

// Input returns the input events logged so far (no ready or resize events).
func (p *Probe) Input(t testing.TB) []ttyinput.Event {
	t.Helper()
	var in []ttyinput.Event
	for _, e := range p.Events(t) {
		if e.Kind != ttyinput.KindReady && e.Kind != ttyinput.KindResize {
			in = append(in, e)
		}
	}
	return in
}

// Size is the terminal's latest size, as the probe last logged it.
func (p *Probe) Size(t testing.TB) ttyinput.Size {
	t.Helper()
	var s ttyinput.Size
	for _, e := range p.Events(t) {
		if e.Size != nil {
			s = *e.Size
		}
	}
	if s.Cols == 0 || s.Rows == 0 {
		t.Fatalf("probe logged no terminal size")
	}
	return s
}

// Cell returns the output pixel at the centre of the terminal cell at col,
// row (1-based, as SGR mouse reports count). The cell size comes from the
// terminal's own report of its size in pixels, or else from the window.
func (p *Probe) Cell(t testing.TB, col, row int) agentapi.Point {
	t.Helper()
	s := p.Size(t)
	w, h := s.Width, s.Height
	if w == 0 || h == 0 {
		w, h = p.Rect.Width, p.Rect.Height
	}
	cw, ch := float64(w)/float64(s.Cols), float64(h)/float64(s.Rows)
	return agentapi.Point{
		X: p.Rect.X + int((float64(col)-0.5)*cw),
		Y: p.Rect.Y + int((float64(row)-0.5)*ch),
	}
}

// Do sends reqs to the agent, then the fence key, and returns the input
// events that arrived in between: all of those the requests caused.
func (p *Probe) Do(t testing.TB, reqs ...agentapi.Request) []ttyinput.Event {
	t.Helper()
	start := len(p.Input(t))
	for _, r := range reqs {
		p.d.Do(t, r)
	}
	p.d.Do(t, agentapi.Request{Action: agentapi.Key, Text: FenceKey})
	deadline := time.Now().Add(10 * time.Second)
	for {
		in := p.Input(t)[start:]
		for i, e := range in {
			if e.Kind == ttyinput.KindKey && e.Key == FenceKey {
				return in[:i]
			}
		}
		if time.Now().After(deadline) {
			var sent []string
			for _, r := range reqs {
				b, _ := json.Marshal(r)
				sent = append(sent, string(b))
			}
			t.Fatalf("after %s: the fence key did not reach the probe in 10s; it got %q", sent, AsText(in))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// AsText renders events as the text they mean: text as is, Return as "\n",
// Tab as "\t", other keys as "<name>", mouse events as "<mouse>". Motion
// reports without a button held are left out: sway sends a still pointer's
// surface a motion when what lies under it changes (a cursor rebase), which
// no input caused.
func AsText(evs []ttyinput.Event) string {
	var s strings.Builder
	for _, e := range evs {
		switch {
		case e.Mouse != nil && e.Mouse.Motion && e.Mouse.Button == 0:
		case e.Kind == ttyinput.KindText:
			s.WriteString(e.Text)
		case e.Key == "Return":
			s.WriteString("\n")
		case e.Key == "Tab":
			s.WriteString("\t")
		case e.Kind == ttyinput.KindKey:
			s.WriteString("<" + e.Key + ">")
		default:
			s.WriteString("<" + e.Kind + ">")
		}
	}
	return s.String()
}

// Mice returns the mouse reports among evs; motion reports without a
// button held are left out unless withMotion.
func Mice(evs []ttyinput.Event, withMotion bool) []ttyinput.Mouse {
	var ms []ttyinput.Mouse
	for _, e := range evs {
		if e.Mouse == nil || (!withMotion && e.Mouse.Motion && e.Mouse.Button == 0) {
			continue
		}
		ms = append(ms, *e.Mouse)
	}
	return ms
}
