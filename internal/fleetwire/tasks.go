package fleetwire

import (
	"context"
	"log/slog"
	"time"

	"atelier/internal/audit"
	"atelier/internal/budget"
	"atelier/internal/config"
	"atelier/internal/control"
	"atelier/internal/model/anthropic"
	"atelier/internal/model/holo"
	"atelier/internal/model/scripted"
	"atelier/internal/runtime"
	"atelier/internal/sessions"
	"atelier/internal/store"
	"atelier/internal/tasks"
)

// budgetRefresh is how often every desktop's budget file is rewritten
// without a change, so waybar's staleness mark means the fleet is gone.
const budgetRefresh = 30 * time.Second

// TaskParts are the parts tasks need.
type TaskParts struct {
	Store    *store.Store
	Sessions *sessions.Manager
	Runtime  runtime.Runtime
	Audit    *audit.Log // optional
	// Control is the sessions' control lease, shared with the API and the
	// live view; nil: the task manager keeps one of its own.
	Control *control.Leases
	Model   config.Model
	CapUSD  float64
	DataDir string
	// StepRetention is how long step screenshots are kept; 0: the
	// manager's default.
	StepRetention time.Duration
	Logger        *slog.Logger
	// Observer, if set, is told every task's start and events beside the
	// audit log, and the loop's model calls and screenshots (the fleet's
	// metrics).
	Observer TaskObserver
}

// TaskObserver watches the tasks: what they record and what they call.
type TaskObserver interface {
	tasks.Recorder
	tasks.Observer
}

// recorders tells each recorder in turn; the first error is returned,
// after all were told.
type recorders []tasks.Recorder

func (rs recorders) RecordTaskStart(ctx context.Context, t tasks.Task) error {
	var first error
	for _, r := range rs {
		if err := r.RecordTaskStart(ctx, t); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (rs recorders) RecordTaskEvent(ctx context.Context, sessionID, taskID string, ev tasks.Event) error {
	var first error
	for _, r := range rs {
		if err := r.RecordTaskEvent(ctx, sessionID, taskID, ev); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Backends returns the task backends as m configures them.
func Backends(m config.Model) map[string]tasks.Backend {
	return map[string]tasks.Backend{
		"holo":      holo.New(holo.Options{Endpoint: m.HoloEndpoint, APIKey: m.HoloKey, Model: m.HoloModel, Output: m.HoloOutput}),
		"anthropic": anthropic.New(anthropic.Options{APIKey: m.AnthropicKey, BaseURL: m.AnthropicBaseURL}),
		"scripted":  scripted.Backend{},
	}
}

// Tasks builds the budget and the task manager, and keeps the budget file
// current in every running desktop. stop ends the refresh and closes the
// manager (running tasks end interrupted).
func Tasks(ctx context.Context, p TaskParts) (*budget.Budget, *tasks.Manager, func(), error) {
	files := BudgetFiles{Sessions: p.Sessions, Runtime: p.Runtime, Logger: p.Logger, Changed: make(chan struct{}, 1)}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b, err := budget.New(ctx, budget.Options{Store: p.Store, CapUSD: p.CapUSD,
		OnChange: func(budget.Totals) {
			select { // a refresh already pending covers this change
			case files.Changed <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	files.Budget = b
	opts := tasks.Options{Store: p.Store, Budget: b, Desktops: Desktops{p.Sessions}, DataDir: p.DataDir, Retention: p.StepRetention,
		DefaultBackend: p.Model.Backend, Prices: p.Model.Prices, Logger: p.Logger,
		SettleQuiet: p.Model.SettleQuiet, SettleMax: p.Model.SettleMax, Backends: Backends(p.Model)}
	var rs recorders
	if p.Audit != nil {
		rs = append(rs, Audit{p.Audit})
	}
	if p.Observer != nil {
		rs = append(rs, p.Observer)
		opts.Observer = p.Observer
	}
	if len(rs) > 0 { // no recorder stays a nil interface
		opts.Recorder = rs
	}
	if p.Control != nil { // a nil pointer must not become a non-nil interface
		opts.Control = p.Control
	}
	tm, err := tasks.New(ctx, opts)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	done := make(chan struct{})
	go func() { defer close(done); files.Refresh(rctx, budgetRefresh) }()
	stop := func() {
		tm.Close()
		cancel()
		<-done
	}
	return b, tm, stop, nil
}
