package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"atelier/internal/agentapi"
	"atelier/internal/audit"
	"atelier/internal/budget"
	"atelier/internal/control"
	"atelier/internal/model"
	"atelier/internal/sessions"
	"atelier/internal/tracing"
)

// outcome is how a task ended.
type outcome struct {
	status Status
	answer string
	err    string
}

// loop runs one task to its end and records the end. The end is stored
// and the session released before subscribers hear of it, so a client that
// sees the end can submit the next task at once.
func (m *Manager) loop(ctx context.Context, r *run, conv model.Conversation, release func()) {
	out := m.steps(ctx, r, conv)
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("atelier.status", string(out.status)))
	if cause := context.Cause(ctx); cause != nil && out.status == StatusFailed {
		// Whatever failed last, a cancel or shutdown is why.
		out = outcome{status: StatusInterrupted, err: "the fleet stopped while the task ran"}
		if errors.Is(cause, errCancelled) {
			out = outcome{status: StatusCancelled}
		}
	}
	now := m.opts.Now().UTC()
	final := r.snapshot()
	final.Status, final.Answer, final.Error, final.EndedAt = out.status, out.answer, out.err, now
	ev := Event{ID: len(final.Events) + 1, Type: EventEnd, Time: now, Status: out.status, Answer: out.answer, Error: out.err, TotalUSD: final.CostUSD}
	// The end is recorded even when ctx is cancelled.
	wctx := context.WithoutCancel(ctx)
	m.persist(wctx, final, ev)
	if err := m.opts.Store.FinishTask(wctx, toRow(final)); err != nil {
		m.log.ErrorContext(ctx, "record task end", "task", final.ID, "err", err)
	}
	release()
	r.add(ev, func(t *Task) {
		t.Status, t.Answer, t.Error, t.EndedAt = final.Status, final.Answer, final.Error, final.EndedAt
	})
	m.log.InfoContext(ctx, "task ended", "task", final.ID, "session", final.SessionID, "status", final.Status,
		"steps", final.Steps, "usd", final.CostUSD, "err", final.Error)
}

// persist stores ev with t's running totals and hands it to the recorder.
func (m *Manager) persist(ctx context.Context, t Task, ev Event) {
	raw, err := json.Marshal(ev)
	if err == nil {
		err = m.opts.Store.AddTaskStep(ctx, t.ID, ev.ID, raw, t.Steps, t.CostUSD)
	}
	if err != nil {
		m.log.ErrorContext(ctx, "record task event", "task", t.ID, "event", ev.ID, "err", err)
	}
	if m.opts.Recorder != nil {
		if err := m.opts.Recorder.RecordTaskEvent(ctx, t.SessionID, t.ID, ev); err != nil {
			m.log.ErrorContext(ctx, "audit task event", "task", t.ID, "event", ev.ID, "err", err)
		}
	}
}

func failed(format string, args ...any) outcome {
	return outcome{status: StatusFailed, err: fmt.Sprintf(format, args...)}
}

// steps is the loop proper: screenshot → model → actions → settle, until
// an outcome.
func (m *Manager) steps(ctx context.Context, r *run, conv model.Conversation) outcome {
	t := r.snapshot()
	agent, err := m.opts.Desktops.Agent(ctx, t.SessionID)
	if err != nil {
		return failed("desktop: %v", err)
	}
	var (
		results  []model.Result
		feedback string // a step error to feed back
		fedBack  bool   // the previous step already fed one back
		total    float64
	)
	// Each step is a span, from its wait for the turn to its actions.
	var span trace.Span
	defer func() {
		if span != nil {
			span.End()
		}
	}()
	loopCtx := ctx
	for step := 1; ; step++ {
		if span != nil {
			span.End()
		}
		ctx, span = tracing.Start(loopCtx, "task.step", attribute.Int("atelier.step", step))
		if step > t.MaxSteps {
			return outcome{status: StatusMaxSteps, err: fmt.Sprintf("stopped after %d steps", t.MaxSteps)}
		}
		// While a person has the desktop, or the model waits for an
		// answer, the task waits here; what happened meanwhile goes to the
		// model with a fresh screenshot.
		resumed, err := m.opts.Control.WaitTurn(ctx, t.SessionID, t.ID)
		if err != nil || ctx.Err() != nil {
			return failed("stopped")
		}
		// The output's size, at each step: the desktop may have been
		// resized since the last (PUT /sessions/{id}/resolution).
		st, err := agent.Do(ctx, agentapi.Request{Action: agentapi.StatusVerb})
		if err != nil || st.Status == nil {
			return failed("desktop: %v", err)
		}
		outW, outH := st.Status.Width, st.Status.Height
		shot, err := m.screenshot(ctx, agent, conv.ScreenshotScale(outW, outH), outW, outH)
		if err != nil {
			return failed("desktop: %v", err)
		}
		shotURL := m.saveScreenshot(t.ID, step, shot)
		turn := model.Turn{Goal: t.Goal, Step: step, Screenshot: shot, Results: results, Error: feedback,
			Notes: handbackNotes(resumed), Answered: resumed.Answered, Answer: resumed.Answer}

		estUsage := conv.Estimate(turn)
		estimate, _ := m.opts.Prices.Cost(estUsage)
		if t.MaxUSD > 0 && total+estimate > t.MaxUSD {
			return outcome{status: StatusBudgetExhausted, err: fmt.Sprintf("the next step could cost %.4f USD, over the task's max_usd %.4f", estimate, t.MaxUSD)}
		}
		res, err := m.opts.Budget.Reserve(ctx, t.ID, t.SessionID, estimate)
		if errors.Is(err, budget.ErrBudgetExhausted) {
			return outcome{status: StatusBudgetExhausted, err: "the fleet's daily budget is exhausted"}
		}
		if err != nil {
			return failed("budget: %v", err)
		}

		mctx, cancel := context.WithTimeout(ctx, m.opts.ModelTimeout)
		mctx, mspan := tracing.Start(mctx, "model.call", attribute.String("atelier.backend", t.Backend), attribute.String("atelier.model", conv.Model()))
		t0 := time.Now()
		reply, err := conv.Next(mctx, turn)
		timedOut := errors.Is(mctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		mspan.SetAttributes(attribute.Int64("atelier.tokens.input", reply.Usage.InputTokens), attribute.Int64("atelier.tokens.output", reply.Usage.OutputTokens))
		tracing.End(mspan, err)
		cancel()
		m.observeModelCall(t, conv.Model(), err, timedOut, time.Since(t0))
		wctx := context.WithoutCancel(ctx)
		if err != nil && ctx.Err() != nil {
			// Cancelled (or the fleet stopping) mid-call: the model may
			// have done the work, but its usage will never be known, so
			// the call is charged what was reserved for it.
			total += res.USD
			if serr := m.opts.Budget.Settle(wctx, res, step, res.USD, estUsage, budget.BasisReservation); serr != nil {
				m.log.ErrorContext(ctx, "settle budget", "task", t.ID, "err", serr)
			}
			m.emitStep(ctx, r, Event{Type: EventStep, Step: step, Screenshot: shotURL, StepUSD: res.USD, TotalUSD: total, Basis: budget.BasisReservation,
				Usage: &estUsage, Error: "the model call was abandoned when the task stopped; charged its reservation"}, step, total)
			return failed("stopped")
		}
		usage := reply.Usage
		if oe, ok := errors.AsType[*model.OutputError](err); ok {
			usage = oe.Usage
		}
		if usage.Model == "" {
			usage.Model = conv.Model()
		}
		cost, priced := m.opts.Prices.Cost(usage)
		basis := budget.BasisUsage
		if !priced {
			basis = budget.BasisUnpriced
		}
		total += cost
		if err == nil || errors.Is(err, model.ErrOutput) {
			if serr := m.opts.Budget.Settle(wctx, res, step, cost, usage, basis); serr != nil {
				m.log.ErrorContext(ctx, "settle budget", "task", t.ID, "err", serr)
			}
		} else if rerr := m.opts.Budget.Release(wctx, res); rerr != nil {
			m.log.ErrorContext(ctx, "release budget", "task", t.ID, "err", rerr)
		}

		ev := Event{Type: EventStep, Step: step, Screenshot: shotURL, StepUSD: cost, TotalUSD: total}
		if basis != budget.BasisUsage {
			ev.Basis = basis
		}
		if usage.InputTokens+usage.OutputTokens > 0 {
			ev.Usage = &usage
		}
		switch {
		case timedOut:
			return failed("model: no reply within %v", m.opts.ModelTimeout)
		case errors.Is(err, model.ErrOutput):
			ev.Error = err.Error()
		case err != nil:
			return failed("model: %v", err)
		default:
			ev.Thought, ev.Note, ev.Actions = reply.Thought, reply.Note, reply.Actions
			if verr := checkActions(reply.Actions, outW, outH); verr != nil {
				ev.Error = verr.Error()
			}
		}
		results, feedback = nil, ""
		if ev.Error != "" {
			m.emitStep(ctx, r, ev, step, total)
			if fedBack {
				return failed("the model's output was unusable twice in a row: %s", ev.Error)
			}
			feedback, fedBack = ev.Error, true
			continue
		}
		fedBack = false

		if reply.Help != "" && !reply.Done {
			m.emitStep(ctx, r, ev, step, total)
			if err := m.opts.Control.AskHelp(t.SessionID, t.ID, reply.Help); err != nil {
				return failed("ask for help: %v", err)
			}
			continue
		}

		var actErr error
		results, ev.Results, actErr = m.act(ctx, t, reply.Actions)
		m.emitStep(ctx, r, ev, step, total)
		if actErr != nil {
			if ctx.Err() != nil {
				return failed("stopped")
			}
			return failed("desktop: %v", actErr)
		}
		if reply.Done {
			if reply.Failed {
				return outcome{status: StatusFailed, answer: reply.Answer, err: "the model gave up: " + reply.Answer}
			}
			return outcome{status: StatusDone, answer: reply.Answer}
		}
		if len(reply.Actions) > 0 {
			m.settle(ctx, agent)
		}
	}
}

// observeModelCall tells the observer of one model call of task t.
func (m *Manager) observeModelCall(t Task, modelName string, err error, timedOut bool, took time.Duration) {
	if m.opts.Observer == nil {
		return
	}
	outcome := "ok"
	switch {
	case timedOut:
		outcome = "timeout"
	case err != nil:
		outcome = "error"
	}
	m.opts.Observer.ObserveModelCall(t.Backend, modelName, outcome, took)
}

func (m *Manager) emitStep(ctx context.Context, r *run, ev Event, step int, total float64) {
	ev.Time = m.opts.Now().UTC()
	ev = r.add(ev, func(t *Task) { t.Steps, t.CostUSD = step, total })
	m.persist(context.WithoutCancel(ctx), r.snapshot(), ev)
}

// checkActions validates every action before any runs, so a reply is
// carried out whole or not at all.
func checkActions(acts []agentapi.Request, w, h int) error {
	if len(acts) > sessions.MaxActions {
		return fmt.Errorf("%d actions in one step; send at most %d", len(acts), sessions.MaxActions)
	}
	for i := range acts {
		a := &acts[i]
		a.V = agentapi.Version
		if err := a.Validate(); err != nil {
			return fmt.Errorf("action %d (%s): %v", i+1, a.Action, err)
		}
		if err := a.CheckBounds(w, h); err != nil {
			return fmt.Errorf("action %d (%s): %v", i+1, a.Action, err)
		}
	}
	return nil
}

// act sends acts through the sessions' input pipeline as the task and
// returns their results for the model and for the step event. An action
// the agent refuses is reported in its result and the rest are skipped,
// as they are once a person takes control (the model may do those again);
// an unreachable desktop is an error.
func (m *Manager) act(ctx context.Context, t Task, acts []agentapi.Request) ([]model.Result, []ActionResult, error) {
	if len(acts) == 0 {
		return nil, nil, nil // a step that only answers or thinks
	}
	who := sessions.Actor{Name: audit.ActorTask + t.ID, Claim: control.Claim{Task: t.ID}}
	res, err := m.opts.Desktops.Act(ctx, t.SessionID, who, acts)
	if len(res.Results) != len(acts) {
		return nil, nil, err // nothing was sent: the session is gone, or the call refused
	}
	results := make([]model.Result, len(acts))
	outs := make([]ActionResult, len(acts))
	var fatal error
	for i, ar := range res.Results {
		switch {
		case errors.Is(ar.NotRun, sessions.ErrEarlierFailed):
			results[i].Error, outs[i] = ar.NotRun.Error(), ActionResult{Error: ar.NotRun.Error(), Skipped: true}
		case ar.NotRun != nil:
			const taken = "not run: a person took control of the desktop"
			results[i].Error, outs[i] = taken, ActionResult{Error: taken, Skipped: true}
			results[i].Interrupted = i == 0 || errors.Is(ar.NotRun, control.ErrHeld) || res.Results[i-1].NotRun == nil
		case ar.Err != nil:
			results[i].Error, outs[i] = ar.Err.Error(), ActionResult{Error: ar.Err.Error()}
			if ar.Err.Code == agentapi.CodeUnavailable || ar.Err.Code == agentapi.CodeTimeout {
				fatal = ar.Err
			}
		default:
			outs[i].OK = true
		}
		if ar.NotRun == nil && ar.Request.Action.IsPointer() { // a key press says nothing of the pointer
			results[i].Cursor = ar.Response.Cursor
		}
	}
	if fatal == nil && err != nil && res.Results[0].NotRun == nil {
		fatal = err
	}
	return results, outs, fatal
}

// legacyPause is the fixed pause after a step's actions for a desktop whose
// agent predates the settle verb (a re-adopted one).
const legacyPause = 500 * time.Millisecond

// settle lets the desktop react to a step's actions before the next
// screenshot: it returns once the screen has shown no change for the
// quiet period, or at the ceiling. A failure here is not the step's: the
// next screenshot reports an unreachable desktop.
func (m *Manager) settle(ctx context.Context, agent *agentapi.Client) {
	_, err := agent.Do(ctx, agentapi.Request{Action: agentapi.Settle, Quiet: m.opts.SettleQuiet.Seconds(), Duration: m.opts.SettleMax.Seconds()})
	// The agent client reports an agent without the verb as outdated.
	if pe, ok := errors.AsType[*agentapi.Error](err); ok && pe.Code == agentapi.CodeAgentOutdated {
		select {
		case <-time.After(min(legacyPause, m.opts.SettleMax)):
		case <-ctx.Done():
		}
	} else if err != nil {
		m.log.DebugContext(ctx, "settle", "err", err)
	}
}

// screenshot takes the turn's screenshot at scale.
func (m *Manager) screenshot(ctx context.Context, agent *agentapi.Client, scale float64, outW, outH int) (model.Screenshot, error) {
	req := agentapi.Request{Action: agentapi.Screenshot}
	if scale > 0 && scale < 1 {
		req.Scale = scale
	}
	t0 := time.Now()
	resp, err := agent.Do(ctx, req)
	if err != nil {
		return model.Screenshot{}, err
	}
	im := resp.Image
	if im == nil || len(im.Data) == 0 {
		return model.Screenshot{}, errors.New("screenshot: the agent sent no image")
	}
	if m.opts.Observer != nil {
		m.opts.Observer.ObserveScreenshot(im.Format, len(im.Data), time.Since(t0))
	}
	return model.Screenshot{Format: im.Format, Data: im.Data, Width: im.Width, Height: im.Height, OutputWidth: outW, OutputHeight: outH}, nil
}

// saveScreenshot keeps a step's screenshot on disk and returns its URL
// path; a write error costs the replay, not the task.
func (m *Manager) saveScreenshot(taskID string, step int, s model.Screenshot) string {
	dir := filepath.Join(m.opts.DataDir, "tasks", taskID)
	ext := "png"
	if s.Format == agentapi.FormatJPEG {
		ext = "jpg"
	}
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, strconv.Itoa(step)+"."+ext), s.Data, 0o600)
	}
	if err != nil {
		m.log.Warn("keep step screenshot", "task", taskID, "step", step, "err", err)
		return ""
	}
	return fmt.Sprintf("/tasks/%s/steps/%d/screenshot", taskID, step)
}

// controlChanged turns a change of the session's control into the task's
// status and an event: paused when a person takes over, needs_help when
// the model asks, resumed when control comes back to it.
func (m *Manager) controlChanged(r *run, c control.Change) {
	// The lease's task states are named as the task statuses are.
	ev := Event{Time: c.Time.UTC(), Holder: c.To, Reason: c.Why, Status: Status(c.TaskState)}
	switch {
	case c.Why == control.WhyTakeover:
		ev.Type = EventPaused
	case c.Why == control.WhyHelp:
		ev.Type, ev.Question = EventNeedsHelp, c.Message
	case c.TaskState == control.TaskNeedsHelp:
		// Control came back, but the model still waits for an answer.
		ev.Type = EventNeedsHelp
	case c.TaskState == control.TaskRunning:
		ev.Type, ev.Message = EventResumed, c.Message
	default:
		return
	}
	if ev = r.add(ev, func(t *Task) { t.Status = ev.Status }); ev.ID != 0 {
		m.persist(context.Background(), r.snapshot(), ev)
	}
}

// handbackNotes tells the model what people did while it waited, so it
// reads the screen afresh instead of trusting what it saw before.
func handbackNotes(r control.Resumed) []string {
	var notes []string
	for i, p := range r.Periods {
		if r.Answered && i == len(r.Periods)-1 {
			p.Message = "" // the hand-back that answered the model's question: the model gets it as the answer
		}
		n := fmt.Sprintf("A person took control of the desktop for %s (%d input events) and ", p.Duration.Round(time.Second), p.InputEvents)
		if p.Idle {
			n += "left it idle, so control returned to you."
		} else {
			n += "handed it back."
		}
		if p.Message != "" {
			n += fmt.Sprintf(" Their message: %q.", p.Message)
		}
		notes = append(notes, n+" The screen may have changed: read this screenshot afresh instead of relying on earlier ones.")
	}
	return notes
}
