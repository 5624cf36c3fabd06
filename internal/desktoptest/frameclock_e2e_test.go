package desktoptest_test

import (
	"fmt"
	"image/color"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"atelier/internal/agent/supervisor"
	"atelier/internal/desktoptest"
)

// TestDesktopIdleSwaySleeps checks the frame clock (desktop/frameclock): an
// idle sway stops waking at its output's refresh, and a program that draws
// on its own while sway sleeps still reaches the screen.
func TestDesktopIdleSwaySleeps(t *testing.T) {
	skipShort(t)
	d := desktoptest.Start(t, desktoptest.Options{})
	// The terminal turns its window red 4 s after the command is typed,
	// with no input to wake anything.
	d.UserTerminal(t, `sleep 4; printf '\033[?25l\033[48;2;220;20;20m\033[2J'; sleep 600`)
	pid := component(t, d, supervisor.Sway).PID

	time.Sleep(time.Second) // the typing's last frames
	before := wakes(t, pid)
	const window = 2 * time.Second
	time.Sleep(window)
	perSecond := float64(wakes(t, pid)-before) / window.Seconds()
	// A 60 Hz headless output wakes sway 60 times a second (wlroots 0.15
	// re-arms its frame timer at every tick); asleep, only the desktop's own
	// occasional redraws and the readiness check remain.
	t.Logf("idle sway: %.1f wakes a second", perSecond)
	if perSecond > 20 {
		t.Errorf("idle sway woke %.0f times a second, want it asleep (at most 20)", perSecond)
	}

	red := func(c color.Color) bool {
		r, g, b, _ := c.RGBA()
		return r>>8 > 180 && g>>8 < 60 && b>>8 < 60
	}
	desktoptest.Eventually(t, 10*time.Second, "the terminal's own redraw never reached the screen", func() bool {
		img := screenshot(t, d)
		b := img.Bounds()
		return red(img.At(b.Dx()/2, b.Dy()/2))
	})
}

// wakes returns how many times process pid has been switched in: each wake
// from sleep is one voluntary switch.
func wakes(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no voluntary_ctxt_switches in /proc/%d/status", pid)
	return 0
}
