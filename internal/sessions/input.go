package sessions

import (
	"context"

	"atelier/internal/control"
)

// Gate admits input to a session's desktop: the control lease.
// *control.Leases satisfies it.
type Gate interface {
	// Act admits one input for claim, or refuses it; done is called once
	// the input has been delivered.
	Act(session string, claim control.Claim) (done func(), err error)
}

// Actor is who sends actions through Act: the audit log's actor and the
// claim the control lease judges.
type Actor struct {
	// Name is the audit actor ("token:api", "task:<id>", "mcp"); empty
	// takes the request's (audit.WithActor), else the fleet's.
	Name  string
	Claim control.Claim
}

// Admission is the input pipeline's lease step, on its own for paths
// whose input is not a protocol-v1 action (the live view's RFB events).
// The zero value admits everything: a fleet without control leases.
type Admission struct{ Gate Gate }

// AdmitInput admits one input event on session for claim; done must be
// called once it has been delivered.
func (a Admission) AdmitInput(session string, claim control.Claim) (done func(), err error) {
	if a.Gate == nil {
		return func() {}, nil
	}
	return a.Gate.Act(session, claim)
}

// AdmitInput is Admission.AdmitInput over the manager's Options.Control:
// the same step Act takes for each input action.
func (m *Manager) AdmitInput(session string, claim control.Claim) (done func(), err error) {
	return Admission{Gate: m.opts.Control}.AdmitInput(session, claim)
}

// Lifecycle events of a session, as the audit log keeps them.
const (
	EventCreated   = "created"
	EventStarted   = "started"
	EventStopped   = "stopped"
	EventDeleted   = "deleted"
	EventRestarted = "restarted" // by the fleet: a desktop that should run and did not
)

// recordLifecycle writes a lifecycle event of session id and tells the
// watchers; the actor is ctx's (the request's), else the fleet. A failure
// to write is logged: the event has happened.
func (m *Manager) recordLifecycle(ctx context.Context, id, event string) {
	// Told after the audit has it, so a watcher that reads it finds it.
	defer m.watchers.publish(Change{Session: id, Event: event})
	if m.opts.Auditor == nil {
		return
	}
	if err := m.opts.Auditor.RecordSession(context.WithoutCancel(ctx), id, event); err != nil {
		m.log.ErrorContext(ctx, "audit session", "session", id, "event", event, "err", err)
	}
}
