package desktop_test

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"atelier/desktop"
)

func TestBudgetRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), desktop.BudgetFile)
	want := desktop.Budget{SpentUSD: 0.42, CapUSD: 2, ReservedUSD: 0.1, Updated: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	if err := desktop.WriteBudget(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := desktop.ReadBudget(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadBudget mismatch (-want +got):\n%s", diff)
	}
	if err := desktop.WriteBudget(path, desktop.Budget{SpentUSD: math.NaN()}); err == nil {
		t.Error("WriteBudget accepted NaN")
	}
	if got, _ := desktop.ReadBudget(path); !cmp.Equal(want, got) {
		t.Error("a refused WriteBudget changed the file")
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("WriteBudget left %d files behind, want only the budget", len(entries))
	}
	if _, err := desktop.ReadBudget(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadBudget(missing) = %v, want fs.ErrNotExist", err)
	}
}

func TestBudgetLine(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	fresh := now.Add(-10 * time.Second)
	tests := []struct {
		name      string
		file      string // "" means no file
		wantText  string
		wantClass string
	}{
		{"absent", "", "no budget", desktop.BudgetNone},
		{"ok", `{"spent_usd":0.42,"cap_usd":2,"reserved_usd":0,"updated":"` + fresh.Format(time.RFC3339) + `"}`, "$0.42 / $2.00", desktop.BudgetOK},
		{"warning with reservations", `{"spent_usd":1.5,"cap_usd":2,"reserved_usd":0.1,"updated":"` + fresh.Format(time.RFC3339) + `"}`, "$1.50 / $2.00", desktop.BudgetWarning},
		{"at the cap", `{"spent_usd":2,"cap_usd":2,"updated":"` + fresh.Format(time.RFC3339) + `"}`, "$2.00 / $2.00", desktop.BudgetCritical},
		{"no cap", `{"spent_usd":3.5,"cap_usd":0,"updated":"` + fresh.Format(time.RFC3339) + `"}`, "$3.50 · no cap", desktop.BudgetOK},
		{"stale", `{"spent_usd":0.42,"cap_usd":2,"updated":"` + now.Add(-91*time.Second).Format(time.RFC3339) + `"}`, "$0.42 / $2.00 stale", desktop.BudgetStale},
		{"not json", `{"spent_usd":`, "budget ?", desktop.BudgetError},
		{"negative", `{"spent_usd":-1,"cap_usd":2}`, "budget ?", desktop.BudgetError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), desktop.BudgetFile)
			if tt.file != "" {
				if err := os.WriteFile(path, []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got := desktop.BudgetLine(path, now)
			if got.Text != tt.wantText || got.Class != tt.wantClass || got.Tooltip == "" {
				t.Errorf("BudgetLine = %+v, want text %q class %q and a tooltip", got, tt.wantText, tt.wantClass)
			}
		})
	}
}

// TestBudgetLineSameUntilChanged: the fleet's rewrite of an unchanged budget
// gives the same line, so the follower prints nothing and the bar is not
// redrawn; staleness says since when.
func TestBudgetLineSameUntilChanged(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), desktop.BudgetFile)
	line := func(updated time.Time) desktop.BarLine {
		t.Helper()
		if err := desktop.WriteBudget(path, desktop.Budget{SpentUSD: 0.42, CapUSD: 2, Updated: updated}); err != nil {
			t.Fatal(err)
		}
		return desktop.BudgetLine(path, now)
	}
	if a, b := line(now.Add(-40*time.Second)), line(now.Add(-10*time.Second)); a != b {
		t.Errorf("two rewrites of one budget: %+v then %+v, want the same line", a, b)
	}
	if l := line(now.Add(-2 * time.Minute)); l.Class != desktop.BudgetStale || !strings.Contains(l.Tooltip, "not updated since") {
		t.Errorf("stale line %+v, want the stale class and since when", l)
	}
}

func FuzzBudgetLine(f *testing.F) {
	f.Add([]byte(`{"spent_usd":0.42,"cap_usd":2,"reserved_usd":0.1,"updated":"2026-11-29T10:00:00Z"}`))
	f.Add([]byte(`{"spent_usd":1e308,"cap_usd":0}`))
	f.Add([]byte(`[]`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "budget")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		l := desktop.BudgetLine(path, time.Now())
		if l.Text == "" || l.Class == "" {
			t.Fatalf("BudgetLine(%q) = %+v: empty text or class", data, l)
		}
	})
}
