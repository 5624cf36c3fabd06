package mcp

import (
	"context"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

func addControlTools(s *sdk.Server, t tools) {
	sdk.AddTool(s, &sdk.Tool{Name: "take_over", Description: "Take a session's control from its running task (which pauses) or from nobody. " +
		"Returns a lease_id: pass it to computer while you hold control, and to hand_back when done. Refused while someone else holds it."}, t.takeOver)
	sdk.AddTool(s, &sdk.Tool{Name: "hand_back", Description: "Give back the control taken with take_over (or answer a task that asked for help, without a lease_id); " +
		"a paused task resumes, with the message if one is given."}, t.handBack)
}

// Control is who holds a session's control.
type Control struct {
	SessionID string `json:"session_id"`
	LeaseID   string `json:"lease_id,omitempty" jsonschema:"your lease, for computer and hand_back"`
	Holder    string `json:"holder,omitempty" jsonschema:"who holds control now (person, task); empty for nobody"`
	Task      string `json:"task_id,omitempty" jsonschema:"the session's task, if any"`
	TaskState string `json:"task_state,omitempty"`
}

func (t tools) takeOver(ctx context.Context, _ *sdk.CallToolRequest, in SessionInput) (*sdk.CallToolResult, Control, error) {
	l, err := t.c.TakeOver(ctx, in.SessionID)
	if err != nil {
		return nil, Control{}, explain(err)
	}
	return nil, Control{SessionID: l.Session, LeaseID: l.ID, Holder: l.Holder.Kind, Task: l.PausedTask}, nil
}

// HandBackInput is hand_back's input.
type HandBackInput struct {
	SessionID string `json:"session_id"`
	LeaseID   string `json:"lease_id,omitempty" jsonschema:"the lease take_over returned"`
	Message   string `json:"message,omitempty" jsonschema:"a note or an answer for the task"`
}

func (t tools) handBack(ctx context.Context, _ *sdk.CallToolRequest, in HandBackInput) (*sdk.CallToolResult, Control, error) {
	st, err := t.c.HandBack(ctx, in.SessionID, in.LeaseID, in.Message)
	if err != nil {
		return nil, Control{}, explain(err)
	}
	out := Control{SessionID: st.Session, Task: st.Task, TaskState: st.TaskState}
	if st.Holder != nil {
		out.Holder = st.Holder.Kind
	}
	return nil, out, nil
}
