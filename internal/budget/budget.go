// Package budget enforces the fleet's daily spending cap (MAX_USD_PER_DAY,
// per UTC day). Before each model call a task reserves an estimate; after
// it, the reservation is settled with the real cost, which lands in the
// ledger. Reservations are taken in one store transaction, so concurrent
// tasks across sessions can never together pass the cap.
package budget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"atelier/desktop"
	"atelier/internal/model"
	"atelier/internal/store"
)

// ErrBudgetExhausted is returned by Reserve when the call could take the
// day's spend above the cap.
var ErrBudgetExhausted = errors.New("daily budget exhausted")

// Options configure a Budget. Zero values take defaults.
type Options struct {
	Store *store.Store
	// CapUSD is the most the fleet may spend per UTC day; 0 means no cap.
	CapUSD float64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnChange, if set, is called after every settled call with the day's
	// new totals, so the fleet can refresh each desktop's budget file. It
	// runs on the settling goroutine and must not block for long.
	OnChange func(Totals)
}

// Budget is the daily cap over one store. It is safe for concurrent use.
type Budget struct {
	st       *store.Store
	cap      float64
	now      func() time.Time
	onChange func(Totals)
}

// Totals is one day's money, as GET /budget reports it.
type Totals struct {
	Day         string  `json:"day"`
	SpentUSD    float64 `json:"spent_usd"`
	ReservedUSD float64 `json:"reserved_usd"`
	CapUSD      float64 `json:"cap_usd"` // 0: no cap
}

// Reservation is money set aside for one model call in flight.
type Reservation struct {
	id        int64
	Day       string
	TaskID    string
	SessionID string
	USD       float64
}

// New returns a Budget. Reservations left by a previous fleet process are
// dropped: no call of theirs is still in flight.
func New(ctx context.Context, opts Options) (*Budget, error) {
	if opts.Store == nil {
		return nil, errors.New("budget: no store")
	}
	if opts.CapUSD < 0 || math.IsNaN(opts.CapUSD) || math.IsInf(opts.CapUSD, 0) {
		return nil, fmt.Errorf("budget: cap %v: want a non-negative amount of USD", opts.CapUSD)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := opts.Store.ClearBudgetReservations(ctx); err != nil {
		return nil, err
	}
	return &Budget{st: opts.Store, cap: opts.CapUSD, now: opts.Now, onChange: opts.OnChange}, nil
}

// Day returns the UTC day t falls in, as the ledger keys it.
func Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// Reserve sets estimateUSD aside for a call of task on session. It returns
// ErrBudgetExhausted, and reserves nothing, if spent + reserved + estimate
// would pass the cap.
func (b *Budget) Reserve(ctx context.Context, taskID, sessionID string, estimateUSD float64) (Reservation, error) {
	if estimateUSD < 0 || math.IsNaN(estimateUSD) || math.IsInf(estimateUSD, 0) {
		return Reservation{}, fmt.Errorf("reserve %v USD: want a non-negative amount", estimateUSD)
	}
	now := b.now()
	day := Day(now)
	id, err := b.st.ReserveBudget(ctx, day, taskID, sessionID, estimateUSD, b.cap, now)
	if errors.Is(err, store.ErrOverCap) {
		return Reservation{}, fmt.Errorf("reserve %.4f USD for task %s: %w", estimateUSD, taskID, ErrBudgetExhausted)
	}
	if err != nil {
		return Reservation{}, err
	}
	return Reservation{id: id, Day: day, TaskID: taskID, SessionID: sessionID, USD: estimateUSD}, nil
}

// Bases: how a ledger entry's cost was arrived at.
const (
	// BasisUsage: the tokens the call used, at its model's price.
	BasisUsage = "usage"
	// BasisUnpriced: the model has no price, so the call is recorded at
	// 0 USD (allowed only without a cap).
	BasisUnpriced = "unpriced"
	// BasisReservation: the call was abandoned (a cancel) before its
	// usage was known, so it is charged what was reserved for it.
	BasisReservation = "reservation"
)

// Settle records the cost of the call r was taken for (step of its task,
// with usage, its cost found on basis) and releases r.
func (b *Budget) Settle(ctx context.Context, r Reservation, step int, usd float64, usage model.Usage, basis string) error {
	err := b.st.SettleBudget(ctx, r.id, store.LedgerEntry{
		Day: r.Day, At: b.now(), TaskID: r.TaskID, SessionID: r.SessionID, Step: step, Model: usage.Model,
		InputTokens: usage.InputTokens, OutputTokens: usage.OutputTokens,
		CacheReadTokens: usage.CacheReadTokens, CacheWriteTokens: usage.CacheWriteTokens, USD: usd, Basis: basis,
	})
	if err != nil {
		return err
	}
	if b.onChange != nil {
		if t, err := b.Today(ctx); err == nil {
			b.onChange(t)
		}
	}
	return nil
}

// Release drops r without recording spend: the call never reached a model.
func (b *Budget) Release(ctx context.Context, r Reservation) error {
	return b.st.ReleaseBudget(ctx, r.id)
}

// Today returns the current UTC day's totals and the cap.
func (b *Budget) Today(ctx context.Context) (Totals, error) {
	day := Day(b.now())
	t, err := b.st.BudgetDay(ctx, day)
	if err != nil {
		return Totals{}, err
	}
	return Totals{Day: day, SpentUSD: t.SpentUSD, ReservedUSD: t.ReservedUSD, CapUSD: b.cap}, nil
}

// Cap returns the daily cap in USD; 0 means none.
func (b *Budget) Cap() float64 { return b.cap }

// ForDesktop returns t as the budget file waybar reads in every desktop
// (desktop.BudgetFile), stamped with when it was computed.
func (t Totals) ForDesktop(now time.Time) desktop.Budget {
	return desktop.Budget{SpentUSD: t.SpentUSD, CapUSD: t.CapUSD, ReservedUSD: t.ReservedUSD, Updated: now.UTC()}
}
