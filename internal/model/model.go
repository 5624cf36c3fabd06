// Package model holds the backend-neutral types of the task loop: what one
// step sends a computer-use model (Turn), what comes back (Reply), the tokens
// a call used (Usage), and what they cost (Price). Backends live in the
// subpackages holo, anthropic and scripted.
package model

import (
	"context"
	"errors"
	"fmt"

	"atelier/internal/agentapi"
)

// Turn is the input of one step.
type Turn struct {
	// Goal is the task's goal, the same on every turn.
	Goal string
	// Step counts model calls of the task, from 1.
	Step int
	// Screenshot is the desktop as it is now, taken at the scale the
	// conversation asked for.
	Screenshot Screenshot
	// Results are the outcomes of the previous reply's actions, in the same
	// order; an action that was not run has an Error saying why.
	Results []Result
	// Error, when set, says why the previous reply could not be carried out
	// (unparseable output, an invalid action). It is fed back once so the
	// model can correct itself.
	Error string
	// Notes are events the model should know of, such as "a person used
	// the desktop since the last step".
	Notes []string
	// Answered is set on the turn after a reply that asked for help: the
	// person's Answer (possibly empty) is the reply to that question, and
	// a backend whose protocol pairs every tool call with a result (as
	// Anthropic's does) returns it as the result of the help tool call.
	Answered bool
	Answer   string
}

// Screenshot is an image of the desktop's output. Width and Height are the
// image's pixels; OutputWidth and OutputHeight the output's, which are what
// actions address.
type Screenshot struct {
	Format                    string // agentapi.FormatPNG or FormatJPEG
	Data                      []byte
	Width, Height             int
	OutputWidth, OutputHeight int
}

// MediaType returns the image's MIME type.
func (s Screenshot) MediaType() string {
	if s.Format == agentapi.FormatJPEG {
		return "image/jpeg"
	}
	return "image/png"
}

// ToOutput maps a pixel of the image to a pixel of the output. Integer
// arithmetic keeps the mapping exact where the sizes divide evenly.
func (s Screenshot) ToOutput(x, y int) agentapi.Point {
	if s.Width <= 0 || s.Height <= 0 {
		return agentapi.Point{X: x, Y: y}
	}
	return agentapi.Point{X: x * s.OutputWidth / s.Width, Y: y * s.OutputHeight / s.Height}
}

// Result is the outcome of one action.
type Result struct {
	// Error is empty when the action succeeded.
	Error string
	// Cursor is the pointer position the agent reported, if any.
	Cursor *agentapi.Point
}

// Reply is what a model decided in one step.
type Reply struct {
	// Thought is the model's one-line plan or visible reasoning.
	Thought string
	// Note is what the model chose to remember (Holo's note), if anything.
	Note string
	// Actions are run in order, in output pixels. An empty list with Done
	// unset means "look again".
	Actions []agentapi.Request
	// Done is set when the model considers the task finished; Answer is its
	// final answer, if it gave one.
	Done   bool
	Answer string
	// Failed is set when the model gave up (Answer then says why).
	Failed bool
	// Help, when set, is a question for a person: the model cannot go on
	// without one (a login, a choice only the user can make). Actions are
	// empty then. The task waits (needs_help) until a person hands control
	// back, and the next Turn carries their Answer.
	Help  string
	Usage Usage
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

// Add returns the sum of u and v; the model is v's when set.
func (u Usage) Add(v Usage) Usage {
	if v.Model != "" {
		u.Model = v.Model
	}
	u.InputTokens += v.InputTokens
	u.OutputTokens += v.OutputTokens
	u.CacheReadTokens += v.CacheReadTokens
	u.CacheWriteTokens += v.CacheWriteTokens
	u.ReasoningTokens += v.ReasoningTokens
	return u
}

// ErrOutput marks a reply the backend could not turn into actions: output
// that does not parse, or names an action that does not exist. The loop
// reports it as a step error and feeds it back to the model once.
var ErrOutput = errors.New("unusable model output")

// OutputErrorf returns an *OutputError. Usage is what the call consumed,
// so it is still charged.
func OutputErrorf(u Usage, format string, args ...any) error {
	return &OutputError{Usage: u, Msg: fmt.Sprintf(format, args...)}
}

// OutputError is a reply that could not be used, with the usage it cost.
type OutputError struct {
	Usage Usage
	Msg   string
}

// Error returns the reason the output was unusable.
func (e *OutputError) Error() string { return e.Msg }

// Unwrap makes errors.Is(err, ErrOutput) hold.
func (e *OutputError) Unwrap() error { return ErrOutput }

// Start is what a backend needs to begin one task's conversation.
type Start struct {
	Goal string
	// Model overrides the backend's default model id, if set.
	Model string
	// Script is the scripted backend's list of actions; other backends
	// refuse a script.
	Script []agentapi.Request
}

// ErrBadStart marks a Start a backend refuses (a missing script, a script
// given to a model backend, an unknown model).
var ErrBadStart = errors.New("invalid task for this backend")

// ImageTokens estimates what an image of w×h pixels costs as input tokens
// (about w·h/750, the Anthropic vision rule, a fair bound for others).
func ImageTokens(w, h int) int64 { return int64(w)*int64(h)/750 + 1 }

// Conversation is one task's exchange with a model. Backends return one
// per task from their Start method.
type Conversation interface {
	// Model is the model id, as priced.
	Model() string
	// ScreenshotScale is the scale in (0, 1] the screenshot for the next
	// turn should be taken at, for an output of w×h pixels.
	ScreenshotScale(w, h int) float64
	// Estimate bounds the usage of the next call with t, for the budget.
	Estimate(t Turn) Usage
	// Next sends t and returns the model's reply. An unusable reply is an
	// error wrapping ErrOutput (an *OutputError carrying its usage).
	Next(ctx context.Context, t Turn) (Reply, error)
}
