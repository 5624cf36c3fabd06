package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
	"atelier/internal/budget"
	"atelier/internal/model"
	"atelier/internal/tasks"
)

// maxTaskBody bounds a task spec (a script can be long).
const maxTaskBody = 1 << 20

// keepalive is how often an idle task stream sends a comment line, so
// proxies do not close it.
const keepalive = 15 * time.Second

// taskManager returns the fleet's task manager, or the error a task route
// answers without one.
func (s *Server) taskManager() (*tasks.Manager, error) {
	if s.opts.Tasks == nil {
		return nil, &apiError{status: http.StatusServiceUnavailable, code: apitype.CodeUnavailable, msg: "this fleet runs no tasks"}
	}
	return s.opts.Tasks, nil
}

// handleSubmitTask serves POST /sessions/{id}/task: 202 once the task
// runs; 409 task_running while the session runs one, 409 not_running
// without a running desktop.
func (s *Server) handleSubmitTask(w http.ResponseWriter, r *http.Request) error {
	m, err := s.taskManager()
	if err != nil {
		return err
	}
	body, err := decode[apitype.TaskSpec](w, r, maxTaskBody)
	if err != nil {
		return err
	}
	spec, err := taskSpec(body)
	if err != nil {
		return err
	}
	t, err := m.Submit(r.Context(), r.PathValue("id"), spec)
	if err != nil {
		return err
	}
	encode(w, http.StatusAccepted, apitype.TaskSubmitted{TaskID: t.ID, Status: apitype.TaskStatus(t.Status), StreamURL: "/tasks/" + t.ID + "/stream"})
	return nil
}

// taskSpec turns a wire spec into the tasks manager's, decoding its script.
func taskSpec(body apitype.TaskSpec) (tasks.Spec, error) {
	spec := tasks.Spec{Goal: body.Goal, Backend: body.Backend, Model: body.Model, MaxSteps: body.MaxSteps, MaxUSD: body.MaxUSD}
	for i, raw := range body.Script {
		var req agentapi.Request
		if err := decodeBytes(raw, &req); err != nil {
			ae := err.(*apiError)
			ae.msg = fmt.Sprintf("script action %d: %s", i, ae.msg)
			return tasks.Spec{}, ae
		}
		spec.Script = append(spec.Script, req)
	}
	return spec, nil
}

// handleGetTask serves GET /tasks/{id}: the task with its events.
func (s *Server) handleGetTask(w http.ResponseWriter, r *http.Request) error {
	m, err := s.taskManager()
	if err != nil {
		return err
	}
	t, err := m.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, taskToAPI(t))
	return nil
}

// handleListTasks serves GET /sessions/{id}/tasks, newest first.
func (s *Server) handleListTasks(w http.ResponseWriter, r *http.Request) error {
	m, err := s.taskManager()
	if err != nil {
		return err
	}
	ts, err := m.List(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := apitype.TaskList{Tasks: make([]apitype.Task, 0, len(ts))}
	for _, t := range ts {
		out.Tasks = append(out.Tasks, taskToAPI(t))
	}
	encode(w, http.StatusOK, out)
	return nil
}

// handleCancelTask serves POST /tasks/{id}/cancel: 202 once the cancel is
// under way, 409 task_ended if the task already ended.
func (s *Server) handleCancelTask(w http.ResponseWriter, r *http.Request) error {
	m, err := s.taskManager()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := m.Cancel(r.Context(), id); err != nil {
		return err
	}
	encode(w, http.StatusAccepted, apitype.TaskCancel{TaskID: id, Status: apitype.TaskCancelling})
	return nil
}

// handleTaskStream serves GET /tasks/{id}/stream as Server-Sent Events:
// the events so far (after Last-Event-ID, if sent), then live ones, ending
// after the final event, with a comment line while idle.
func (s *Server) handleTaskStream(w http.ResponseWriter, r *http.Request) error {
	m, err := s.taskManager()
	if err != nil {
		return err
	}
	after := 0
	if h := r.Header.Get(apitype.HeaderLastEventID); h != "" {
		n, err := strconv.Atoi(strings.TrimSpace(h))
		if err != nil || n < 0 {
			return badRequest(apitype.CodeBadRequest, apitype.HeaderLastEventID+" must be a non-negative event id")
		}
		after = n
	}
	evs, err := m.Subscribe(r.Context(), r.PathValue("id"), after)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	startSSE(w, rc)
	pump(w, rc, evs, func(ev tasks.Event) error { return apitype.WriteEvent(w, eventToAPI(ev)) })
	return nil
}

// handleTaskScreenshot serves GET /tasks/{id}/steps/{step}/screenshot:
// the image the model saw at that step, while retention keeps it.
func (s *Server) handleTaskScreenshot(w http.ResponseWriter, r *http.Request) error {
	m, err := s.taskManager()
	if err != nil {
		return err
	}
	step, err := strconv.Atoi(r.PathValue("step"))
	if err != nil {
		return &apiError{status: http.StatusNotFound, code: apitype.CodeNotFound, msg: "no such step"}
	}
	path, err := m.ScreenshotPath(r.PathValue("id"), step)
	if err != nil {
		return &apiError{status: http.StatusNotFound, code: apitype.CodeNotFound, msg: "no screenshot for this step (never taken, or past retention)"}
	}
	w.Header().Set("Cache-Control", "private, max-age=86400")
	http.ServeFile(w, r, path)
	return nil
}

// handleBudget serves GET /budget: today's spend against the daily cap.
func (s *Server) handleBudget(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Budget == nil {
		encode(w, http.StatusOK, apitype.Budget{Day: budget.Day(time.Now()), CapUSD: s.opts.CapUSD})
		return nil
	}
	t, err := s.opts.Budget.Today(r.Context())
	if err != nil {
		return fmt.Errorf("read the budget: %w", err)
	}
	encode(w, http.StatusOK, apitype.Budget{Day: t.Day, SpentUSD: t.SpentUSD, ReservedUSD: t.ReservedUSD, CapUSD: t.CapUSD})
	return nil
}

func taskToAPI(t tasks.Task) apitype.Task {
	out := apitype.Task{ID: t.ID, SessionID: t.SessionID, Goal: t.Goal, Backend: t.Backend, Model: t.Model,
		MaxSteps: t.MaxSteps, MaxUSD: t.MaxUSD, Status: apitype.TaskStatus(t.Status), Answer: t.Answer, Error: t.Error,
		Steps: t.Steps, CostUSD: t.CostUSD, CreatedAt: t.CreatedAt, EndedAt: t.EndedAt}
	for _, ev := range t.Events {
		out.Events = append(out.Events, eventToAPI(ev))
	}
	return out
}

func eventToAPI(ev tasks.Event) apitype.TaskEvent {
	out := apitype.TaskEvent{ID: ev.ID, Type: ev.Type, Time: ev.Time, Step: ev.Step, Thought: ev.Thought, Note: ev.Note,
		Error: ev.Error, Usage: usageToAPI(ev.Usage), StepUSD: ev.StepUSD, Basis: ev.Basis, TotalUSD: ev.TotalUSD, Screenshot: ev.Screenshot,
		Status: apitype.TaskStatus(ev.Status), Answer: ev.Answer, Reason: ev.Reason, Question: ev.Question, Message: ev.Message}
	for _, a := range ev.Actions {
		// A request marshals always: its fields are plain values.
		b, _ := json.Marshal(a)
		out.Actions = append(out.Actions, b)
	}
	for _, res := range ev.Results {
		out.Results = append(out.Results, apitype.TaskActionResult{OK: res.OK, Error: res.Error, Skipped: res.Skipped})
	}
	if ev.Holder != nil {
		h := ev.Holder.API()
		out.Holder = &h
	}
	return out
}

func usageToAPI(u *model.Usage) *apitype.Usage {
	if u == nil {
		return nil
	}
	return &apitype.Usage{Model: u.Model, InputTokens: u.InputTokens, OutputTokens: u.OutputTokens,
		CacheReadTokens: u.CacheReadTokens, CacheWriteTokens: u.CacheWriteTokens, ReasoningTokens: u.ReasoningTokens}
}
