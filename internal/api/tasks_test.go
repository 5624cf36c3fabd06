package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"atelier/internal/api"
	"atelier/internal/apitype"
	"atelier/internal/client"
	"atelier/internal/runtime"
)

// TestTaskRoutes drives the task routes through the typed client: a task
// that fails on a desktop without an agent is listed, read, streamed
// (and resumed), and refused a cancel once ended; bad input is refused
// with its code, and a stopped session is 409 not_running, as on
// /actions.
func TestTaskRoutes(t *testing.T) {
	f := newFixture(t)
	c := client.New(f.url, token, nil)
	ctx := t.Context()
	sub, err := c.SubmitTask(ctx, f.id, apitype.TaskSpec{Goal: "wait", Script: []json.RawMessage{json.RawMessage(`{"v":1,"action":"wait","duration":0.01}`)}})
	if err != nil || sub.Status != apitype.TaskRunning || sub.StreamURL != "/tasks/"+sub.TaskID+"/stream" {
		t.Fatalf("submit: %+v, %v", sub, err)
	}
	var evs []apitype.TaskEvent
	end, err := c.FollowTask(ctx, sub.TaskID, func(ev apitype.TaskEvent) { evs = append(evs, ev) })
	if err != nil || end.Type != apitype.EventEnd || end.Status != apitype.TaskFailed || len(evs) == 0 || evs[len(evs)-1].ID != end.ID {
		t.Fatalf("follow: end %+v after %d events, %v; want the task failed (no agent)", end, len(evs), err)
	}
	var resumed []apitype.TaskEvent
	if err := c.TaskEvents(ctx, sub.TaskID, end.ID-1, func(ev apitype.TaskEvent) error { resumed = append(resumed, ev); return nil }); err != nil || len(resumed) != 1 || resumed[0].ID != end.ID {
		t.Errorf("resumed after %d: %+v, %v; want the final event alone", end.ID-1, resumed, err)
	}
	task, err := c.Task(ctx, sub.TaskID)
	if err != nil || task.ID != sub.TaskID || task.SessionID != f.id || len(task.Events) != len(evs) {
		t.Errorf("get: %+v, %v", task, err)
	}
	list, err := c.Tasks(ctx, f.id)
	if err != nil || len(list) != 1 || list[0].ID != sub.TaskID || list[0].Events != nil {
		t.Errorf("list: %+v, %v", list, err)
	}
	if _, err := c.CancelTask(ctx, sub.TaskID); !isCode(err, http.StatusConflict, apitype.CodeTaskEnded) {
		t.Errorf("cancel of an ended task: %v; want 409 task_ended", err)
	}
	if _, _, err := c.TaskScreenshot(ctx, sub.TaskID, 1); !isCode(err, http.StatusNotFound, apitype.CodeNotFound) {
		t.Errorf("a step screenshot never taken: %v; want 404", err)
	}
	for _, id := range []string{"task_0000000000000000", "nope"} {
		if _, err := c.Task(ctx, id); !isCode(err, http.StatusNotFound, apitype.CodeNotFound) {
			t.Errorf("get %s: %v; want 404 not_found", id, err)
		}
		if err := c.TaskEvents(ctx, id, 0, nil); !isCode(err, http.StatusNotFound, apitype.CodeNotFound) {
			t.Errorf("stream %s: %v; want 404 not_found", id, err)
		}
		if _, err := c.CancelTask(ctx, id); !isCode(err, http.StatusNotFound, apitype.CodeNotFound) {
			t.Errorf("cancel %s: %v; want 404 not_found", id, err)
		}
	}
	if _, err := c.SubmitTask(ctx, runtime.NewID(), apitype.TaskSpec{Goal: "g"}); !isCode(err, http.StatusNotFound, apitype.CodeNotFound) {
		t.Errorf("a task for no session: %v; want 404 not_found", err)
	}
	if _, err := c.SubmitTask(ctx, "s-ghost", apitype.TaskSpec{Goal: "g"}); !isCode(err, http.StatusBadRequest, apitype.CodeBadID) {
		t.Errorf("a task for a malformed session id: %v; want 400 bad_id", err)
	}
	if _, err := c.StopSession(ctx, f.id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SubmitTask(ctx, f.id, apitype.TaskSpec{Goal: "g"}); !isCode(err, http.StatusConflict, apitype.CodeNotRunning) {
		t.Errorf("a task for a stopped session: %v; want 409 not_running", err)
	}
	if _, err := c.Act(ctx, f.id, map[string]any{"action": "type", "text": "a"}); !isCode(err, http.StatusConflict, apitype.CodeNotRunning) {
		t.Errorf("an action on a stopped session: %v; want 409 not_running", err)
	}
}

// TestTaskRoutesRefuseBadInput: every bad request gets a clear error and
// starts nothing.
func TestTaskRoutesRefuseBadInput(t *testing.T) {
	f := newFixture(t)
	for _, body := range []string{`{`, `{"goal":"g","colour":"red"}`, `{"goal":"g"} {}`, `[]`, `{"goal":""}`, `{"goal":"g","max_steps":-1}`,
		`{"goal":"g","backend":"gpt"}`, `{"goal":"g","script":[{"action":"wait","duration":"soon"}]}`, `{"goal":"g","script":[{"action":"wait","colour":1}]}`} {
		resp, b := f.do(t, http.MethodPost, "/sessions/"+f.id+"/task", body)
		if e := apiErr(t, b); resp.StatusCode != http.StatusBadRequest || e.Code != apitype.CodeBadRequest {
			t.Errorf("task %s: %d %s; want 400 bad_request", body, resp.StatusCode, b)
		}
	}
	resp, b := f.do(t, http.MethodPost, "/sessions/"+f.id+"/task", `{"goal":"`+strings.Repeat("x", 2<<20)+`"}`)
	if e := apiErr(t, b); resp.StatusCode != http.StatusRequestEntityTooLarge || e.Code != apitype.CodeTooLarge {
		t.Errorf("a huge task: %d %s; want 413 too_large", resp.StatusCode, b)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.url+"/tasks/task_0000000000000000/stream", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set(apitype.HeaderLastEventID, "-3")
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("Last-Event-ID -3: %s; want 400", r.Status)
	}
	if list, err := client.New(f.url, token, nil).Tasks(t.Context(), f.id); err != nil || len(list) != 0 {
		t.Errorf("tasks after refusals: %+v, %v; want none", list, err)
	}
}

// TestTaskRoutesWithoutTasks: a fleet that runs no tasks answers 503.
func TestTaskRoutesWithoutTasks(t *testing.T) {
	h := recording(api.New(api.Options{}))
	for _, p := range []string{"GET /tasks/x", "GET /sessions/s/tasks", "GET /tasks/x/stream", "POST /tasks/x/cancel", "GET /tasks/x/steps/1/screenshot", "POST /sessions/s/task"} {
		method, path, _ := strings.Cut(p, " ")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		if e := apiErr(t, rec.Body.Bytes()); rec.Code != http.StatusServiceUnavailable || e.Code != apitype.CodeUnavailable {
			t.Errorf("%s: %d %s; want 503 unavailable", p, rec.Code, rec.Body)
		}
	}
}

// isCode reports whether err is the fleet's answer with status and code.
func isCode(err error, status int, code string) bool {
	ce, ok := err.(*client.Error)
	return ok && ce.Status == status && ce.Code == code
}
