package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/agentapi"
	"atelier/internal/runtime"
	"atelier/internal/runtime/runtimetest"
)

// BenchmarkCreateStartReady measures create + start until the desktop's
// ready file appears, with a home quota (the fleet's default, a 10 GiB
// filesystem made and mounted) and without; it reports the median as
// p50-ms.
func BenchmarkCreateStartReady(b *testing.B) {
	for _, quota := range []int64{0, 10 << 30} {
		b.Run(fmt.Sprintf("quota=%dGiB", quota>>30), func(b *testing.B) { benchCreateStartReady(b, quota) })
	}
}

func benchCreateStartReady(b *testing.B, quota int64) {
	r := newRuntime(b, Options{HomeQuota: quota})
	ctx := context.Background()
	var took []time.Duration
	for b.Loop() {
		id := runtime.NewID()
		t0 := time.Now()
		if err := r.Create(ctx, runtime.Spec{ID: id}); err != nil {
			b.Fatal(err)
		}
		if err := r.Start(ctx, id); err != nil {
			b.Fatal(err)
		}
		ready := filepath.Join(r.root, id, "run", desktop.ReadyFile)
		// Bounded polling: the agent announces readiness only by this file.
		for deadline := t0.Add(runtimetest.ReadyTimeout); ; time.Sleep(2 * time.Millisecond) {
			if _, err := os.Stat(ready); err == nil {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("desktop not ready after %v", runtimetest.ReadyTimeout)
			}
		}
		took = append(took, time.Since(t0))
		b.StopTimer()
		if err := r.Remove(ctx, id, true); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkIdleRSS reports the summed resident memory (RSS, and PSS which
// counts shared pages once) of every process of one idle desktop: bwrap,
// agent, sway, wayvnc, waybar, and a terminal.
func BenchmarkIdleRSS(b *testing.B) {
	r := newRuntime(b, Options{})
	id := startDesktop(b, r, runtime.Spec{})
	c := runtimetest.Agent(b, r, id)
	if _, err := c.Do(b.Context(), agentapi.Request{Action: agentapi.Key, Text: "super+Return"}); err != nil {
		b.Fatal(err)
	}
	pid := sandboxPID(b, r, id)
	// Let the terminal start and everything settle into idleness.
	time.Sleep(3 * time.Second)
	findInTree(b, pid, "foot")
	var rss, pss int64
	for b.Loop() {
		var err error
		if rss, err = treeMemory(pid, "Rss"); err != nil {
			b.Fatal(err)
		}
		if pss, err = treeMemory(pid, "Pss"); err != nil {
			b.Fatal(err)
		}
	}
	for _, p := range tree(pid) {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		r, _ := procMemory(p, "Rss")
		s, _ := procMemory(p, "Pss")
		b.Logf("%-14s rss %5.1f MiB  pss %5.1f MiB", strings.TrimSpace(string(comm)), float64(r)/(1<<20), float64(s)/(1<<20))
	}
	b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
	b.ReportMetric(float64(pss)/(1<<20), "pss-MiB")
	b.ReportMetric(float64(len(tree(pid))), "procs")
}

// BenchmarkDial measures one checked dial of a desktop's agent socket
// (open without links, connect through the descriptor, peer check).
func BenchmarkDial(b *testing.B) {
	r := newRuntime(b, Options{})
	id := startDesktop(b, r, runtime.Spec{})
	for b.Loop() {
		c, err := r.Dial(b.Context(), id, runtime.EndpointAgent)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
