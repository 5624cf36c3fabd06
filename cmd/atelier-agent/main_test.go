package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"atelier/desktop"
)

func runAgent(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, func(string) string { return "/nonexistent-home" }, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestBudgetLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), desktop.BudgetFile)
	code, out, _ := runAgent(t, "budget-line", path)
	var l desktop.BarLine
	if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil || l.Text != "no budget" || l.Class != desktop.BudgetNone {
		t.Errorf("budget-line without a file: exit %d, %q (%v); want 0 and no budget", code, out, err)
	}
	if err := desktop.WriteBudget(path, desktop.Budget{SpentUSD: 0.42, CapUSD: 2, Updated: time.Now()}); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runAgent(t, "budget-line", path)
	if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil || l.Text != "$0.42 / $2.00" || l.Class != desktop.BudgetOK {
		t.Errorf("budget-line: exit %d, %q (%v); want 0 and $0.42 / $2.00", code, out, err)
	}
	if code, _, stderr := runAgent(t, "budget-line"); code != 2 || !strings.Contains(stderr, "usage") {
		t.Errorf("budget-line without a file argument: exit %d, %q; want 2 and the usage", code, stderr)
	}
}

// TestBudgetLineFollow: --follow prints the line at once, again when the
// file is written (an inotify event wakes it), again when the line turns
// stale with no write at all, and returns 0 when its context ends.
func TestBudgetLineFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), desktop.BudgetFile)
	if err := desktop.WriteBudget(path, desktop.Budget{SpentUSD: 0.42, CapUSD: 2, Updated: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r, w := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"budget-line", "--follow", path}, func(string) string { return "" }, w, io.Discard)
		w.Close()
	}()
	lines := bufio.NewScanner(r)
	next := func() desktop.BarLine {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("no line: %v", lines.Err())
		}
		var l desktop.BarLine
		if err := json.Unmarshal(lines.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := next(); l.Text != "$0.42 / $2.00" {
		t.Errorf("first line %+v, want $0.42 / $2.00", l)
	}
	if err := desktop.WriteBudget(path, desktop.Budget{SpentUSD: 1.9, CapUSD: 2, Updated: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if l := next(); l.Text != "$1.90 / $2.00" || l.Class != desktop.BudgetWarning {
		t.Errorf("after the change %+v, want $1.90 / $2.00, warning", l)
	}
	// Stale in half a second, with nothing written after this.
	if err := desktop.WriteBudget(path, desktop.Budget{SpentUSD: 1, CapUSD: 2, Updated: time.Now().Add(500*time.Millisecond - desktop.StaleAfter)}); err != nil {
		t.Fatal(err)
	}
	if l := next(); l.Text != "$1.00 / $2.00" {
		t.Errorf("after the second write %+v, want $1.00 / $2.00", l)
	}
	if l := next(); l.Text != "$1.00 / $2.00 stale" || l.Class != desktop.BudgetStale {
		t.Errorf("with time alone %+v, want $1.00 / $2.00 stale", l)
	}
	cancel()
	go io.Copy(io.Discard, r)
	if code := <-done; code != 0 {
		t.Errorf("exit %d after the context ended, want 0", code)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--resolution", "10x10"},
		{"--resolution", "wide"},
		{"--theme", "neon"},
		{"--log-level", "loud"},
		{"--no-such-flag"},
		{"stray"},
	} {
		code, _, stderr := runAgent(t, args...)
		if code != 2 || stderr == "" {
			t.Errorf("atelier-agent %s: exit %d, stderr %q; want 2 with a reason", strings.Join(args, " "), code, stderr)
		}
	}
}

func TestRefusesRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: not root: the refusal cannot be observed")
	}
	runDir := filepath.Join(t.TempDir(), "run")
	code, _, stderr := runAgent(t, "--run-dir", runDir)
	if code != 1 || !strings.Contains(stderr, "refusing to run as root") {
		t.Errorf("as root: exit %d, %q; want 1 and a refusal", code, stderr)
	}
	if _, err := os.Stat(runDir); err == nil {
		t.Error("a refused start made the run dir")
	}
}

// TestDependencies holds the agent's promise to stay small: no database, no
// model or Docker SDK in the binary every desktop runs.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"database/sql", "modernc.org/", "github.com/moby/", "github.com/docker/",
			"github.com/anthropics/", "github.com/openai/", "github.com/chromedp/"} {
			if dep == bad || strings.HasPrefix(dep, bad) {
				t.Errorf("atelier-agent depends on %s", dep)
			}
		}
	}
}
