package fleettest_test

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/client"
	"atelier/internal/fleettest"
)

// BenchmarkDensity (make bench-density) runs N idle desktops under one
// `atelier serve` on the local runtime and measures what bounds a fleet's
// size: create → ready, a round-robin screenshot sweep (one desktop after
// the other, as a scheduler visiting each would), the proportional memory
// (PSS) of each desktop's processes, per program, and the CPU the fleet
// and every desktop use while idle between sweeps.
//
// ATELIER_DENSITY_N desktops (default 10), ATELIER_DENSITY_SWEEPS sweeps
// (default 5), ATELIER_DENSITY_IDLE seconds of idle measurement (default
// 10). Targets (issue 17): sweep p99 ≤ 250 ms, PSS ≤ 35 MB a desktop,
// fleet and desktops idle ≤ 10% of one core in all, at N = 100.
func BenchmarkDensity(b *testing.B) {
	n := envInt(b, "ATELIER_DENSITY_N", 10)
	sweeps := envInt(b, "ATELIER_DENSITY_SWEEPS", 5)
	idle := time.Duration(envInt(b, "ATELIER_DENSITY_IDLE", 10)) * time.Second
	p := fleettest.Serve(b, fleettest.Options{})
	ctx := b.Context()

	// Create, a few at a time: create → ready is measured, not the queue.
	ids := make([]string, n)
	ready := make([]time.Duration, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	errs := make([]error, n)
	t0 := time.Now()
	for i := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			t := time.Now()
			s, err := p.Client.CreateSession(ctx, apitype.CreateSession{}, 3*time.Minute)
			ids[i], ready[i], errs[i] = s.ID, time.Since(t), err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			b.Fatalf("create desktop %d: %v", i, err)
		}
	}
	b.Logf("%d desktops ready in %.1f s; create → ready p50 %.0f ms, p99 %.0f ms", n, time.Since(t0).Seconds(), pct(ready, 50), pct(ready, 99))

	// Let the desktops finish starting (status bar, first frames) before
	// anything is measured.
	time.Sleep(5 * time.Second)
	var shots []time.Duration
	sweep := func(format string) {
		for _, id := range ids {
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			t := time.Now()
			_, err := p.Client.Screenshot(sctx, id, client.ScreenshotOptions{Format: format})
			cancel()
			if err != nil {
				b.Fatalf("screenshot %s: %v", id, err)
			}
			shots = append(shots, time.Since(t))
		}
	}
	for b.Loop() {
		sweep("png") // the first sweep of each desktop captures; the rest may reuse
		for range sweeps - 1 {
			sweep("jpeg")
		}
	}
	b.ReportMetric(pct(shots, 50), "shot-p50-ms")
	b.ReportMetric(pct(shots, 99), "shot-p99-ms")

	// Memory: the PSS of every process in each sandbox, summed by program.
	list, err := p.Client.Sessions(ctx)
	if err != nil {
		b.Fatal(err)
	}
	byProg := map[string]int{} // kB, over all desktops
	var trees [][]int
	for _, s := range list {
		root := sandboxPID(b, s)
		tree := append([]int{root}, descendants(b, root, "")...)
		trees = append(trees, tree)
		for _, pid := range tree {
			byProg[comm(pid)] += pssKB(pid)
		}
	}
	total := 0
	for _, kb := range byProg {
		total += kb
	}
	progs := slices.SortedFunc(maps.Keys(byProg), func(a, c string) int { return cmp.Compare(byProg[c], byProg[a]) })
	var sb strings.Builder
	for _, name := range progs {
		fmt.Fprintf(&sb, "  %-16s %6.1f MB\n", name, float64(byProg[name])/1024/float64(len(list)))
	}
	b.Logf("PSS per desktop, by program:\n%s  %-16s %6.1f MB", sb.String(), "total", float64(total)/1024/float64(len(list)))
	b.ReportMetric(float64(total)/1024/float64(len(list)), "pss-MB/desktop")
	b.ReportMetric(float64(pssKB(p.Cmd.Process.Pid))/1024, "fleet-pss-MB")

	// Idle CPU between sweeps: ticks of the fleet and of every desktop
	// process over the idle window.
	fleetPID := p.Cmd.Process.Pid
	cpu := func() (fleet, desktops int) {
		fleet = cpuTicks(fleetPID)
		for _, tree := range trees {
			for _, pid := range tree {
				desktops += cpuTicks(pid)
			}
		}
		return
	}
	f0, d0 := cpu()
	time.Sleep(idle)
	f1, d1 := cpu()
	const hz = 100 // USER_HZ
	pctCore := func(ticks int) float64 { return float64(ticks) / hz / idle.Seconds() * 100 }
	b.ReportMetric(pctCore(f1-f0), "fleet-idle-%core")
	b.ReportMetric(pctCore(d1-d0)/float64(len(list)), "desktop-idle-%core")
	b.ReportMetric(pctCore(f1-f0+d1-d0), "all-idle-%core")
}

// pct is the q-th percentile of ds in milliseconds.
func pct(ds []time.Duration, q int) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[q*(len(s)-1)/100].Microseconds()) / 1000
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// pssKB is a process's proportional set size: its private pages and its
// share of the pages it shares.
func pssKB(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// comm is a process's program name.
func comm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// cpuTicks is a process's user and system time in clock ticks (its
// threads included, its reaped children not).
func cpuTicks(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.Atoi(f[11])
	k, _ := strconv.Atoi(f[12])
	return u + k
}
