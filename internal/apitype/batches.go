package apitype

import "time"

// Dispatch is the body of POST /tasks: one goal (the task fields, as for
// one session) for a set of sessions, named by id or by label.
type Dispatch struct {
	TaskSpec
	SessionIDs []string `json:"session_ids,omitempty"`
	Label      string   `json:"label,omitempty"`
}

// Member outcomes of a dispatch.
const (
	OutcomeStarted  = "started"   // its task runs
	OutcomeBusy     = "busy"      // it already runs a task
	OutcomeHeld     = "held"      // a person holds its control
	OutcomeStopped  = "stopped"   // its desktop does not run
	OutcomeNotFound = "not_found" // no such session
	OutcomeRefused  = "refused"   // another refusal; message says which
)

// Batch is a dispatched goal with its members, as GET /batches/{id}
// reports it (and POST /tasks answers).
type Batch struct {
	ID   string `json:"id"`
	Goal string `json:"goal"`
	// Selector is how the sessions were chosen ("label=L"); empty for ids.
	Selector  string    `json:"selector,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Live is true while any member task runs or waits for a person.
	Live bool `json:"live"`
	// Counts holds how many members stand where: their task's status for
	// a started one, their outcome for the rest.
	Counts  map[string]int `json:"counts"`
	Members []BatchMember  `json:"members"`
}

// BatchMember is one session of a batch.
type BatchMember struct {
	SessionID string `json:"session_id"`
	// Outcome is one of the Outcome constants; Message says why a
	// session did not start.
	Outcome string `json:"outcome"`
	Message string `json:"message,omitempty"`
	// Task is the member's task (without events) once started, LastStep
	// its latest step.
	Task     *Task      `json:"task,omitempty"`
	LastStep *TaskEvent `json:"last_step,omitempty"`
}

// BatchList is the body of GET /batches.
type BatchList struct {
	Batches []Batch `json:"batches"`
}

// BatchEvent is one message of GET /batches/{id}/events: a member task's
// event (SSE name "task"), and last the batch as it ended (SSE name "end").
type BatchEvent struct {
	SessionID string     `json:"session_id,omitempty"`
	TaskID    string     `json:"task_id,omitempty"`
	Event     *TaskEvent `json:"event,omitempty"`
	Batch     *Batch     `json:"batch,omitempty"`
}

// Batch stream event names.
const (
	BatchEventTask = "task"
	BatchEventEnd  = "end"
)
