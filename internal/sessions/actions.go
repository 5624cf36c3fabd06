package sessions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/store"
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
}

// ActionResult is the outcome of one action.
type ActionResult struct {
	Request  agentapi.Request
	Response agentapi.Response
	// Err is the agent's refusal, nil when the action ran.
	Err  *agentapi.Error
	Took time.Duration
}

// ActResult is the outcome of Act: a result per action run, in order, and
// the observation if asked for.
type ActResult struct {
	Results     []ActionResult
	Observation *agentapi.Image
}

// OK reports whether every action ran.
func (r ActResult) OK(sent int) bool {
	return len(r.Results) == sent && (sent == 0 || r.Results[sent-1].Err == nil)
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

// Act runs actions on a session's desktop, in order, with protocol v1
// semantics, stopping at the first the agent refuses. Every action is
// checked first (fields, limits, coordinates within the session's
// resolution): one bad action runs none. If obs is set, a screenshot taken
// after the actions settle comes back in the same answer, even when an
// action failed, so the caller sees where it stands.
func (m *Manager) Act(ctx context.Context, id string, reqs []agentapi.Request, obs *Observe) (ActResult, error) {
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
		if err := r.Validate(); err != nil {
			return ActResult{}, fmt.Errorf("%w: action %d: %v", ErrBadAction, i, err)
		}
		if err := r.CheckBounds(se.Resolution.Width, se.Resolution.Height); err != nil {
			return ActResult{}, fmt.Errorf("%w: action %d: %v", ErrBadAction, i, err)
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
	var res ActResult
	for _, r := range reqs {
		t0 := time.Now()
		resp, err := c.Do(ctx, r)
		ar := ActionResult{Request: r, Response: resp, Took: time.Since(t0)}
		var perr *agentapi.Error
		switch {
		case err == nil:
		case errors.As(err, &perr) && perr.Code == agentapi.CodeUnavailable && len(res.Results) == 0:
			return ActResult{}, fmt.Errorf("%w: %s: %v", ErrUnavailable, id, err)
		case errors.As(err, &perr):
			ar.Err = perr
		default:
			return res, fmt.Errorf("%s on %s: %w", r.Action, id, err)
		}
		m.audit(ctx, id, ar)
		res.Results = append(res.Results, ar)
		if ar.Err != nil {
			break
		}
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
		resp, err := c.Do(ctx, shot)
		if err != nil {
			return res, fmt.Errorf("%w: %s: observe: %v", ErrUnavailable, id, err)
		}
		res.Observation = resp.Image
	}
	return res, nil
}

func (m *Manager) audit(ctx context.Context, id string, ar ActionResult) {
	if m.opts.Auditor == nil {
		return
	}
	rec := ActionRecord{Request: ar.Request, OK: ar.Err == nil, Error: ar.Err, Took: ar.Took}
	if err := m.opts.Auditor.RecordAction(ctx, id, rec); err != nil {
		m.log.Error("audit action", "session", id, "verb", string(ar.Request.Action), "err", err)
	}
}

func screenshotRequest(o ScreenshotOptions) (agentapi.Request, error) {
	r := agentapi.Request{V: agentapi.Version, Action: agentapi.Screenshot, Format: o.Format, Scale: o.Scale, Quality: o.Quality}
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
	resp, err := m.agent(id).Do(ctx, r)
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
	return resp.Image, nil
}
