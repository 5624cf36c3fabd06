package console_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"atelier/internal/apitype"
	"atelier/internal/fleettest"
)

// BenchmarkConsoleFleet opens the console's fleet page on a fleet of
// ATELIER_BENCH_SESSIONS real desktops (20 by default) at 1280×720 and
// reports the page's first contentful paint, the time until every card in
// view shows a thumbnail, and the fleet process's CPU while the page
// refreshes its thumbnails, against the same span with no page open.
func BenchmarkConsoleFleet(b *testing.B) {
	n := 20
	if s := os.Getenv("ATELIER_BENCH_SESSIONS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("ATELIER_BENCH_SESSIONS=%q: want a count", s)
		}
	}
	f := fleettest.New(b, fleettest.Options{Token: token})
	ctx := context.Background()
	sem := make(chan struct{}, 4) // desktops start four at a time
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "bench"}, 3*time.Minute); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	br := browser{t: b, ctx: startBrowser(b)}
	const window = 10 * time.Second
	idleFleet, idleDesk := cpuDuring(window)

	var paint, thumbs, busyFleet, busyDesk time.Duration
	for b.Loop() {
		br.run("sign in", chromedp.Navigate(f.URL+"/console/signin"), chromedp.WaitVisible("#token"),
			chromedp.SendKeys("#token", token), chromedp.Submit("#token"), chromedp.WaitVisible("#grid"))
		br.waitJS(`document.querySelectorAll("#grid .card").length === `+strconv.Itoa(n), "every card", time.Minute)
		paint += time.Duration(eval[float64](br, `performance.getEntriesByName("first-contentful-paint")[0].startTime`) * float64(time.Millisecond))
		br.waitJS(`[...document.querySelectorAll("#grid .card")].filter(c => { const r = c.getBoundingClientRect(); return r.top < innerHeight && r.bottom > 0; }).every(c => Number(c.dataset.thumbs) > 0)`,
			"thumbnails on every card in view", time.Minute)
		thumbs += time.Duration(eval[float64](br, `performance.now()`) * float64(time.Millisecond))
		fl, dk := cpuDuring(window)
		busyFleet += fl
		busyDesk += dk
		br.run("sign out", chromedp.Click(".signout button"), chromedp.WaitVisible("#token"))
	}
	runs := float64(b.N)
	b.ReportMetric(float64(paint.Milliseconds())/runs, "ms-first-paint")
	b.ReportMetric(float64(thumbs.Milliseconds())/runs, "ms-thumbs-in-view")
	pct := func(d time.Duration, runs float64) float64 { return d.Seconds() / runs / window.Seconds() * 100 }
	b.ReportMetric(pct(busyFleet, runs), "%cpu-fleet-page-open")
	b.ReportMetric(pct(idleFleet, 1), "%cpu-fleet-no-page")
	b.ReportMetric(pct(busyDesk, runs), "%cpu-desktops-page-open")
	b.ReportMetric(pct(idleDesk, 1), "%cpu-desktops-no-page")
	b.ReportMetric(float64(n), "sessions")
}

// cpuDuring is the CPU time the fleet (this process) and its desktops
// (the processes under it but the browser) spend over d.
func cpuDuring(d time.Duration) (fleet, desktops time.Duration) {
	f0, d0 := cpuTime(), desktopCPU()
	time.Sleep(d)
	return cpuTime() - f0, desktopCPU() - d0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// desktopCPU sums the CPU time of this process's descendants, leaving
// out Chromium's (the viewer, not the fleet).
func desktopCPU() time.Duration {
	procs, _ := fleettest.Procs()
	self := os.Getpid()
	browser := func(p fleettest.Proc) bool { return strings.HasPrefix(p.Comm, "chrom") }
	var total time.Duration
	for pid, p := range procs {
		if !browser(p) && fleettest.Descends(procs, pid, self, browser) {
			total += p.CPU
		}
	}
	return total
}
