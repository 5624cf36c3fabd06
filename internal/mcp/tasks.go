package mcp

import (
	"context"
	"fmt"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"atelier/internal/apitype"
)

// cancelWait bounds the cancel run_task sends when its caller goes away.
const cancelWait = 10 * time.Second

func addTaskTools(s *sdk.Server, t tools) {
	sdk.AddTool(s, &sdk.Tool{Name: "run_task", Description: "Give a session a goal for the fleet's own computer-use agent and wait until it ends. " +
		"Sends a progress notification per step (when the call has a progress token); the result is the agent's final answer. " +
		"Counts against the fleet's daily spending cap. Cancelling the call cancels the task."}, t.runTask)
	sdk.AddTool(s, &sdk.Tool{Name: "task_status", Description: "Report a task's status, steps, cost and answer (once it ended)."}, t.taskStatus)
	sdk.AddTool(s, &sdk.Tool{Name: "cancel_task", Description: "Cancel a running task; it ends cancelled soon after."}, t.cancelTask)
}

// TaskInput is run_task's input.
type TaskInput struct {
	SessionID string           `json:"session_id" jsonschema:"the session the task runs on"`
	Goal      string           `json:"goal" jsonschema:"what to achieve, in plain words"`
	Backend   string           `json:"backend,omitempty" jsonschema:"the model backend (anthropic, openai, holo, scripted); the fleet's default if empty"`
	Model     string           `json:"model,omitempty" jsonschema:"the model id; the backend's default if empty"`
	MaxSteps  int              `json:"max_steps,omitempty" jsonschema:"stop after this many steps; the fleet's default if 0"`
	MaxUSD    float64          `json:"max_usd,omitempty" jsonschema:"stop once the task spent this many US dollars"`
	Script    []map[string]any `json:"script,omitempty" jsonschema:"for the scripted backend only: the protocol-v1 actions to run"`
}

// TaskResult is a task as the task tools report it.
type TaskResult struct {
	TaskID  string  `json:"task_id"`
	Status  string  `json:"status" jsonschema:"running, paused_for_human, needs_help, done, failed, cancelled, max_steps, budget_exhausted or interrupted"`
	Answer  string  `json:"answer,omitempty" jsonschema:"the agent's final answer"`
	Error   string  `json:"error,omitempty"`
	Steps   int     `json:"steps"`
	CostUSD float64 `json:"cost_usd"`
}

func (t tools) runTask(ctx context.Context, req *sdk.CallToolRequest, in TaskInput) (*sdk.CallToolResult, TaskResult, error) {
	spec := apitype.TaskSpec{Goal: in.Goal, Backend: in.Backend, Model: in.Model, MaxSteps: in.MaxSteps, MaxUSD: in.MaxUSD}
	script, err := rawActions(in.Script)
	if err != nil {
		return nil, TaskResult{}, err
	}
	if len(script) > 0 {
		spec.Script = script
	}
	sub, err := t.c.SubmitTask(ctx, in.SessionID, spec)
	if err != nil {
		return nil, TaskResult{}, explain(err)
	}
	progress := req.Params.GetProgressToken()
	_, err = t.c.FollowTask(ctx, sub.TaskID, func(ev apitype.TaskEvent) {
		if progress == nil || ev.Type != apitype.EventStep {
			return
		}
		msg := fmt.Sprintf("step %d", ev.Step)
		if ev.Thought != "" {
			msg += ": " + ev.Thought
		}
		// A lost notification loses nothing the result does not carry.
		_ = req.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{ProgressToken: progress, Progress: float64(ev.Step),
			Total: float64(in.MaxSteps), Message: msg})
	})
	if err != nil {
		if ctx.Err() != nil {
			// The caller went away: the task should not run on unwatched.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelWait)
			defer cancel()
			t.c.CancelTask(cctx, sub.TaskID)
		}
		return nil, TaskResult{}, fmt.Errorf("following task %s: %w", sub.TaskID, explain(err))
	}
	return t.report(ctx, sub.TaskID)
}

// report returns a task's state as a tool result; an ended task that did
// not finish its goal is a tool error, with the same output.
func (t tools) report(ctx context.Context, id string) (*sdk.CallToolResult, TaskResult, error) {
	task, err := t.c.Task(ctx, id)
	if err != nil {
		return nil, TaskResult{}, explain(err)
	}
	out := TaskResult{TaskID: task.ID, Status: string(task.Status), Answer: task.Answer, Error: task.Error, Steps: task.Steps, CostUSD: task.CostUSD}
	summary := fmt.Sprintf("task %s %s after %d steps ($%.4f)", task.ID, task.Status, task.Steps, task.CostUSD)
	if task.Answer != "" {
		summary += ": " + task.Answer
	}
	if task.Error != "" {
		summary += "; error: " + task.Error
	}
	failed := task.Status != apitype.TaskDone && task.Status != apitype.TaskRunning
	return &sdk.CallToolResult{IsError: failed, Content: []sdk.Content{&sdk.TextContent{Text: summary}}}, out, nil
}

// TaskID names one task.
type TaskID struct {
	TaskID string `json:"task_id" jsonschema:"the task's id, from run_task"`
}

func (t tools) taskStatus(ctx context.Context, _ *sdk.CallToolRequest, in TaskID) (*sdk.CallToolResult, TaskResult, error) {
	res, out, err := t.report(ctx, in.TaskID)
	if res != nil {
		res.IsError = false // a status report is no failure of the tool
	}
	return res, out, err
}

func (t tools) cancelTask(ctx context.Context, _ *sdk.CallToolRequest, in TaskID) (*sdk.CallToolResult, TaskResult, error) {
	if _, err := t.c.CancelTask(ctx, in.TaskID); err != nil {
		return nil, TaskResult{}, explain(err)
	}
	return t.taskStatus(ctx, nil, in)
}
