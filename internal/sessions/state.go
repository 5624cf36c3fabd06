package sessions

import (
	"fmt"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/runtime"
	"atelier/internal/store"
)

// State is where a session is in its life.
type State string

// The states of a session. A session is creating while its desktop is
// prepared, starting until the agent reports it ready, ready while every
// component runs, degraded while one is restarted after a crash (or the
// agent stops answering), stopped when asked to be, and failed when the
// runtime could not start it.
const (
	StateCreating State = "creating"
	StateStarting State = "starting"
	StateReady    State = "ready"
	StateDegraded State = "degraded"
	StateStopped  State = "stopped"
	StateFailed   State = "failed"
)

// observation is everything the state of one session is derived from.
type observation struct {
	desired  string
	creating bool
	// lastErr is the last create or start failure, cleared by a success.
	lastErr error
	// inst is the runtime's report; nil when the runtime has no desktop.
	inst *runtime.Instance
	// status is the agent's answer; statusErr why there is none.
	status    *agentapi.Status
	statusErr error
	now       time.Time
	// grace is how long a started desktop may take to become ready before
	// a silent agent counts as degraded rather than starting.
	grace time.Duration
}

// derive returns the state an observation shows, and why when it is not
// plainly ready or stopped.
func derive(o observation) (State, string) {
	switch {
	case o.creating:
		return StateCreating, ""
	case o.desired == store.DesiredStopped:
		if o.inst != nil && o.inst.Running {
			return StateStopped, "stopping"
		}
		return StateStopped, ""
	case o.lastErr != nil:
		return StateFailed, o.lastErr.Error()
	case o.inst == nil:
		return StateFailed, "the runtime has no desktop for this session"
	case !o.inst.Running:
		return StateStarting, "the desktop is not running; starting it"
	case o.inst.Degraded:
		return StateDegraded, "a desktop component is being restarted"
	}
	young := o.now.Sub(o.inst.StartedAt) < o.grace
	if o.statusErr != nil || o.status == nil {
		if young {
			return StateStarting, ""
		}
		return StateDegraded, fmt.Sprintf("the agent does not answer: %v", o.statusErr)
	}
	for _, c := range o.status.Components {
		if c.State == agentapi.StateRestarting || (c.State == agentapi.StateStopped && !young) {
			reason := c.Name + " is " + c.State
			if c.LastError != "" {
				reason += ": " + c.LastError
			}
			return StateDegraded, reason
		}
	}
	if o.status.Ready {
		return StateReady, ""
	}
	if young {
		return StateStarting, ""
	}
	return StateDegraded, "the desktop has not reported ready"
}
