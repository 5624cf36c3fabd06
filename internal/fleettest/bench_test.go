package fleettest_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
	"atelier/internal/client"
	"atelier/internal/fleettest"
)

// BenchmarkCreateReady measures POST /sessions?wait=ready on the local
// runtime, one session at a time (target: p50 ≤ 1.5 s).
func BenchmarkCreateReady(b *testing.B) {
	f := fleettest.New(b, fleettest.Options{})
	var took []time.Duration
	for b.Loop() {
		t0 := time.Now()
		s, err := f.Client.CreateSession(b.Context(), apitype.CreateSession{}, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(t0))
		b.StopTimer()
		if err := f.Client.DeleteSession(b.Context(), s.ID, true); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(fleettest.P50(took), "p50-ms")
}

// BenchmarkScreenshotOverhead compares a PNG screenshot through the fleet's
// API with one straight from the agent (target: overhead ≤ 3 ms p50).
func BenchmarkScreenshotOverhead(b *testing.B) {
	f := fleettest.New(b, fleettest.Options{})
	ctx := b.Context()
	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{}, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	direct, err := f.Sessions.Agent(ctx, s.ID)
	if err != nil {
		b.Fatal(err)
	}
	var viaFleet, viaAgent []time.Duration
	// The two alternate, so both see the same desktop and the same load.
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if i%2 == 0 {
			if _, err := f.Client.Screenshot(ctx, s.ID, client.ScreenshotOptions{}); err != nil {
				b.Fatal(err)
			}
			viaFleet = append(viaFleet, time.Since(t0))
		} else {
			if _, err := direct.Do(ctx, agentapi.Request{Action: agentapi.Screenshot}); err != nil {
				b.Fatal(err)
			}
			viaAgent = append(viaAgent, time.Since(t0))
		}
	}
	b.ReportMetric(fleettest.P50(viaFleet), "fleet-p50-ms")
	b.ReportMetric(fleettest.P50(viaAgent), "agent-p50-ms")
	b.ReportMetric(fleettest.P50(viaFleet)-fleettest.P50(viaAgent), "overhead-p50-ms")
}

// rssKB returns a process's resident set in KiB.
func rssKB(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// Benchmark20Sessions runs 20 desktops under one `atelier serve` and has
// all of them answer screenshots at once, each round; it reports the
// round's p50, the fleet's RSS (target ≤ 60 MB) and the mean RSS of a
// desktop's process tree (target ≤ 120 MB; shared pages count in each).
func Benchmark20Sessions(b *testing.B) {
	const n = 20
	p := fleettest.Serve(b, fleettest.Options{})
	ctx := b.Context()
	ids := make([]string, n)
	for i := range ids {
		s, err := p.Client.CreateSession(ctx, apitype.CreateSession{}, 2*time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = s.ID
	}
	var rounds []time.Duration
	for b.Loop() {
		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i, id := range ids {
			wg.Go(func() {
				sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				_, errs[i] = p.Client.Screenshot(sctx, id, client.ScreenshotOptions{})
			})
		}
		wg.Wait()
		rounds = append(rounds, time.Since(t0))
		for i, err := range errs {
			if err != nil {
				b.Fatalf("session %d: %v", i, err)
			}
		}
	}
	b.ReportMetric(fleettest.P50(rounds), "round-p50-ms")
	b.ReportMetric(float64(rssKB(p.Cmd.Process.Pid))/1024, "fleet-rss-MB")
	list, err := p.Client.Sessions(ctx)
	if err != nil {
		b.Fatal(err)
	}
	total := 0
	for _, s := range list {
		root := sandboxPID(b, s)
		total += rssKB(root)
		for _, pid := range descendants(b, root, "") {
			total += rssKB(pid)
		}
	}
	b.ReportMetric(float64(total)/1024/float64(len(list)), "desktop-rss-MB")
}
