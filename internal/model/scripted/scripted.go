// Package scripted is the deterministic, free backend: a task's script, a
// list of protocol-v1 actions in output pixels, run one action per step.
// It serves demos, tests and repeatable automations.
package scripted

import (
	"context"
	"fmt"

	"atelier/internal/agentapi"
	"atelier/internal/model"
)

// ModelName is the model id scripted steps are recorded under; it is not
// in any price table, so it costs nothing.
const ModelName = "scripted"

// Backend starts scripted conversations.
type Backend struct{}

// Start checks the script (every action valid for protocol v1) and returns
// a conversation that plays it.
func (Backend) Start(_ context.Context, s model.Start) (model.Conversation, error) {
	if len(s.Script) == 0 {
		return nil, fmt.Errorf("%w: the scripted backend needs a script", model.ErrBadStart)
	}
	script := make([]agentapi.Request, len(s.Script))
	for i, a := range s.Script {
		a.V = agentapi.Version
		if err := a.Validate(); err != nil {
			return nil, fmt.Errorf("%w: script action %d: %v", model.ErrBadStart, i+1, err)
		}
		script[i] = a
	}
	return &Conversation{script: script}, nil
}

// Conversation plays one script.
type Conversation struct {
	script []agentapi.Request
	next   int
}

// Model returns ModelName.
func (c *Conversation) Model() string { return ModelName }

// ScreenshotScale is 1: scripts address output pixels.
func (c *Conversation) ScreenshotScale(int, int) float64 { return 1 }

// Estimate is zero: scripts are free.
func (c *Conversation) Estimate(model.Turn) model.Usage { return model.Usage{Model: ModelName} }

// Next returns the script's next action, then Done once all have run (so
// the last action's result is seen). A failed action ends the script; one
// a person's takeover kept from running is played again after it.
func (c *Conversation) Next(_ context.Context, t model.Turn) (model.Reply, error) {
	for _, r := range t.Results {
		if r.Interrupted {
			c.next--
			break
		}
		if r.Error != "" {
			return model.Reply{Done: true, Failed: true, Answer: fmt.Sprintf("action %d failed: %s", c.next, r.Error)}, nil
		}
	}
	if c.next >= len(c.script) {
		return model.Reply{Done: true, Answer: "script finished"}, nil
	}
	a := c.script[c.next]
	c.next++
	return model.Reply{
		Thought: fmt.Sprintf("script action %d of %d: %s", c.next, len(c.script), a.String()),
		Actions: []agentapi.Request{a},
		Usage:   model.Usage{Model: ModelName},
	}, nil
}
