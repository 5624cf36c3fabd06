package agent_test

import (
	"os"
	"testing"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/desktoptest"
)

// TestSettle shows the settle verb ending as soon as the screen is still
// and waiting, up to its ceiling, while a window keeps repainting: a
// terminal printing in a loop.
func TestSettle(t *testing.T) {
	e := start(t)
	settleOf := func(quiet, ceiling float64) agentapi.SettleResult {
		t.Helper()
		resp := e.do(t, agentapi.Request{Action: agentapi.Settle, Quiet: quiet, Duration: ceiling})
		t.Logf("settle quiet %v ceiling %v: %+v", quiet, ceiling, resp.Settle)
		if resp.Settle == nil {
			t.Fatalf("settle: no result in %+v", resp)
		}
		return *resp.Settle
	}
	// A still desktop: the settle ends once the quiet period has passed,
	// far inside the ceiling (the first may wait out the desktop's start).
	settleOf(0.2, 10)
	for range 3 {
		if got := settleOf(0.05, 10); !got.Still || got.Waited >= 5 || got.Frames != 0 {
			t.Errorf("static screen: %+v, want still well inside the 10 s ceiling, no changed frame", got)
		}
	}

	// A change made just before the settle is waited out: the result
	// counts its frame and still ends still.
	e.sway.Terminal(t, "still", "printf 'ready\\n'; exec sleep 1000000")
	if got := settleOf(0.3, 10); !got.Still || got.Frames == 0 {
		t.Errorf("after opening a terminal: %+v, want still after at least one changed frame", got)
	}

	// A terminal printing every 10 ms never goes quiet for 300 ms: the
	// settle runs to its ceiling. It starts once the printing has (on a
	// loaded machine the shell may start well after the window).
	busy := e.sway.FileOwnedByDesktop(t, "busy.out")
	e.sway.Terminal(t, "busy", "while :; do date +%s%N | tee -a "+busy+"; sleep 0.01; done")
	desktoptest.Eventually(t, 10*time.Second, "the busy terminal printed nothing", func() bool {
		fi, err := os.Stat(busy)
		return err == nil && fi.Size() > 0
	})
	t0 := time.Now()
	got := settleOf(0.3, 1.5)
	if got.Still || got.Frames < 10 || got.Waited < 1.5 || time.Since(t0) < 1500*time.Millisecond {
		t.Errorf("animating window: %+v, want not still, many frames, the whole 1.5 s ceiling", got)
	}

	// Once it stops, the screen is still again.
	e.sway.Msg(t, "[app_id=busy]", "kill")
	settleOf(0.3, 10)
	if got := settleOf(0.05, 10); !got.Still || got.Frames != 0 {
		t.Errorf("after the animation ended: %+v, want still", got)
	}
}

// TestSettleRefusesBadFields: settle is validated like every verb.
func TestSettleRefusesBadFields(t *testing.T) {
	e := start(t)
	for _, tt := range []struct {
		req  agentapi.Request
		want agentapi.Code
	}{
		{agentapi.Request{Action: agentapi.Settle}, agentapi.CodeMissingField},
		{agentapi.Request{Action: agentapi.Settle, Duration: 1, Quiet: 2}, agentapi.CodeBadField},
		{agentapi.Request{Action: agentapi.Settle, Duration: 1, Quiet: -0.1}, agentapi.CodeBadField},
		{agentapi.Request{Action: agentapi.Settle, Duration: 61}, agentapi.CodeBadField},
		{agentapi.Request{Action: agentapi.Settle, Duration: 1, Text: "x"}, agentapi.CodeBadField},
		{agentapi.Request{Action: agentapi.Wait, Duration: 1, Quiet: 0.1}, agentapi.CodeBadField},
	} {
		if got := e.doErr(t, tt.req); got != tt.want {
			t.Errorf("%+v: %s, want %s", tt.req, got, tt.want)
		}
	}
}
