// Package tasks runs goals on desktops: the loop screenshot → model →
// actions → screenshot, one task per session at a time, with step events
// (kept in the store and streamed over SSE), cancellation, step screenshots
// on disk and the daily budget. It reaches desktops, models, the budget and
// the audit log through the small interfaces it declares here.
package tasks

import (
	"context"
	"errors"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/control"
	"atelier/internal/model"
	"atelier/internal/sessions"
)

// Status is a task's state. Running, paused for a human and needing help
// are live; the rest are ends.
type Status string

// Task statuses.
const (
	StatusRunning         Status = "running"
	StatusPausedForHuman  Status = "paused_for_human" // a person took control; the task waits
	StatusNeedsHelp       Status = "needs_help"       // the model asked a person a question
	StatusDone            Status = "done"             // the model finished
	StatusFailed          Status = "failed"           // an error the loop could not get past
	StatusCancelled       Status = "cancelled"        // Cancel was called
	StatusMaxSteps        Status = "max_steps"        // the step limit was reached
	StatusBudgetExhausted Status = "budget_exhausted" // the daily cap or the task's max_usd
	StatusInterrupted     Status = "interrupted"      // the fleet stopped while it ran
)

// Live reports whether a task in status s has not ended: it runs, or waits
// for a person.
func (s Status) Live() bool {
	return s == StatusRunning || s == StatusPausedForHuman || s == StatusNeedsHelp
}

// Limits of a Spec.
const (
	DefaultMaxSteps = 50
	MaxMaxSteps     = 500
	MaxGoalBytes    = 16 << 10
	MaxScriptLen    = 1000
)

// Errors callers branch on.
var (
	// ErrBusy: the session already runs a task.
	ErrBusy = errors.New("a task is already running on this session")
	// ErrInvalid: the spec is refused (empty goal, unknown backend, …).
	ErrInvalid = errors.New("invalid task")
	// ErrUnpriced: the model has no price while a spending cap (the
	// fleet's daily cap or the task's max_usd) is set.
	ErrUnpriced = errors.New("the model has no price")
	// ErrNotFound: no task has this id.
	ErrNotFound = errors.New("task not found")
	// ErrNotRunning: the task has already ended.
	ErrNotRunning = errors.New("task is not running")
	// ErrNoDesktop is what a Desktops implementation wraps when the session
	// does not exist or its desktop is not running.
	ErrNoDesktop = errors.New("no running desktop for this session")
	// ErrClosed: the manager is closing (the fleet is shutting down).
	ErrClosed = errors.New("the fleet is shutting down")
)

// Spec is what a client asks for (apitype.TaskSpec on the wire).
type Spec struct {
	Goal     string  `json:"goal"`
	Backend  string  `json:"backend,omitempty"`
	Model    string  `json:"model,omitempty"`
	MaxSteps int     `json:"max_steps,omitempty"`
	MaxUSD   float64 `json:"max_usd,omitempty"`
	// Script is a list of protocol-v1 actions for the scripted backend.
	Script []agentapi.Request `json:"script,omitempty"`
}

// Task is a task's record (apitype.Task on the wire).
type Task struct {
	ID        string    `json:"id"`
	SessionID string    `json:"session_id"`
	Goal      string    `json:"goal"`
	Backend   string    `json:"backend"`
	Model     string    `json:"model,omitempty"`
	MaxSteps  int       `json:"max_steps"`
	MaxUSD    float64   `json:"max_usd,omitempty"`
	Status    Status    `json:"status"`
	Answer    string    `json:"answer,omitempty"`
	Error     string    `json:"error,omitempty"`
	Steps     int       `json:"steps"`
	CostUSD   float64   `json:"cost_usd"`
	CreatedAt time.Time `json:"created_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// Events are the step events so far, when asked for (Get).
	Events []Event `json:"events,omitempty"`
}

// Event kinds. Control events tell of a person taking the desktop, the
// model asking for help, and the task resuming.
const (
	EventStep      = "step"
	EventEnd       = "end"
	EventPaused    = "paused_for_human"
	EventNeedsHelp = "needs_help"
	EventResumed   = "resumed"
)

// Event is one event of a task: a step, a control event, or the final
// event (apitype.TaskEvent on the wire).
type Event struct {
	// ID numbers a task's events from 1; it is the SSE id, so a client
	// resumes with Last-Event-ID.
	ID   int       `json:"id"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Step fields.
	Step    int                `json:"step,omitempty"`
	Thought string             `json:"thought,omitempty"`
	Note    string             `json:"note,omitempty"`
	Actions []agentapi.Request `json:"actions,omitempty"`
	Results []ActionResult     `json:"results,omitempty"`
	// Error is a step error: unusable model output or an invalid action,
	// fed back to the model.
	Error   string       `json:"error,omitempty"`
	Usage   *model.Usage `json:"usage,omitempty"`
	StepUSD float64      `json:"step_usd"`
	// Basis says how StepUSD was found when not from the usage at the
	// model's price: "unpriced" (a model without a price, recorded at 0)
	// or "reservation" (a call abandoned by a cancel, charged what was
	// reserved for it); as in the ledger (budget.Basis*).
	Basis      string  `json:"basis,omitempty"`
	TotalUSD   float64 `json:"total_usd"`
	Screenshot string  `json:"screenshot,omitempty"` // URL path of the step's screenshot
	// Final and control event fields.
	Status Status `json:"status,omitempty"`
	Answer string `json:"answer,omitempty"`
	// Control event fields: who holds control now, why it changed, the
	// model's question and a person's hand-back message.
	Holder   *control.Holder `json:"holder,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	Question string          `json:"question,omitempty"`
	Message  string          `json:"message,omitempty"`
}

// ActionResult is the outcome of one action of a step.
type ActionResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Skipped is set for an action that was not run (an earlier one
	// failed, or a person took control).
	Skipped bool `json:"skipped,omitempty"`
}

// Desktops gives the loop a session's desktop. The fleet's sessions
// manager satisfies it; an error for a missing or stopped desktop wraps
// ErrNoDesktop.
type Desktops interface {
	// Agent is for looking: the desktop's status, a step's screenshot,
	// settling.
	Agent(ctx context.Context, sessionID string) (*agentapi.Client, error)
	// Act sends a step's actions through the sessions' one input
	// pipeline (sessions.Manager.Act): the control lease, the agent and
	// the audit log, as every other caller's.
	Act(ctx context.Context, sessionID string, who sessions.Actor, reqs []agentapi.Request) (sessions.ActResult, error)
}

// Backend begins conversations with one kind of model.
type Backend interface {
	Start(ctx context.Context, s model.Start) (model.Conversation, error)
}

// Control is the sessions' control lease (*control.Leases): a task holds
// its session's lease, which every action it sends passes (in
// Desktops.Act, claimed by the task), and it waits for its turn while a
// person has the desktop or it needs help.
type Control interface {
	BeginTask(session, task string, hook func(control.Change)) error
	EndTask(session, task string)
	WaitTurn(ctx context.Context, session, task string) (control.Resumed, error)
	AskHelp(session, task, question string) error
}

// Recorder receives every task's start and every event (the audit log;
// the actions are recorded by the input pipeline). Optional.
type Recorder interface {
	RecordTaskStart(ctx context.Context, t Task) error
	RecordTaskEvent(ctx context.Context, sessionID, taskID string, ev Event) error
}

// Observer watches the task loop's calls out, for the fleet's metrics.
// Its methods must not block.
type Observer interface {
	// ObserveModelCall is told of every model call: outcome is "ok",
	// "error" or "timeout".
	ObserveModelCall(backend, model, outcome string, took time.Duration)
	// ObserveScreenshot is told of every step's screenshot.
	ObserveScreenshot(format string, bytes int, took time.Duration)
}
