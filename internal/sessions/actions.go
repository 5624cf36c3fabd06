package sessions

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"atelier/internal/agentapi"
	"atelier/internal/store"
	"atelier/internal/tracing"
)

// MaxActions bounds the actions of one Act call.
const MaxActions = 100

// MaxSettle bounds how long an observation may wait before its screenshot.
const MaxSettle = 10 * time.Second

// Observe asks Act for a screenshot after the actions.
type Observe struct {
	// Settle is how long to let the desktop react first; 0 takes the
	// manager's default.
	Settle time.Duration
	// Shot shapes the screenshot: format, scale, quality.
	Shot ScreenshotOptions
}

// ScreenshotOptions shape a screenshot. Zero values: PNG, scale 1.
type ScreenshotOptions struct {
	Format  string
	Scale   float64
	Quality int
	Region  *agentapi.Region // nil: the whole desktop
}

// ActionResult is the outcome of one action.
type ActionResult struct {
	Request  agentapi.Request
	Response agentapi.Response
	// Err is the agent's refusal (or, with code unavailable, an
	// unreachable desktop); nil when the action ran or did not run.
	Err  *agentapi.Error
	Took time.Duration
	// NotRun says why the action did not run: ErrEarlierFailed, or the
	// control lease's refusal. Nil when it ran.
	NotRun error
}

// ActResult is the outcome of Act: a result per action sent, in order,
// and the observation if asked for.
type ActResult struct {
	Results     []ActionResult
	Observation *agentapi.Image
}

// OK reports whether every action ran and succeeded.
func (r ActResult) OK() bool {
	for _, ar := range r.Results {
		if ar.Err != nil || ar.NotRun != nil {
			return false
		}
	}
	return len(r.Results) > 0
}

// running returns a running session's stored row.
func (m *Manager) running(ctx context.Context, id string) (store.Session, error) {
	se, err := m.stored(ctx, id)
	if err != nil {
		return se, err
	}
	if se.Desired != store.DesiredRunning {
		return se, fmt.Errorf("%w: %s: start it first", ErrNotRunning, id)
	}
	return se, nil
}

// Act is the one way input reaches a desktop, for every caller (the API,
// the task loop, later MCP): it checks every action first (fields,
// limits, coordinates within the session's resolution: one bad action
// runs none), then, in order, passes each input action through the
// control lease (who.Claim), runs it on the agent and records it in the
// audit log as who.Name, before the lease may change hands. It stops at
// the first action that fails or is refused; the rest are recorded as not
// run. Every action sent has a result.
//
// The error is for the call as a whole: a bad action, a stopped session,
// a desktop that did not answer the first action, or a lease that refused
// the first. If obs is set and the call did not fail, a screenshot taken
// after the actions settle comes back in the same answer, even when an
// action failed, so the caller sees where it stands.
func (m *Manager) Act(ctx context.Context, id string, who Actor, reqs []agentapi.Request, obs *Observe) (res ActResult, err error) {
	ctx, span := tracing.Start(ctx, "sessions.Act", attribute.String("atelier.session", id),
		attribute.String("atelier.actor", who.Name), attribute.Int("atelier.actions", len(reqs)))
	defer func() { tracing.End(span, err) }()
	se, err := m.running(ctx, id)
	if err != nil {
		return ActResult{}, err
	}
	if len(reqs) == 0 || len(reqs) > MaxActions {
		return ActResult{}, fmt.Errorf("%w: send from 1 to %d actions, not %d", ErrBadAction, MaxActions, len(reqs))
	}
	for i := range reqs {
		r := &reqs[i]
		if r.V == 0 {
			r.V = agentapi.Version
		}
		// The protocol's own code (bad_coordinate, missing_field, …)
		// stays in the chain for the caller.
		if err := r.Validate(); err != nil {
			return ActResult{}, fmt.Errorf("%w: action %d: %w", ErrBadAction, i, err)
		}
		if err := r.CheckBounds(se.Resolution.Width, se.Resolution.Height); err != nil {
			return ActResult{}, fmt.Errorf("%w: action %d: %w", ErrBadAction, i, err)
		}
	}
	var shot agentapi.Request
	if obs != nil {
		if obs.Settle < 0 || obs.Settle > MaxSettle {
			return ActResult{}, fmt.Errorf("%w: settle %v: want from 0 to %v", ErrBadAction, obs.Settle, MaxSettle)
		}
		if shot, err = screenshotRequest(obs.Shot); err != nil {
			return ActResult{}, err
		}
	}

	c := m.agent(id)
	res = ActResult{Results: make([]ActionResult, 0, len(reqs))}
	var stop, fatal error // why the rest do not run; a failure of the call
	for _, r := range reqs {
		ar := ActionResult{Request: r, NotRun: stop}
		if stop == nil {
			ar, fatal = m.actOne(ctx, id, c, who, r)
		} else {
			m.audit(ctx, id, who, ar)
		}
		res.Results = append(res.Results, ar)
		switch {
		case ar.NotRun != nil:
			stop = ar.NotRun
		case ar.Err != nil:
			stop = ErrEarlierFailed
		}
	}
	first := res.Results[0]
	switch {
	case fatal != nil:
		return res, fatal
	case first.Err != nil && first.Err.Code == agentapi.CodeUnavailable:
		return res, fmt.Errorf("%w: %s: %v", ErrUnavailable, id, first.Err)
	case first.NotRun != nil:
		return res, first.NotRun
	}
	if obs != nil {
		settle := obs.Settle
		if settle == 0 {
			settle = m.opts.Settle
		}
		// Settling is a fixed delay by design: the desktop gives no event
		// for "the screen stopped changing".
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(settle):
		}
		t0 := time.Now()
		resp, err := roundTrip(ctx, c, shot)
		if err != nil {
			return res, fmt.Errorf("%w: %s: observe: %v", ErrUnavailable, id, err)
		}
		m.observeShot(resp.Image, time.Since(t0))
		res.Observation = resp.Image
	}
	return res, nil
}

// actOne runs one action: the lease (for input), the agent, the audit
// entry, in that order; the lease is let go only after the entry, so the
// log orders the action before any takeover that follows. The error is a
// failure other than the agent's answer (the connection, ctx).
func (m *Manager) actOne(ctx context.Context, id string, c *agentapi.Client, who Actor, r agentapi.Request) (ActionResult, error) {
	ar := ActionResult{Request: r}
	if r.Action.IsInput() {
		done, err := m.AdmitInput(id, who.Claim)
		if err != nil {
			ar.NotRun = err
			m.audit(ctx, id, who, ar)
			return ar, nil
		}
		defer done()
	}
	t0 := time.Now()
	resp, err := roundTrip(ctx, c, r)
	ar.Response, ar.Took = resp, time.Since(t0)
	var fatal error
	if err != nil {
		perr, ok := errors.AsType[*agentapi.Error](err)
		if !ok {
			fatal = fmt.Errorf("%s on %s: %w", r.Action, id, err)
			perr = &agentapi.Error{Code: agentapi.CodeUnavailable, Message: err.Error()}
		}
		ar.Err = perr
	}
	m.audit(ctx, id, who, ar)
	return ar, fatal
}

// audit records one action's outcome, and tells the observer. The action
// has happened (or been refused): a cancelled ctx does not keep it out of
// the log.
func (m *Manager) audit(ctx context.Context, id string, who Actor, ar ActionResult) {
	if m.opts.Observer != nil {
		outcome := OutcomeOK
		switch {
		case ar.NotRun != nil:
			outcome = OutcomeNotRun
		case ar.Err != nil:
			outcome = string(ar.Err.Code)
		}
		m.opts.Observer.ObserveAction(string(ar.Request.Action), outcome, ar.Took)
		m.observeShot(ar.Response.Image, ar.Took)
	}
	if m.opts.Auditor == nil {
		return
	}
	rec := ActionRecord{Actor: who.Name, Request: ar.Request, OK: ar.Err == nil && ar.NotRun == nil, Error: ar.Err, Took: ar.Took}
	redactClipboard(&rec, ar.Response)
	if ar.NotRun != nil {
		rec.NotRun = ar.NotRun.Error()
		if !errors.Is(ar.NotRun, ErrEarlierFailed) {
			rec.NotRun = "not run: " + rec.NotRun
		}
	}
	if err := m.opts.Auditor.RecordAction(context.WithoutCancel(ctx), id, rec); err != nil {
		m.log.ErrorContext(ctx, "audit action", "session", id, "verb", string(ar.Request.Action), "err", err)
	}
}

// redactClipboard keeps a clipboard's content out of the audit: its length
// and SHA-256 stand in for it, of what was set or read.
func redactClipboard(rec *ActionRecord, resp agentapi.Response) {
	var content []byte
	switch rec.Request.Action {
	case agentapi.ClipboardSet:
		content, _ = rec.Request.ClipboardBytes()
		rec.Request.Data = ""
	case agentapi.ClipboardGet:
		if resp.Clipboard == nil {
			return
		}
		content = []byte(resp.Clipboard.Data)
		if resp.Clipboard.Mime == agentapi.MimePNG {
			content, _ = base64.StdEncoding.DecodeString(resp.Clipboard.Data)
		}
	default:
		return
	}
	sum := sha256.Sum256(content)
	rec.Detail = map[string]any{"bytes": len(content), "sha256": hex.EncodeToString(sum[:])}
}

func screenshotRequest(o ScreenshotOptions) (agentapi.Request, error) {
	r := agentapi.Request{V: agentapi.Version, Action: agentapi.Screenshot, Format: o.Format, Scale: o.Scale, Quality: o.Quality, Region: o.Region}
	if r.Scale == 1 {
		r.Scale = 0 // the protocol's default; saves a field on the wire
	}
	if err := r.Validate(); err != nil {
		return r, fmt.Errorf("%w: screenshot: %v", ErrBadInput, err)
	}
	return r, nil
}

// Screenshot returns a screenshot of a running session's desktop.
func (m *Manager) Screenshot(ctx context.Context, id string, o ScreenshotOptions) (*agentapi.Image, error) {
	if _, err := m.running(ctx, id); err != nil {
		return nil, err
	}
	r, err := screenshotRequest(o)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	resp, err := roundTrip(ctx, m.agent(id), r)
	if err != nil {
		var perr *agentapi.Error
		if errors.As(err, &perr) && perr.Code != agentapi.CodeUnavailable && perr.Code != agentapi.CodeTimeout {
			return nil, fmt.Errorf("screenshot of %s: %w", id, err)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, id, err)
	}
	if resp.Image == nil {
		return nil, fmt.Errorf("screenshot of %s: the agent sent no image", id)
	}
	m.observeShot(resp.Image, time.Since(t0))
	return resp.Image, nil
}

// roundTrip sends r to a desktop's agent in a span of its own: the agent
// round trip of the input pipeline's traces.
func roundTrip(ctx context.Context, c *agentapi.Client, r agentapi.Request) (agentapi.Response, error) {
	_, span := tracing.Start(ctx, "agent "+string(r.Action), attribute.String("atelier.verb", string(r.Action)))
	resp, err := c.Do(ctx, r)
	tracing.End(span, err)
	return resp, err
}

// observeShot tells the observer of a screenshot; im may be nil (an
// action that took none).
func (m *Manager) observeShot(im *agentapi.Image, took time.Duration) {
	if m.opts.Observer != nil && im != nil {
		m.opts.Observer.ObserveScreenshot(im.Format, len(im.Data), took)
	}
}
