package fleettest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
	"atelier/internal/audit"
	"atelier/internal/cli"
	"atelier/internal/fleettest"
)

// apiCall sends one request with the fleet's token and returns the status
// and body; the routes under test have no typed client methods yet.
func apiCall(t *testing.T, ctx context.Context, f *fleettest.Fleet, method, path string, in any) (int, []byte) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, f.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, b
}

// TestTasksAndAudit drives a scripted task end to end through the fleet
// API and checks what it leaves behind: the typed command's file in the
// home, the task's record, the budget, and a session audit that names
// every actor and verifies offline.
func TestTasksAndAudit(t *testing.T) { fleettest.EachRuntime(t, testTasksAndAudit) }

func testTasksAndAudit(t *testing.T, runtime string) {
	f := fleettest.New(t, fleettest.Options{Token: token, Runtime: runtime})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "tasks-audit"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != apitype.StateReady {
		t.Fatalf("created %+v, want ready", s)
	}

	// The wait gives the terminal's shell time to start reading keys, and
	// keeps the task running while the second submit is refused.
	script := []agentapi.Request{
		{Action: agentapi.Key, Text: "super+Return"},
		{Action: agentapi.Wait, Duration: 1},
		{Action: agentapi.Type, Text: "echo ok > ~/done\n"},
	}
	spec := taskSpec("write ok to ~/done", script...)
	spec.Backend = "scripted"
	status, body := apiCall(t, ctx, f, http.MethodPost, "/sessions/"+s.ID+"/task", spec)
	if status != http.StatusAccepted {
		t.Fatalf("submit: %d %s, want 202", status, body)
	}
	var sub apitype.TaskSubmitted
	if err := json.Unmarshal(body, &sub); err != nil {
		t.Fatalf("submit answer %s: %v", body, err)
	}
	if sub.TaskID == "" || sub.StreamURL != "/tasks/"+sub.TaskID+"/stream" {
		t.Fatalf("submit answer %+v: want a task_id and its stream_url", sub)
	}

	status, body = apiCall(t, ctx, f, http.MethodPost, "/sessions/"+s.ID+"/task", spec)
	var apiErr apitype.Error
	if json.Unmarshal(body, &apiErr); status != http.StatusConflict || apiErr.Err.Code != "task_running" {
		t.Errorf("second submit while the first runs: %d %s, want 409 task_running", status, body)
	}

	// The stream ends after the final event.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL+sub.StreamURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("stream: %d %s, want 200 text/event-stream", resp.StatusCode, ct)
	}
	evs, err := apitype.ReadEvents(resp.Body, nil)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("read stream: %v (events so far %+v)", err, evs)
	}
	checkEvents(t, evs, script)

	f.Home(s.ID).WaitFile(t, "done", "ok\n")

	status, body = apiCall(t, ctx, f, http.MethodGet, "/tasks/"+sub.TaskID, nil)
	var task apitype.Task
	if status != http.StatusOK || json.Unmarshal(body, &task) != nil {
		t.Fatalf("get task: %d %s", status, body)
	}
	if task.Status != apitype.TaskDone || task.Steps != len(script)+1 || task.EndedAt.IsZero() || task.SessionID != s.ID || len(task.Events) != len(evs) {
		t.Errorf("task after its end: status %s, %d steps, ended %v, session %s, %d events; want done, %d steps, ended, %s, %d events",
			task.Status, task.Steps, task.EndedAt, task.SessionID, len(task.Events), len(script)+1, s.ID, len(evs))
	}

	status, body = apiCall(t, ctx, f, http.MethodGet, "/budget", nil)
	var spend map[string]any
	if status != http.StatusOK || json.Unmarshal(body, &spend) != nil {
		t.Fatalf("budget: %d %s", status, body)
	}
	for _, k := range []string{"day", "spent_usd", "cap_usd"} {
		if _, ok := spend[k]; !ok {
			t.Errorf("budget %s has no %s", body, k)
		}
	}
	if spend["spent_usd"] != 0.0 {
		t.Errorf("budget spent %v after a free scripted task, want 0", spend["spent_usd"])
	}

	act(t, f.Client, s.ID, map[string]any{"action": "mouse_move", "coordinate": []int{300, 200}})

	status, body = apiCall(t, ctx, f, http.MethodGet, "/sessions/"+s.ID+"/audit", nil)
	if status != http.StatusOK {
		t.Fatalf("audit: %d %s", status, body)
	}
	entries := decodeEntries(t, body)
	checkAudit(t, entries, s.ID, sub.TaskID, script)

	// The offline verifier walks the files the fleet wrote, fleet closed.
	f.Close()
	var out bytes.Buffer
	env := &cli.Env{Getenv: func(string) string { return "" }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
	if err := cli.Run(ctx, []string{"audit", "verify", "--data-dir", f.DataDir, "--all"}, env); err != nil {
		t.Fatalf("atelier audit verify: %v\n%s", err, out.String())
	}
	if want := fmt.Sprintf("%s.jsonl: %d entries, 0 repairs, last seq %d,", s.ID, len(entries), len(entries)); !strings.Contains(out.String(), want) {
		t.Errorf("atelier audit verify said:\n%s\nwant a line with %q", out.String(), want)
	}
}

// checkEvents checks a finished scripted task's stream: ids 1..n in order,
// one step per script action carrying that action, the step in which the
// script, having seen the last result, finishes without acting, then one
// final event.
func checkEvents(t *testing.T, evs []apitype.TaskEvent, script []agentapi.Request) {
	t.Helper()
	if len(evs) != len(script)+2 {
		t.Fatalf("stream has %d events, want %d steps and an end: %+v", len(evs), len(script)+1, evs)
	}
	for i, ev := range evs {
		if ev.ID != i+1 {
			t.Errorf("event %d has id %d, want %d", i, ev.ID, i+1)
		}
		switch i {
		case len(script):
			if ev.Type != apitype.EventStep || ev.Step != i+1 || len(ev.Actions) != 0 {
				t.Errorf("event %d = %+v, want step %d without actions", i+1, ev, i+1)
			}
			continue
		case len(script) + 1:
			if ev.Type != apitype.EventEnd || ev.Status != apitype.TaskDone {
				t.Errorf("final event %+v, want end with status done", ev)
			}
			continue
		}
		want := script[i]
		if ev.Type != apitype.EventStep || ev.Step != i+1 || len(ev.Actions) != 1 || !sameAction(ev.Actions[0], want) {
			t.Errorf("event %d = %+v, want step %d doing %s", i+1, ev, i+1, want.String())
			continue
		}
		if len(ev.Results) != 1 || !ev.Results[0].OK {
			t.Errorf("step %d results %+v, want one ok", i+1, ev.Results)
		}
	}
}

func decodeEntries(t *testing.T, body []byte) []audit.Entry {
	t.Helper()
	var entries []audit.Entry
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		var e audit.Entry
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			return entries
		} else if err != nil {
			t.Fatalf("audit line %d: %v\n%s", len(entries)+1, err, body)
		}
		entries = append(entries, e)
	}
}

// checkAudit checks a session's audit after create, a scripted task and
// one API action: every step's action under the task's actor, between the
// task's start and end, and the session and API action under the token's.
func checkAudit(t *testing.T, entries []audit.Entry, sessionID, taskID string, script []agentapi.Request) {
	t.Helper()
	taskActor, apiActor := audit.ActorTask+taskID, audit.ActorToken+"api"
	var created, start, end, apiAction int
	var taskActions []string
	for i, e := range entries {
		if e.Seq != int64(i+1) || e.Session != sessionID {
			t.Errorf("entry %d: seq %d session %s, want seq %d session %s", i, e.Seq, e.Session, i+1, sessionID)
		}
		var a agentapi.Request
		if e.Kind == audit.KindAction {
			if err := json.Unmarshal(e.Action, &a); err != nil {
				t.Errorf("entry %d action %s: %v", e.Seq, e.Action, err)
			}
			if e.Result == nil || e.Result.Code != audit.CodeOK {
				t.Errorf("entry %d: action %s result %+v, want ok", e.Seq, a.Action, e.Result)
			}
		}
		switch {
		case e.Kind == audit.KindSession && e.Detail["event"] == "created":
			created++
			if e.Actor != apiActor || created > 1 || start > 0 {
				t.Errorf("session entry %+v: want one, first, by %s", e, apiActor)
			}
		case e.Kind == audit.KindTask && e.Detail["event"] == "start":
			start++
			if e.Actor != taskActor || e.Detail["task"] != taskID || len(taskActions) > 0 {
				t.Errorf("task start %+v: want one by %s before its actions", e, taskActor)
			}
		case e.Kind == audit.KindTask && e.Detail["event"] == "end":
			end++
			if e.Actor != taskActor || e.Detail["status"] != string(apitype.TaskDone) || len(taskActions) != len(script) {
				t.Errorf("task end %+v after %d actions: want status done by %s after %d", e, len(taskActions), taskActor, len(script))
			}
		case e.Kind == audit.KindAction && e.Actor == taskActor:
			if start != 1 || end != 0 {
				t.Errorf("task action %s outside the task's start and end", e.Action)
			}
			taskActions = append(taskActions, string(a.Action))
		case e.Kind == audit.KindAction && e.Actor == apiActor:
			apiAction++
			if a.Action != agentapi.MouseMove || a.Coordinate == nil || *a.Coordinate != (agentapi.Point{X: 300, Y: 200}) || end != 1 {
				t.Errorf("API action %s: want the mouse_move to 300,200 after the task", e.Action)
			}
		case e.Kind == audit.KindControl && e.Actor == taskActor:
			// The task takes the session's control lease before its start
			// entry and gives it up once its end is recorded.
			if ev := e.Detail["event"]; !(ev == "task_start" && start == 0) && !(ev == "task_end" && end == 1) {
				t.Errorf("control entry %+v: want the task's lease taken before its start entry and given up after its end", e)
			}
		case e.Kind == audit.KindCost && e.Actor == taskActor:
			if e.Cost.USD != 0 || e.Cost.Model != "scripted" {
				t.Errorf("cost entry %+v: want a free scripted step", e.Cost)
			}
		default:
			t.Errorf("unexpected audit entry %+v", e)
		}
	}
	var want []string
	for _, a := range script {
		want = append(want, string(a.Action))
	}
	if created != 1 || start != 1 || end != 1 || apiAction != 1 || strings.Join(taskActions, ",") != strings.Join(want, ",") {
		t.Errorf("audit has %d created, %d task starts, %d ends, %d API actions, task actions %v; want 1, 1, 1, 1, %v\n%+v",
			created, start, end, apiAction, taskActions, want, entries)
	}
}

// sameAction reports whether an event's action (as the wire carries it)
// is want's verb and text.
func sameAction(raw json.RawMessage, want agentapi.Request) bool {
	var got agentapi.Request
	return json.Unmarshal(raw, &got) == nil && got.Action == want.Action && got.Text == want.Text
}
