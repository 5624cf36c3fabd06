package apitype

import "time"

// Holder is who holds a session's control lease: a task (who is its id)
// or a person (who is the actor that took control), and since when.
type Holder struct {
	Kind  string    `json:"kind"`
	Who   string    `json:"who"`
	Since time.Time `json:"since"`
}

// HeaderLease names the caller's control lease on input actions while a
// person holds the session (POST /sessions/{id}/takeover returns it).
const HeaderLease = "X-Atelier-Lease"

// HeaderVia names the program a request comes through; ViaMCP (atelier
// mcp) has the fleet audit what the request does as actor mcp, as it does
// its own /mcp endpoint's. Other values are ignored.
const (
	HeaderVia = "X-Atelier-Via"
	ViaMCP    = "mcp"
)

// HeaderRequestID names a request: the client's, if short and safe, else
// one the fleet makes; every response carries it back.
const HeaderRequestID = "X-Request-Id"

// Handback is the body of POST /sessions/{id}/handback. Both fields are
// optional: the lease may come in the X-Atelier-Lease header instead, and
// none is needed to answer a task that asked for help.
type Handback struct {
	LeaseID string `json:"lease_id,omitempty"`
	Message string `json:"message,omitempty"`
}

// ControlState is a session's control: GET /sessions/{id}/control, the
// answer of a hand-back, and the live view's control route.
type ControlState struct {
	Session string `json:"session_id"`
	// Holder is null when nobody holds the lease.
	Holder *Holder `json:"holder"`
	// Task is the session's task, if any, and where it stands (running,
	// paused_for_human or needs_help).
	Task      string `json:"task_id,omitempty"`
	TaskState string `json:"task_state,omitempty"`
	// Question is what the task asked a person, while it needs help.
	Question string `json:"question,omitempty"`
	// IdleSeconds is how long a person's lease lasts without input.
	IdleSeconds float64 `json:"idle_timeout_seconds"`
}

// Lease is a person's hold on a session: the answer of a takeover. Its ID
// goes with input actions (X-Atelier-Lease) and the hand-back.
type Lease struct {
	ID      string `json:"lease_id"`
	Session string `json:"session_id"`
	Holder  Holder `json:"holder"`
	// PausedTask is the task the takeover paused, if any.
	PausedTask  string  `json:"paused_task_id,omitempty"`
	IdleSeconds float64 `json:"idle_timeout_seconds"`
}
