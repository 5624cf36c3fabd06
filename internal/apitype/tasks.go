package apitype

import (
	"encoding/json"
	"time"
)

// TaskStatus is a task's state. Running, paused for a human and needing
// help are live; the rest are ends.
type TaskStatus string

// Task statuses.
const (
	TaskRunning         TaskStatus = "running"
	TaskPausedForHuman  TaskStatus = "paused_for_human" // a person took control; the task waits
	TaskNeedsHelp       TaskStatus = "needs_help"       // the model asked a person a question
	TaskDone            TaskStatus = "done"             // the model finished
	TaskFailed          TaskStatus = "failed"           // an error the loop could not get past
	TaskCancelled       TaskStatus = "cancelled"        // a client cancelled it
	TaskMaxSteps        TaskStatus = "max_steps"        // the step limit was reached
	TaskBudgetExhausted TaskStatus = "budget_exhausted" // the daily cap or the task's max_usd
	TaskInterrupted     TaskStatus = "interrupted"      // the fleet stopped while it ran
)

// TaskSpec is the body of POST /sessions/{id}/task.
type TaskSpec struct {
	Goal     string  `json:"goal"`
	Backend  string  `json:"backend,omitempty"`
	Model    string  `json:"model,omitempty"`
	MaxSteps int     `json:"max_steps,omitempty"`
	MaxUSD   float64 `json:"max_usd,omitempty"`
	// Script is a list of protocol-v1 actions for the scripted backend.
	Script []json.RawMessage `json:"script,omitempty"`
}

// TaskSubmitted is the 202 answer of POST /sessions/{id}/task.
type TaskSubmitted struct {
	TaskID    string     `json:"task_id"`
	Status    TaskStatus `json:"status"`
	StreamURL string     `json:"stream_url"`
}

// Task is a task's record, as GET /tasks/{id} reports it.
type Task struct {
	ID        string     `json:"id"`
	SessionID string     `json:"session_id"`
	Goal      string     `json:"goal"`
	Backend   string     `json:"backend"`
	Model     string     `json:"model,omitempty"`
	MaxSteps  int        `json:"max_steps"`
	MaxUSD    float64    `json:"max_usd,omitempty"`
	Status    TaskStatus `json:"status"`
	Answer    string     `json:"answer,omitempty"`
	Error     string     `json:"error,omitempty"`
	Steps     int        `json:"steps"`
	CostUSD   float64    `json:"cost_usd"`
	CreatedAt time.Time  `json:"created_at"`
	EndedAt   time.Time  `json:"ended_at,omitzero"`
	// Events are the step events so far (GET /tasks/{id} only).
	Events []TaskEvent `json:"events,omitempty"`
}

// TaskList is the body of GET /sessions/{id}/tasks, newest first.
type TaskList struct {
	Tasks []Task `json:"tasks"`
}

// TaskCancelling is the status of a TaskCancel answer.
const TaskCancelling = "cancelling"

// TaskCancel is the 202 answer of POST /tasks/{id}/cancel.
type TaskCancel struct {
	TaskID string `json:"task_id"`
	Status string `json:"status"`
}

// Task event types. Control events tell of a person taking the desktop,
// the model asking for help, and the task resuming.
const (
	EventStep      = "step"
	EventEnd       = "end"
	EventPaused    = "paused_for_human"
	EventNeedsHelp = "needs_help"
	EventResumed   = "resumed"
)

// TaskEvent is one event of a task (a step, a control event, or the final
// event), as GET /tasks/{id}/stream sends it and GET /tasks/{id} lists it.
type TaskEvent struct {
	// ID numbers a task's events from 1; it is the SSE id, so a client
	// resumes with Last-Event-ID.
	ID   int       `json:"id"`
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Step fields. Actions are protocol-v1 requests.
	Step    int                `json:"step,omitempty"`
	Thought string             `json:"thought,omitempty"`
	Note    string             `json:"note,omitempty"`
	Actions []json.RawMessage  `json:"actions,omitempty"`
	Results []TaskActionResult `json:"results,omitempty"`
	// Error is a step error: unusable model output or an invalid action,
	// fed back to the model.
	Error   string  `json:"error,omitempty"`
	Usage   *Usage  `json:"usage,omitempty"`
	StepUSD float64 `json:"step_usd"`
	// Basis says how StepUSD was found when not from the usage at the
	// model's price: "unpriced" (a model without a price, recorded at 0)
	// or "reservation" (a call abandoned by a cancel, charged what was
	// reserved for it).
	Basis      string  `json:"basis,omitempty"`
	TotalUSD   float64 `json:"total_usd"`
	Screenshot string  `json:"screenshot,omitempty"` // URL path of the step's screenshot
	// Final and control event fields.
	Status TaskStatus `json:"status,omitempty"`
	Answer string     `json:"answer,omitempty"`
	// Control event fields: who holds control now, why it changed, the
	// model's question and a person's hand-back message.
	Holder   *Holder `json:"holder,omitempty"`
	Reason   string  `json:"reason,omitempty"`
	Question string  `json:"question,omitempty"`
	Message  string  `json:"message,omitempty"`
}

// TaskActionResult is the outcome of one action of a step.
type TaskActionResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Skipped is set for an action that was not run (an earlier one
	// failed, or a person took control).
	Skipped bool `json:"skipped,omitempty"`
}

// Usage is what one model call consumed.
type Usage struct {
	Model            string `json:"model"`
	InputTokens      int64  `json:"input_tokens"`
	OutputTokens     int64  `json:"output_tokens"`
	CacheReadTokens  int64  `json:"cache_read_tokens,omitempty"`
	CacheWriteTokens int64  `json:"cache_write_tokens,omitempty"`
	ReasoningTokens  int64  `json:"reasoning_tokens,omitempty"`
}

// HeaderLastEventID resumes a task's stream after the event it names.
const HeaderLastEventID = "Last-Event-ID"
