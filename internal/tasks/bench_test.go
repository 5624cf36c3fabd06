package tasks_test

import (
	"slices"
	"testing"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/tasks"
)

// BenchmarkStepHarness measures the loop's own time per step against a
// real desktop, with the scripted backend (no model time): screenshot,
// step record, action, then the settle. On a static screen the settle
// ends after its quiet period (the target is a p50 of at most 60 ms); on
// a screen that keeps changing (a terminal printing as fast as it can)
// each step waits for it, up to the ceiling (1 s here). It reports p50
// and p95 in milliseconds, from one step event to the next.
func BenchmarkStepHarness(b *testing.B) {
	d := startDesktop(b)
	f := newFixture(b, desktops{byID: map[string]*agentapi.Client{"s1": d.client}}, 0, func(o *tasks.Options) { o.SettleMax = time.Second })
	// shift alone changes nothing on the screen.
	script := make([]agentapi.Request, 20)
	for i := range script {
		script[i] = agentapi.Request{Action: agentapi.Key, Text: "shift"}
	}
	for _, screen := range []string{"static", "changing"} {
		b.Run(screen, func(b *testing.B) {
			if screen == "changing" {
				d.sway.Msg(b, "exec", "foot --app-id=busy -- sh -c 'while :; do date +%s%N; done'")
				d.sway.WaitWindow(b, "busy")
			}
			var steps []time.Duration
			for b.Loop() {
				task, err := f.m.Submit(b.Context(), "s1", tasks.Spec{Goal: "bench", Script: script})
				if err != nil {
					b.Fatal(err)
				}
				got := f.wait(b, task.ID)
				if got.Status != tasks.StatusDone {
					b.Fatalf("task = %s (%s)", got.Status, got.Error)
				}
				var prev time.Time
				for _, ev := range got.Events {
					if ev.Type != tasks.EventStep {
						continue
					}
					if !prev.IsZero() {
						steps = append(steps, ev.Time.Sub(prev))
					}
					prev = ev.Time
				}
			}
			slices.Sort(steps)
			pct := func(p float64) float64 {
				return float64(steps[int(p*float64(len(steps)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.5), "p50_ms")
			b.ReportMetric(pct(0.95), "p95_ms")
			b.ReportMetric(0, "ns/op")
			b.Logf("%s screen: %d steps, p50 %.1f ms, p95 %.1f ms", screen, len(steps), pct(0.5), pct(0.95))
		})
	}
}
