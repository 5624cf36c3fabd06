package sessionstest

import (
	"context"
	"errors"

	"atelier/internal/agentapi"
	"atelier/internal/sessions"
)

// Act runs reqs on a real agent in order, stopping at the first the agent
// refuses, with the results sessions.Manager.Act gives in a fleet without
// a control lease or an audit log: for tests of callers of the pipeline
// (the task loop) that drive a desktop without a fleet. Control and audit
// are the fleet suites' to test (internal/fleettest).
func Act(ctx context.Context, c *agentapi.Client, reqs []agentapi.Request) sessions.ActResult {
	var res sessions.ActResult
	var stop error
	for _, r := range reqs {
		ar := sessions.ActionResult{Request: r, NotRun: stop}
		if stop == nil {
			var err error
			if ar.Response, err = c.Do(ctx, r); err != nil {
				pe, ok := errors.AsType[*agentapi.Error](err)
				if !ok {
					pe = &agentapi.Error{Code: agentapi.CodeUnavailable, Message: err.Error()}
				}
				ar.Err, stop = pe, sessions.ErrEarlierFailed
			}
		}
		res.Results = append(res.Results, ar)
	}
	return res
}
