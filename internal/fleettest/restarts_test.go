package fleettest_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/fleettest"
)

// descendant finds a process named comm below pid on the host, by /proc.
func descendant(t *testing.T, pid int, comm string) int {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	parent, name := map[int]int{}, map[int]string{}
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(b)
		open, shut := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		fields := strings.Fields(s[shut+1:])
		id, _ := strconv.Atoi(strings.TrimSpace(s[:open]))
		ppid, _ := strconv.Atoi(fields[1])
		parent[id], name[id] = ppid, s[open+1:shut]
	}
	for id, n := range name {
		if n != comm {
			continue
		}
		for p := parent[id]; p > 1; p = parent[p] {
			if p == pid {
				return id
			}
		}
	}
	t.Fatalf("no %s below pid %d", comm, pid)
	return 0
}

// TestRestartMetrics crashes a desktop's component and then the whole
// desktop (local runtime) and checks the restarts counters move, once
// each: the agent's restart of the component, the runtime's of the
// desktop.
func TestRestartMetrics(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{Token: token, MetricsToken: metricsToken})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "restarts"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	scrape(t, ctx, f) // the fleet's first look at the desktop: its baseline
	se, err := f.Sessions.Get(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	sandbox, err := strconv.Atoi(strings.TrimPrefix(se.Detail, "pid "))
	if err != nil {
		t.Fatalf("session detail %q: want the sandbox's pid", se.Detail)
	}
	wayvnc := map[string]string{"component": "wayvnc"}
	if err := syscall.Kill(descendant(t, sandbox, "wayvnc"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitCounter(t, ctx, f, "atelier_desktop_component_restarts_total", wayvnc, 1)

	local := map[string]string{"runtime": "local"}
	if err := syscall.Kill(sandbox, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitCounter(t, ctx, f, "atelier_desktop_restarts_total", local, 1)
	if _, err := f.Sessions.WaitReady(ctx, s.ID, time.Minute); err != nil {
		t.Fatalf("the desktop did not come back: %v", err)
	}
	after := scrape(t, ctx, f)
	if n := counter(after, "atelier_desktop_restarts_total", local); n != 1 {
		t.Errorf("atelier_desktop_restarts_total{local} = %v once the desktop is back, want 1", n)
	}
	// The new desktop's agent counts from zero: no restart of it is new.
	if n := counter(after, "atelier_desktop_component_restarts_total", wayvnc); n != 1 {
		t.Errorf("atelier_desktop_component_restarts_total{wayvnc} = %v after the desktop's restart, want still 1", n)
	}
}

// waitCounter scrapes until the counter reaches want, failing past it or
// at ctx's end.
func waitCounter(t *testing.T, ctx context.Context, f *fleettest.Fleet, name string, labels map[string]string, want float64) {
	t.Helper()
	for {
		got := counter(scrape(t, ctx, f), name, labels)
		switch {
		case got == want:
			return
		case got > want:
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		case ctx.Err() != nil:
			t.Fatalf("%s%v = %v, never reached %v", name, labels, got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
