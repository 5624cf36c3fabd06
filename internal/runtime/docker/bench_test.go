package docker_test

import (
	"slices"
	"testing"
	"time"

	"atelier/internal/runtime"
	"atelier/internal/runtime/docker/dockertest"
	"atelier/internal/runtime/runtimetest"
	"atelier/internal/snapshot"
)

// reportPercentiles reports the p50 and p95 of ds in seconds.
func reportPercentiles(b *testing.B, ds []time.Duration, unit string) {
	slices.Sort(ds)
	p := func(q float64) float64 { return ds[int(q*float64(len(ds)-1))].Seconds() }
	b.ReportMetric(p(0.5), "s/"+unit+"-p50")
	b.ReportMetric(p(0.95), "s/"+unit+"-p95")
	b.ReportMetric(0, "ns/op") // the percentiles say it better
}

// BenchmarkCreateReady: Create, Start and the agent reporting ready, with
// the image present. Target: p50 ≤ 3 s.
func BenchmarkCreateReady(b *testing.B) {
	rt := newRuntime(b)
	var ds []time.Duration
	for b.Loop() {
		start := time.Now()
		id := create(b, rt, runtime.Spec{})
		runtimetest.WaitReady(b, rt, id)
		ds = append(ds, time.Since(start))
		b.StopTimer()
		if err := rt.Remove(b.Context(), id, true); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportPercentiles(b, ds, "ready")
}

// BenchmarkSnapshot100MB: a snapshot of a running desktop whose home holds
// 100 MB of incompressible data: its home archive alone, then with the
// image of its filesystem changes (committed meanwhile). Target: ≤ 3 s.
func BenchmarkSnapshot100MB(b *testing.B) {
	c, _ := dockertest.Engine(b)
	rt := newRuntime(b)
	id := create(b, rt, runtime.Spec{})
	runtimetest.WaitReady(b, rt, id)
	if out, code := execIn(b, c, id, "", "sh", "-c", "head -c 100000000 /dev/urandom > ~/big"); code != 0 {
		b.Fatalf("fill the home: %q (exit %d)", out, code)
	}
	for _, bc := range []struct {
		name   string
		images snapshot.Images
	}{{"home", nil}, {"home+image", rt}} {
		b.Run(bc.name, func(b *testing.B) {
			snaps := newSnapshots(b, bc.images)
			b.SetBytes(100_000_000)
			var ds []time.Duration
			for b.Loop() {
				start := time.Now()
				sn, err := snaps.Take(b.Context(), rt, id)
				if err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(start))
				b.StopTimer()
				if err := snaps.Delete(b.Context(), sn.ID); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			reportPercentiles(b, ds, "snapshot")
		})
	}
}
