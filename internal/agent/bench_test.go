package agent_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"atelier/internal/agentapi"
)

// BenchmarkVerbs measures request → response on agent.sock against a real
// sway, per verb. The agent answers after a wl_display.sync round trip, so
// the time includes the compositor having the events. It reports p50, p95
// and p99 in milliseconds.
func BenchmarkVerbs(b *testing.B) {
	e := start(b)
	p := e.openProbe(b) // a focused client receives the input, as in real use
	at := p.cell(20, 10)
	mixed := "Hello, wörld! ✓ 日本 😀 The quick brown fox jumps ov" // 50 characters
	for _, bc := range []struct {
		name string
		req  agentapi.Request
	}{
		{"mouse_move", agentapi.Request{Action: agentapi.MouseMove, Coordinate: at}},
		{"left_click", agentapi.Request{Action: agentapi.LeftClick, Coordinate: at}},
		{"key", agentapi.Request{Action: agentapi.Key, Text: "ctrl+a"}},
		{"scroll", agentapi.Request{Action: agentapi.Scroll, Coordinate: at, ScrollDirection: "down", ScrollAmount: 1}},
		{"type50", agentapi.Request{Action: agentapi.Type, Text: mixed}},
		{"screenshot_png", agentapi.Request{Action: agentapi.Screenshot}},
		{"screenshot_jpeg", agentapi.Request{Action: agentapi.Screenshot, Format: agentapi.FormatJPEG}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			var times []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := e.client.Do(ctx, bc.req); err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(t0))
			}
			slices.Sort(times)
			pct := func(q float64) float64 {
				return float64(times[int(q*float64(len(times)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.95), "p95-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
