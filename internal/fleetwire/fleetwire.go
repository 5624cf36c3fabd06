// Package fleetwire holds the small adapters that join the fleet's parts
// where their consumer-defined interfaces meet: the sessions manager as the
// tasks' Desktops, the audit log as the sessions' Auditor and the tasks'
// Recorder and the egress gateway's Recorder, and the budget as a file in every running desktop; and the
// runtime a config names. `atelier serve` and fleettest wire the same
// adapters.
package fleetwire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"atelier/desktop"
	"atelier/internal/agentapi"
	"atelier/internal/audit"
	"atelier/internal/budget"
	"atelier/internal/control"
	"atelier/internal/egress"
	"atelier/internal/runtime"
	"atelier/internal/sessions"
	"atelier/internal/tasks"
	"atelier/internal/view"
)

// Desktops is the sessions manager as tasks.Desktops.
type Desktops struct{ Sessions *sessions.Manager }

// Agent returns a running session's agent; a missing or stopped session
// wraps tasks.ErrNoDesktop.
func (d Desktops) Agent(ctx context.Context, id string) (*agentapi.Client, error) {
	c, err := d.Sessions.Agent(ctx, id)
	return c, noDesktop(err)
}

// Act sends a task's actions through the sessions' one input pipeline.
func (d Desktops) Act(ctx context.Context, id string, who sessions.Actor, reqs []agentapi.Request) (sessions.ActResult, error) {
	res, err := d.Sessions.Act(ctx, id, who, reqs, nil)
	return res, noDesktop(err)
}

// noDesktop wraps tasks.ErrNoDesktop around a missing or stopped session.
func noDesktop(err error) error {
	if errors.Is(err, sessions.ErrNoSession) || errors.Is(err, sessions.ErrNotRunning) || errors.Is(err, sessions.ErrBadID) {
		return fmt.Errorf("%w: %w", tasks.ErrNoDesktop, err)
	}
	return err
}

// Audit writes the fleet's events into the audit log.
type Audit struct{ Log *audit.Log }

// actor is the request's actor (set by the API's auth), else the fleet.
func actor(ctx context.Context) string {
	if a := audit.ActorFrom(ctx); a != "" {
		return a
	}
	return audit.ActorFleet
}

// RecordAction satisfies sessions.Auditor: one action entry per action
// sent, whoever sent it; one that did not run has code not_run.
func (a Audit) RecordAction(ctx context.Context, id string, rec sessions.ActionRecord) error {
	res := audit.Result{Code: audit.CodeOK, DurationMS: float64(rec.Took) / float64(time.Millisecond)}
	switch {
	case rec.NotRun != "":
		res = audit.Result{Code: audit.CodeNotRun, Message: rec.NotRun}
	case rec.Error != nil:
		res.Code, res.Message = string(rec.Error.Code), rec.Error.Message
	}
	who := rec.Actor
	if who == "" {
		who = actor(ctx)
	}
	b, err := json.Marshal(rec.Request)
	if err != nil {
		return fmt.Errorf("audit action: %w", err)
	}
	_, err = a.Log.Append(ctx, audit.Entry{Session: id, Actor: who, Kind: audit.KindAction, Action: b, Result: &res, Detail: rec.Detail})
	return err
}

// RecordEgress satisfies egress.Recorder: one egress entry per connection
// a desktop asked the gateway for. It runs on the connection's goroutine,
// so a failing disk is logged by the audit log, not returned.
func (a Audit) RecordEgress(session string, r egress.Record) {
	e := audit.Egress{Method: r.Method, Host: r.Host, Port: r.Port, Addr: r.Addr, Decision: string(r.Decision), Reason: r.Reason,
		BytesUp: r.BytesUp, BytesDown: r.BytesDown, DurationMS: float64(r.Duration) / float64(time.Millisecond)}
	a.Log.Append(context.Background(), audit.Entry{Session: session, Actor: audit.ActorDesktop, Kind: audit.KindEgress, Egress: &e})
}

// RecordSession satisfies sessions.Auditor: a session entry for a
// lifecycle event ("created", "stopped", "started", "deleted",
// "restarted").
func (a Audit) RecordSession(ctx context.Context, id, event string) error {
	_, err := a.Log.Append(ctx, audit.Entry{Session: id, Actor: actor(ctx), Kind: audit.KindSession, Detail: map[string]any{"event": event}})
	return err
}

// RecordTaskStart writes a task "start" entry (actor task:<id>).
func (a Audit) RecordTaskStart(ctx context.Context, t tasks.Task) error {
	return a.task(ctx, t.SessionID, t.ID, map[string]any{"event": "start", "backend": t.Backend, "model": t.Model})
}

// RecordTaskEvent writes what a task's events add to its actions: a cost
// entry for each model call, and a task "end" entry for the final event.
func (a Audit) RecordTaskEvent(ctx context.Context, sessionID, taskID string, ev tasks.Event) error {
	switch ev.Type {
	case tasks.EventStep:
		if ev.Usage != nil {
			c := audit.Cost{USD: ev.StepUSD, Model: ev.Usage.Model, InputTokens: ev.Usage.InputTokens, OutputTokens: ev.Usage.OutputTokens}
			_, err := a.Log.Append(ctx, audit.Entry{Session: sessionID, Actor: audit.ActorTask + taskID, Kind: audit.KindCost, Cost: &c})
			return err
		}
	case tasks.EventEnd:
		return a.task(ctx, sessionID, taskID, map[string]any{"event": "end", "status": string(ev.Status), "total_usd": ev.TotalUSD})
	}
	return nil
}

func (a Audit) task(ctx context.Context, sessionID, taskID string, detail map[string]any) error {
	detail["task"] = taskID
	_, err := a.Log.Append(ctx, audit.Entry{Session: sessionID, Actor: audit.ActorTask + taskID, Kind: audit.KindTask, Detail: detail})
	return err
}

// RecordViewer writes a live view's opening or closing as a view entry. It
// runs on the view's goroutine, so a failing disk is logged by the audit
// log, not returned.
func (a Audit) RecordViewer(ev view.ViewerEvent) {
	detail := map[string]any{"event": "open", "mode": string(ev.Mode)}
	if !ev.Opened {
		detail["event"], detail["duration_ms"] = "close", ev.Duration.Milliseconds()
		if ev.Why != "" {
			detail["why"] = ev.Why
		}
	}
	a.Log.Append(context.Background(), audit.Entry{Session: ev.Session, Actor: "viewer:" + string(ev.Mode), Kind: audit.KindView, Detail: detail})
}

// Control returns the sessions' control leases; with a log, every change
// of holder is written to it.
func Control(log *audit.Log, idle time.Duration) *control.Leases {
	opts := control.Options{IdleTimeout: idle}
	if log != nil {
		opts.OnChange = Audit{log}.RecordControl
	}
	return control.New(opts)
}

// RecordControl writes a change of a session's control holder as a control
// entry: who made it, from whom to whom, why, and for a person's period
// that ended its length and count of input events (never the input). A
// hand-back message is kept as its length only: it may answer a question
// such as which password to use.
func (a Audit) RecordControl(c control.Change) {
	who := c.By
	switch {
	case who == "":
		who = audit.ActorFleet
	case c.Why == control.WhyTaskStart || c.Why == control.WhyTaskEnd || c.Why == control.WhyHelp:
		who = audit.ActorTask + who
	}
	detail := map[string]any{"event": c.Why, "from": holderDetail(c.From), "to": holderDetail(c.To)}
	if c.TaskState != "" {
		detail["task_state"] = string(c.TaskState)
	}
	switch {
	case c.Why == control.WhyHelp:
		detail["question"] = c.Message
	case c.Message != "":
		detail["message_bytes"] = len(c.Message)
	}
	if p := c.Period; p != nil {
		detail["period"] = map[string]any{"who": p.Who, "duration_ms": p.Duration.Milliseconds(), "input_events": p.InputEvents}
	}
	// Called on the changer's goroutine after the change: a failing disk
	// is logged by the audit log, not returned.
	a.Log.Append(context.Background(), audit.Entry{Session: c.Session, Actor: who, Kind: audit.KindControl, Detail: detail})
}

func holderDetail(h *control.Holder) any {
	if h == nil {
		return nil
	}
	return map[string]any{"kind": string(h.Kind), "who": h.Who}
}

// BudgetFiles keeps desktop.BudgetFile current in every running desktop.
type BudgetFiles struct {
	Budget   *budget.Budget
	Sessions *sessions.Manager
	Runtime  runtime.Runtime
	Logger   *slog.Logger
	// Changed, when signalled, makes Refresh write at once.
	Changed chan struct{}
}

// Write writes t into every running desktop's run dir.
func (f BudgetFiles) Write(ctx context.Context, t budget.Totals) {
	b, err := json.Marshal(t.ForDesktop(time.Now()))
	if err != nil {
		f.Logger.Error("budget file", "err", err)
		return
	}
	list, err := f.Sessions.List(ctx)
	if err != nil {
		f.Logger.Warn("budget file: list sessions", "err", err)
		return
	}
	for _, se := range list {
		switch se.State {
		case sessions.StateStarting, sessions.StateReady, sessions.StateDegraded:
		default:
			continue
		}
		if err := f.Runtime.WriteRunFile(ctx, se.ID, desktop.BudgetFile, b); err != nil {
			f.Logger.Warn("budget file", "session", se.ID, "err", err)
		}
	}
}

// Refresh writes the budget file now and then every interval, so a new
// desktop gets one and waybar's staleness mark stays honest, and at once
// on Changed, until ctx ends.
func (f BudgetFiles) Refresh(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if t, err := f.Budget.Today(ctx); err == nil {
			f.Write(ctx, t)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-f.Changed:
		}
	}
}
