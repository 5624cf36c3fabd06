package budget_test

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/budget"
	"atelier/internal/model"
	"atelier/internal/store"
)

func openStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fleet.db")
	st, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, path
}

func TestReserveSettleAndCap(t *testing.T) {
	st, _ := openStore(t)
	now := time.Date(2026, 11, 29, 23, 59, 0, 0, time.UTC)
	var changes []budget.Totals
	b, err := budget.New(t.Context(), budget.Options{Store: st, CapUSD: 1, Now: func() time.Time { return now },
		OnChange: func(tt budget.Totals) { changes = append(changes, tt) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	r1, err := b.Reserve(ctx, "task_a", "s1", 0.6)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reserve(ctx, "task_b", "s2", 0.5); !errors.Is(err, budget.ErrBudgetExhausted) {
		t.Fatalf("0.6 reserved + 0.5 under a cap of 1: got %v, want ErrBudgetExhausted", err)
	}
	if err := b.Settle(ctx, r1, 1, 0.3, model.Usage{Model: "claude-sonnet-4-5", InputTokens: 90000, OutputTokens: 2000}, budget.BasisUsage); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reserve(ctx, "task_b", "s2", 0.5); err != nil {
		t.Fatalf("0.3 spent + 0.5: %v", err)
	}
	got, err := b.Today(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (budget.Totals{Day: "2026-11-29", SpentUSD: 0.3, ReservedUSD: 0.5, CapUSD: 1}); got != want {
		t.Errorf("Today = %+v, want %+v", got, want)
	}
	if len(changes) != 1 || changes[0].SpentUSD != 0.3 {
		t.Fatalf("OnChange calls = %+v, want one with 0.3 spent", changes)
	}
	// What the hook hands the fleet is a valid budget file for waybar.
	file := filepath.Join(t.TempDir(), desktop.BudgetFile)
	if err := desktop.WriteBudget(file, changes[0].ForDesktop(now)); err != nil {
		t.Fatal(err)
	}
	if back, err := desktop.ReadBudget(file); err != nil || back.SpentUSD != 0.3 || back.CapUSD != 1 || back.ReservedUSD != 0 {
		t.Errorf("budget file read back = %+v, %v", back, err)
	}
	if _, err := b.Reserve(ctx, "task_c", "s3", -1); err == nil {
		t.Error("a negative estimate was accepted")
	}
	if _, err := b.Reserve(ctx, "task_c", "s3", math.NaN()); err == nil {
		t.Error("a NaN estimate was accepted")
	}
	led, err := st.Ledger(ctx, "2026-11-29")
	if err != nil || len(led) != 1 || led[0].TaskID != "task_a" || led[0].Step != 1 || led[0].InputTokens != 90000 || led[0].USD != 0.3 {
		t.Errorf("ledger = %+v, %v", led, err)
	}

	// A new UTC day starts from zero.
	now = now.Add(2 * time.Minute)
	if got, _ := b.Today(ctx); got.SpentUSD != 0 || got.Day != "2026-11-30" {
		t.Errorf("next day = %+v, want nothing spent", got)
	}
}

func TestRestartDropsStaleReservations(t *testing.T) {
	st, _ := openStore(t)
	b, _ := budget.New(t.Context(), budget.Options{Store: st, CapUSD: 1})
	if _, err := b.Reserve(t.Context(), "task_a", "s1", 0.9); err != nil {
		t.Fatal(err)
	}
	b2, err := budget.New(t.Context(), budget.Options{Store: st, CapUSD: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := b2.Today(t.Context()); got.ReservedUSD != 0 {
		t.Errorf("after a restart, reserved = %v, want 0", got.ReservedUSD)
	}
	if _, err := budget.New(t.Context(), budget.Options{Store: st, CapUSD: -1}); err == nil {
		t.Error("a negative cap was accepted")
	}
}

// TestConcurrentTasksNeverOvershoot races 20 tasks on 20 sessions, each
// reserving and settling calls until the cap refuses, against one SQLite
// file opened twice (as two fleet processes would). The ledger never passes
// the cap, and the cap is used up.
func TestConcurrentTasksNeverOvershoot(t *testing.T) {
	st, path := openStore(t)
	st2, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	const capUSD, estimate, actual = 0.05, 0.004, 0.003
	b1, _ := budget.New(t.Context(), budget.Options{Store: st, CapUSD: capUSD})
	b2, _ := budget.New(t.Context(), budget.Options{Store: st2, CapUSD: capUSD})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		b := b1
		if i%2 == 1 {
			b = b2
		}
		wg.Go(func() {
			task, session := fmt.Sprintf("task_%02d", i), fmt.Sprintf("s%02d", i)
			for step := 1; ; step++ {
				r, err := b.Reserve(t.Context(), task, session, estimate)
				if errors.Is(err, budget.ErrBudgetExhausted) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				if err := b.Settle(t.Context(), r, step, actual, model.Usage{Model: "m", InputTokens: 1}, budget.BasisUsage); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	led, err := st.Ledger(t.Context(), budget.Day(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, e := range led {
		total += e.USD
	}
	if total > capUSD+1e-9 {
		t.Fatalf("ledger total %.6f passed the cap %.2f (%d calls)", total, capUSD, len(led))
	}
	if total < capUSD-estimate-1e-9 {
		t.Errorf("ledger total %.6f: the cap %.2f was not used up", total, capUSD)
	}
	if got, _ := b1.Today(t.Context()); got.ReservedUSD != 0 {
		t.Errorf("reserved after all settled = %v, want 0", got.ReservedUSD)
	}
}
