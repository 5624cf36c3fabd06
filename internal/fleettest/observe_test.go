package fleettest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
	"atelier/internal/audit"
	"atelier/internal/client"
	"atelier/internal/config"
	"atelier/internal/fleettest"
	"atelier/internal/model/modeltest"
)

const metricsToken = "fleettest-scraper-0123456789"

// send makes one request with the bearer token bearer (none if empty) and
// the X-Request-Id reqID (none if empty).
func send(t *testing.T, ctx context.Context, method, url, bearer, reqID string, body any) (*http.Response, []byte) {
	t.Helper()
	var in io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		in = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, in)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if reqID != "" {
		req.Header.Set(apitype.HeaderRequestID, reqID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// scrape reads /metrics with the scraper's token through the Prometheus
// text parser.
func scrape(t *testing.T, ctx context.Context, f *fleettest.Fleet) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := send(t, ctx, http.MethodGet, f.URL+"/metrics", metricsToken, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics with the metrics token: %d %s", resp.StatusCode, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// sample finds the metric of family name whose labels include want.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	fam := fams[name]
	if fam == nil {
		return nil
	}
next:
	for _, m := range fam.GetMetric() {
		for k, v := range want {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || lp.GetName() == k && lp.GetValue() == v
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

func counter(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	return sample(fams, name, labels).GetCounter().GetValue() // nil-safe: 0 when absent
}

func histCount(fams map[string]*dto.MetricFamily, name string, labels map[string]string) uint64 {
	return sample(fams, name, labels).GetHistogram().GetSampleCount()
}

// TestObservability runs a real fleet (local runtime) and checks what its
// operators see: /ready once reconciled, request ids in the answer, the
// log and the audit, and /metrics moving with real actions and a task.
func TestObservability(t *testing.T) {
	var logs fleettest.SyncWriter
	f := fleettest.New(t, fleettest.Options{Token: token, MetricsToken: metricsToken,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	// /ready passes once the first reconcile is done (500ms in tests).
	for {
		resp, body := send(t, ctx, http.MethodGet, f.URL+"/ready", "", "", nil)
		if resp.StatusCode == http.StatusOK {
			if !strings.Contains(string(body), `"store"`) || !strings.Contains(string(body), `"runtime"`) || !strings.Contains(string(body), `"sessions"`) {
				t.Errorf("/ready: %s, want the store, runtime and sessions checks named", body)
			}
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "sessions:") {
			t.Fatalf("/ready before the first reconcile: %d %s, want 503 naming the sessions", resp.StatusCode, body)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("/ready never passed: %d %s", resp.StatusCode, body)
		case <-time.After(100 * time.Millisecond):
		}
	}

	if resp, _ := send(t, ctx, http.MethodGet, f.URL+"/metrics", "", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := send(t, ctx, http.MethodGet, f.URL+"/metrics", "wrong-token-0123456789", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics with a wrong token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := send(t, ctx, http.MethodGet, f.URL+"/sessions", metricsToken, "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /sessions with the metrics token: %d, want 401 (it opens /metrics alone)", resp.StatusCode)
	}
	if resp, _ := send(t, ctx, http.MethodGet, f.URL+"/metrics", token, "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/metrics with the API token: %d, want 200", resp.StatusCode)
	}
	before := scrape(t, ctx, f)
	if before["go_goroutines"] == nil || before["process_cpu_seconds_total"] == nil {
		t.Errorf("/metrics lacks the Go and process collectors")
	}

	if g := sample(before, "atelier_audit_fsync_mode", map[string]string{"mode": "always"}).GetGauge().GetValue(); g != 1 {
		t.Errorf("atelier_audit_fsync_mode{always} = %v, want 1 (the default policy)", g)
	}

	const createID = "observe-create-1"
	resp, body := send(t, ctx, http.MethodPost, f.URL+"/sessions?wait=ready", token, createID, map[string]any{"label": "observe"})
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var s apitype.Session
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	move := map[string]string{"verb": "mouse_move", "outcome": "ok"}
	const reqID = "observe-move-1"
	resp, body = send(t, ctx, http.MethodPost, f.URL+"/sessions/"+s.ID+"/actions", token, reqID,
		map[string]any{"action": "mouse_move", "coordinate": []int{300, 200}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("act: %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get(apitype.HeaderRequestID); got != reqID {
		t.Errorf("the action's answer carries request id %q, want %q", got, reqID)
	}
	act(t, f.Client, s.ID, map[string]any{"action": "mouse_move", "coordinate": []int{310, 210}})
	// A refused action counts under its code.
	resp, body = send(t, ctx, http.MethodPost, f.URL+"/sessions/"+s.ID+"/actions", token, "",
		[]map[string]any{{"action": "wait", "duration": 0.01}, {"action": "key", "text": "no-such-key-xyz"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("act with a failing key: %d %s", resp.StatusCode, body)
	}

	// A screenshot through the API, and one observation after an action.
	if _, err := f.Client.Screenshot(ctx, s.ID, client.ScreenshotOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, body = send(t, ctx, http.MethodPost, f.URL+"/sessions/"+s.ID+"/actions", token, "",
		map[string]any{"actions": []map[string]any{{"action": "mouse_move", "coordinate": []int{320, 220}}}, "observe": true, "settle": 0.01})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("act and observe: %d %s", resp.StatusCode, body)
	}

	// An audit follow is an open stream while it lasts.
	sctx, stopFollow := context.WithCancel(ctx)
	followDone := make(chan struct{})
	go func() {
		defer close(followDone)
		req, _ := http.NewRequestWithContext(sctx, http.MethodGet, f.URL+"/sessions/"+s.ID+"/audit?follow=1", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	for open := 0.0; open != 1; {
		open = sample(scrape(t, ctx, f), "atelier_sse_streams_open", nil).GetGauge().GetValue()
		if ctx.Err() != nil {
			t.Fatalf("atelier_sse_streams_open = %v with an audit follow open, want 1", open)
		}
	}
	stopFollow()
	<-followDone

	script := []agentapi.Request{{Action: agentapi.MouseMove, Coordinate: &agentapi.Point{X: 50, Y: 60}}}
	spec := taskSpec("move the mouse", script...)
	spec.Backend = "scripted"
	const taskReqID = "observe-task-1"
	resp, body = send(t, ctx, http.MethodPost, f.URL+"/sessions/"+s.ID+"/task", token, taskReqID, spec)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %d %s", resp.StatusCode, body)
	}
	var sub apitype.TaskSubmitted
	if err := json.Unmarshal(body, &sub); err != nil {
		t.Fatal(err)
	}
	waitTasksDone(t, ctx, f, s.ID)
	if task, err := f.Client.Task(ctx, sub.TaskID); err != nil || task.Status != apitype.TaskDone {
		t.Fatalf("task %+v, %v: want done", task, err)
	}

	after := scrape(t, ctx, f)
	if d := histCount(after, "atelier_action_duration_seconds", move) - histCount(before, "atelier_action_duration_seconds", move); d != 4 {
		t.Errorf("atelier_action_duration_seconds{mouse_move,ok} count moved by %d, want 4", d)
	}
	if sample(after, "atelier_actions_total", map[string]string{"verb": "key"}) == nil ||
		counter(after, "atelier_actions_total", map[string]string{"verb": "key", "outcome": "ok"}) != 0 {
		t.Errorf("the failed key is not counted under its error code: %v", after["atelier_actions_total"])
	}
	if d := counter(after, "atelier_actions_total", move) - counter(before, "atelier_actions_total", move); d != 4 {
		t.Errorf("atelier_actions_total{mouse_move,ok} moved by %v, want 4 (three by the API, one by the task)", d)
	}
	// Screenshots: the API's, the observation's and one per task step.
	png := map[string]string{"format": "png"}
	if d := histCount(after, "atelier_screenshot_duration_seconds", png) - histCount(before, "atelier_screenshot_duration_seconds", png); d != 4 {
		t.Errorf("atelier_screenshot_duration_seconds{png} count moved by %d, want 4", d)
	}
	if b := sample(after, "atelier_screenshot_bytes", png).GetHistogram(); b.GetSampleCount() != 4 || b.GetSampleSum() < 4*1000 {
		t.Errorf("atelier_screenshot_bytes{png}: %d screenshots of %v bytes, want 4 of a kilobyte or more each", b.GetSampleCount(), b.GetSampleSum())
	}
	scripted := map[string]string{"backend": "scripted", "outcome": "ok"}
	if n := histCount(after, "atelier_model_request_duration_seconds", scripted); n != 2 {
		t.Errorf("atelier_model_request_duration_seconds{scripted,ok} count = %d, want 2 (one per step)", n)
	}
	if n := counter(after, "atelier_tasks_started_total", map[string]string{"backend": "scripted"}); n != 1 {
		t.Errorf("atelier_tasks_started_total{scripted} = %v, want 1", n)
	}
	if n := histCount(after, "atelier_task_duration_seconds", map[string]string{"backend": "scripted", "status": "done"}); n != 1 {
		t.Errorf("atelier_task_duration_seconds{scripted,done} count = %d, want 1", n)
	}
	// Every action and lifecycle event is an audit append.
	okAppend := map[string]string{"outcome": "ok"}
	if d := histCount(after, "atelier_audit_append_duration_seconds", okAppend) - histCount(before, "atelier_audit_append_duration_seconds", okAppend); d < 8 {
		t.Errorf("atelier_audit_append_duration_seconds{ok} count moved by %d, want one per audited event (8 or more)", d)
	}
	if g := sample(after, "atelier_sse_streams_open", nil).GetGauge().GetValue(); g != 0 {
		t.Errorf("atelier_sse_streams_open = %v once the follow ended, want 0", g)
	}
	if d := counter(after, "atelier_task_steps_total", nil) - counter(before, "atelier_task_steps_total", nil); d != 2 {
		t.Errorf("atelier_task_steps_total moved by %v, want 2 (the move, then the finish)", d)
	}
	if d := counter(after, "atelier_tasks_finished_total", map[string]string{"status": "done"}); d != 1 {
		t.Errorf("atelier_tasks_finished_total{done} = %v, want 1", d)
	}
	if g := sample(after, "atelier_sessions", map[string]string{"state": "ready", "runtime": "local"}).GetGauge().GetValue(); g != 1 {
		t.Errorf("atelier_sessions{ready,local} = %v, want 1", g)
	}
	if sample(after, "atelier_budget_cap_usd", nil) == nil || sample(after, "atelier_budget_spent_usd", nil) == nil {
		t.Errorf("/metrics lacks the budget's gauges")
	}

	// The request id is in the request's log lines, those of the parts
	// below the API it reached, and its audit entries.
	for _, want := range []struct{ msg, id string }{
		{"request", reqID}, {"session created", createID}, {"task started", taskReqID}, {"task ended", taskReqID},
	} {
		if !hasLogLine(t, logs.String(), want.msg, want.id) {
			t.Errorf("no log line %q carries request id %s", want.msg, want.id)
		}
	}
	status, body := apiCall(t, ctx, f, http.MethodGet, "/sessions/"+s.ID+"/audit?kind=action", nil)
	if status != http.StatusOK {
		t.Fatalf("audit: %d %s", status, body)
	}
	var tagged []audit.Entry
	for _, e := range decodeEntries(t, body) {
		if e.RequestID == reqID {
			tagged = append(tagged, e)
		}
	}
	if len(tagged) != 1 || !strings.Contains(string(tagged[0].Action), "mouse_move") {
		t.Errorf("audit entries with request id %s: %+v, want the one mouse_move", reqID, tagged)
	}
	// The task's action is audited under the request that started it.
	var byTask []audit.Entry
	for _, e := range decodeEntries(t, body) {
		if e.Actor == audit.ActorTask+sub.TaskID {
			byTask = append(byTask, e)
		}
	}
	if len(byTask) != 1 || byTask[0].RequestID != taskReqID {
		t.Errorf("the task's audited actions: %+v, want one with request id %s", byTask, taskReqID)
	}
}

// hasLogLine says whether the JSON log holds a line with message msg and
// request id id.
func hasLogLine(t *testing.T, log, msg, id string) bool {
	t.Helper()
	for line := range strings.Lines(log) {
		var rec struct {
			Msg       string `json:"msg"`
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == msg && rec.RequestID == id {
			return true
		}
	}
	return false
}

// TestSpendMetrics runs a Holo task against a fake model server speaking
// the OpenAI wire format, and checks the model metrics move with its real
// usage and cost: tokens by kind, spend by backend and model, today's
// spend, one latency sample per call.
func TestSpendMetrics(t *testing.T) {
	srv := modeltest.OpenAISteps(t, []modeltest.OpenAIStep{
		holoStep("Look first.", map[string]any{"tool_name": "wait", "seconds": 0.1}, 0),
		holoStep("Nothing to do.", map[string]any{"tool_name": "answer", "content": "done"}, 0),
	})
	f := fleettest.New(t, fleettest.Options{Token: token, MetricsToken: metricsToken, Model: config.Model{Backend: "holo", HoloEndpoint: srv.URL}})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "spend"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	before := scrape(t, ctx, f)
	sub, err := f.Client.SubmitTask(ctx, s.ID, taskSpec("look around"))
	if err != nil {
		t.Fatal(err)
	}
	waitTasksDone(t, ctx, f, s.ID)
	task := getTask(t, ctx, f, sub.TaskID)
	if task.Status != apitype.TaskDone || task.CostUSD <= 0 {
		t.Fatalf("task %s cost %v: want done at a price", task.Status, task.CostUSD)
	}
	after := scrape(t, ctx, f)
	holo := map[string]string{"backend": "holo", "model": task.Model}
	for kind, want := range map[string]float64{"input": 2 * 2400, "output": 2 * 80} {
		labels := map[string]string{"backend": "holo", "model": task.Model, "kind": kind}
		if got := counter(after, "atelier_model_tokens_total", labels); got != want {
			t.Errorf("atelier_model_tokens_total%v = %v, want %v", labels, got, want)
		}
	}
	if got := counter(after, "atelier_model_cost_usd_total", holo); math.Abs(got-task.CostUSD) > 1e-12 {
		t.Errorf("atelier_model_cost_usd_total%v = %v, want the task's cost %v", holo, got, task.CostUSD)
	}
	spent := func(fams map[string]*dto.MetricFamily) float64 {
		return sample(fams, "atelier_budget_spent_usd", nil).GetGauge().GetValue()
	}
	if d := spent(after) - spent(before); math.Abs(d-task.CostUSD) > 1e-9 {
		t.Errorf("atelier_budget_spent_usd moved by %v, want the task's cost %v", d, task.CostUSD)
	}
	if n := histCount(after, "atelier_model_request_duration_seconds", map[string]string{"backend": "holo", "outcome": "ok"}); n != 2 {
		t.Errorf("atelier_model_request_duration_seconds{holo,ok} count = %d, want 2", n)
	}
}
