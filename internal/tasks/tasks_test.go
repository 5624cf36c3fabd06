package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"atelier/internal/agentapi"
	fleetapi "atelier/internal/api"
	"atelier/internal/apitype"
	"atelier/internal/budget"
	"atelier/internal/model"
	"atelier/internal/model/anthropic"
	"atelier/internal/model/holo"
	"atelier/internal/model/modeltest"
	"atelier/internal/model/scripted"
	"atelier/internal/store"
	"atelier/internal/tasks"
)

type fixture struct {
	st     *store.Store
	budget *budget.Budget
	m      *tasks.Manager
	dir    string
}

func newFixture(t testing.TB, d tasks.Desktops, capUSD float64, mutate func(*tasks.Options)) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, err := budget.New(t.Context(), budget.Options{Store: st, CapUSD: capUSD})
	if err != nil {
		t.Fatal(err)
	}
	opts := tasks.Options{
		Store: st, Budget: b, Desktops: d, DataDir: dir,
		Backends:       map[string]tasks.Backend{"scripted": scripted.Backend{}},
		DefaultBackend: "scripted",
	}
	if mutate != nil {
		mutate(&opts)
	}
	m, err := tasks.New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &fixture{st: st, budget: b, m: m, dir: dir}
}

// wait follows a task to its end and returns its final record.
func (f *fixture) wait(t testing.TB, id string) tasks.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	evs, err := f.m.Subscribe(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range evs {
	}
	if ctx.Err() != nil {
		t.Fatalf("task %s did not end in 60s", id)
	}
	// The end event precedes the store's final write by a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := f.m.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != tasks.StatusRunning {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still running after its end event", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ledgerTotal(t *testing.T, st *store.Store) (float64, []store.LedgerEntry) {
	t.Helper()
	led, err := st.Ledger(t.Context(), budget.Day(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, e := range led {
		total += e.USD
	}
	return total, led
}

// TestHoloOpensTerminalAndTypes replays a Holo3 transcript against a real
// desktop: the typed command must create the file in the desktop's home.
func TestHoloOpensTerminalAndTypes(t *testing.T) {
	d := startDesktop(t)
	srv := modeltest.OpenAI(t, modeltest.Transcript("holo_open_terminal.json"))
	f := newFixture(t, desktops{byID: map[string]*agentapi.Client{"s1": d.client}}, 0, func(o *tasks.Options) {
		o.Backends["holo"] = holo.New(holo.Options{Endpoint: srv.URL})
		o.DefaultBackend = "holo"
		// A configured price for the local model: it is then charged.
		o.Prices = model.DefaultPrices().Merge(model.Prices{holo.DefaultModel: {Input: 0.25, Output: 1.8, CacheRead: 0.025}})
	})
	task, err := f.m.Submit(t.Context(), "s1", tasks.Spec{Goal: "run echo holo-ok > ~/done in a terminal"})
	if err != nil {
		t.Fatal(err)
	}
	got := f.wait(t, task.ID)
	if got.Status != tasks.StatusDone || got.Answer != "Wrote holo-ok to ~/done from a terminal." || got.Steps != 5 {
		t.Fatalf("task = %s %q after %d steps (%s), want done after 5", got.Status, got.Answer, got.Steps, got.Error)
	}
	waitFile(t, filepath.Join(d.sway.Dir, "done"), "holo-ok")

	total, led := ledgerTotal(t, f.st)
	if len(led) != 5 || math.Abs(total-got.CostUSD) > 1e-9 || total <= 0 {
		t.Errorf("ledger: %d entries totalling %v; task cost %v", len(led), total, got.CostUSD)
	}
	// Step 2: 3702 prompt tokens of which 2304 cached, 71 out.
	if want := (1398*0.25 + 2304*0.025 + 71*1.8) / 1e6; math.Abs(led[1].USD-want) > 1e-9 || led[1].Step != 2 || led[1].SessionID != "s1" {
		t.Errorf("ledger step 2 = %+v, want %.9f USD", led[1], want)
	}
	last := got.Events[len(got.Events)-1]
	if last.Type != tasks.EventEnd || last.Status != tasks.StatusDone {
		t.Errorf("last event = %+v, want the end", last)
	}
	step1 := got.Events[0]
	if step1.Thought != "Open a terminal with super+Return." || len(step1.Results) != 1 || !step1.Results[0].OK || step1.Screenshot == "" {
		t.Errorf("step 1 = %+v", step1)
	}
	path, err := f.m.ScreenshotPath(task.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); len(b) < 8 || string(b[1:4]) != "PNG" {
		t.Errorf("step screenshot %s is not a PNG", path)
	}
}

// TestAnthropicOpensTerminalAndTypes replays a Claude transcript (two
// tool_use blocks in one reply) against a real desktop.
func TestAnthropicOpensTerminalAndTypes(t *testing.T) {
	d := startDesktop(t)
	srv := modeltest.Anthropic(t, modeltest.Transcript("anthropic_open_terminal.json"))
	f := newFixture(t, desktops{byID: map[string]*agentapi.Client{"s1": d.client}}, 5, func(o *tasks.Options) {
		o.Backends["anthropic"] = anthropic.New(anthropic.Options{APIKey: "sk-ant-test", BaseURL: srv.URL})
	})
	task, err := f.m.Submit(t.Context(), "s1", tasks.Spec{Goal: "run echo claude-ok > ~/done in a terminal", Backend: "anthropic"})
	if err != nil {
		t.Fatal(err)
	}
	got := f.wait(t, task.ID)
	if got.Status != tasks.StatusDone || got.Steps != 4 {
		t.Fatalf("task = %s after %d steps (%s), want done after 4", got.Status, got.Steps, got.Error)
	}
	waitFile(t, filepath.Join(d.sway.Dir, "done"), "claude-ok")
	total, led := ledgerTotal(t, f.st)
	// Sonnet 4.5 at $3 / $15 per million: 2618+3905+5211+6530 in, 97+61+143+24 out.
	want := (float64(2618+3905+5211+6530)*3 + float64(97+61+143+24)*15) / 1e6
	if len(led) != 4 || math.Abs(total-want) > 1e-9 || math.Abs(got.CostUSD-want) > 1e-9 {
		t.Errorf("ledger %d entries, %.6f USD; task %.6f; want %.6f", len(led), total, got.CostUSD, want)
	}
	if tb, _ := f.budget.Today(t.Context()); math.Abs(tb.SpentUSD-want) > 1e-9 || tb.ReservedUSD != 0 {
		t.Errorf("budget today = %+v", tb)
	}
	// Every request after the first answered each tool_use with a screenshot.
	for i, r := range srv.Requests()[1:] {
		if !strings.Contains(string(r.Raw), `"tool_result"`) || !strings.Contains(string(r.Raw), `"media_type":"image/png"`) {
			t.Errorf("request %d lacks a tool_result with the screenshot", i+2)
		}
	}
}

// TestFiftySubmitsOneAccepted sends 50 simultaneous POST /sessions/s1/task
// requests: exactly one is accepted, the rest get 409 task_running. The
// running task (a long wait) is then cancelled mid-action and ends within
// the step.
func TestFiftySubmitsOneAccepted(t *testing.T) {
	d := startDesktop(t)
	f := newFixture(t, desktops{byID: map[string]*agentapi.Client{"s1": d.client}}, 0, nil)
	api := httptest.NewServer(fleetapi.New(fleetapi.Options{Tasks: f.m}).Handler())
	defer api.Close()

	body := `{"goal":"hold still","script":[{"action":"wait","duration":0.01},{"action":"wait","duration":30}]}`
	var (
		mu       sync.Mutex
		accepted []apitype.TaskSubmitted
		codes    = map[int]int{}
		wg       sync.WaitGroup
	)
	start := make(chan struct{})
	for range 50 {
		wg.Go(func() {
			<-start
			resp, err := http.Post(api.URL+"/sessions/s1/task", "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			codes[resp.StatusCode]++
			switch resp.StatusCode {
			case http.StatusAccepted:
				var sr apitype.TaskSubmitted
				json.NewDecoder(resp.Body).Decode(&sr)
				accepted = append(accepted, sr)
			case http.StatusConflict:
				var e struct {
					Error struct{ Code, Message string }
				}
				json.NewDecoder(resp.Body).Decode(&e)
				if e.Error.Code != "task_running" {
					t.Errorf("409 code %q, want task_running", e.Error.Code)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if len(accepted) != 1 || codes[http.StatusConflict] != 49 {
		t.Fatalf("status codes %v: want one 202 and 49 409s", codes)
	}
	sr := accepted[0]
	if sr.Status != apitype.TaskRunning || sr.StreamURL != "/tasks/"+sr.TaskID+"/stream" {
		t.Errorf("202 body = %+v", sr)
	}
	rows, _ := f.st.ListTasks(t.Context(), "s1", 100)
	if len(rows) != 1 {
		t.Errorf("store holds %d tasks for s1, want 1", len(rows))
	}

	// Step 1 is a short wait; once it is reported, give the loop time to
	// settle and start step 2's 30 s wait, then cancel in the middle of it.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	evs, _ := f.m.Subscribe(ctx, sr.TaskID, 0)
	if ev := <-evs; ev.Step != 1 {
		t.Fatalf("first event = %+v", ev)
	}
	<-time.After(time.Second)
	t0 := time.Now()
	resp, err := http.Post(api.URL+"/tasks/"+sr.TaskID+"/cancel", "application/json", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("cancel: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	var last tasks.Event
	for ev := range evs {
		last = ev
	}
	took := time.Since(t0)
	if last.Type != tasks.EventEnd || last.Status != tasks.StatusCancelled {
		t.Fatalf("last event = %+v, want the end, cancelled", last)
	}
	if took > 5*time.Second {
		t.Errorf("cancel took %v, want well within the 30 s action", took)
	}
	t.Logf("cancel mid-action took %v", took)
	got := f.wait(t, sr.TaskID)
	if got.Status != tasks.StatusCancelled {
		t.Errorf("stored status %s, want cancelled", got.Status)
	}
	// Free again: a new task is accepted.
	if _, err := f.m.Submit(t.Context(), "s1", tasks.Spec{Script: []agentapi.Request{{Action: agentapi.Wait, Duration: 0.01}}}); err != nil {
		t.Errorf("submit after cancel: %v", err)
	}
	resp, _ = http.Post(api.URL+"/tasks/"+sr.TaskID+"/cancel", "application/json", nil)
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("cancelling an ended task: %s, want 409", resp.Status)
	}
	resp.Body.Close()
}

// TestTasksAcrossSessionsNeverOvershootCap runs 20 Claude tasks on 20
// sessions against a cap that allows only a few calls: every task stops
// with budget_exhausted and the ledger stays under the cap.
func TestTasksAcrossSessionsNeverOvershootCap(t *testing.T) {
	d := startDesktop(t)
	steps := make([]modeltest.AnthropicStep, 400)
	for i := range steps {
		steps[i] = modeltest.AnthropicStep{
			Content: []json.RawMessage{json.RawMessage(fmt.Sprintf(`{"type":"tool_use","id":"toolu_%04d","name":"computer","input":{"action":"wait","duration":0.05}}`, i))},
			Usage:   modeltest.AnthropicUsage{InputTokens: 3000, OutputTokens: 200},
		}
	}
	srv := modeltest.AnthropicSteps(t, steps)
	const capUSD = 0.25
	f := newFixture(t, desktops{fallback: d.client}, capUSD, func(o *tasks.Options) {
		o.Backends["anthropic"] = anthropic.New(anthropic.Options{APIKey: "k", BaseURL: srv.URL, MaxTokens: 1024})
		o.SettleMax = 10 * time.Millisecond
	})
	var ids []string
	for i := range 20 {
		task, err := f.m.Submit(t.Context(), fmt.Sprintf("s%02d", i), tasks.Spec{Goal: "spin", Backend: "anthropic", MaxSteps: 20})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, task.ID)
	}
	statuses := map[tasks.Status]int{}
	for _, id := range ids {
		statuses[f.wait(t, id).Status]++
	}
	total, led := ledgerTotal(t, f.st)
	if total > capUSD+1e-9 {
		t.Fatalf("ledger total %.6f passed the cap %.2f", total, capUSD)
	}
	if statuses[tasks.StatusBudgetExhausted] != 20 {
		t.Errorf("statuses %v, want all 20 budget_exhausted", statuses)
	}
	t.Logf("%d calls, %.4f USD of %.2f", len(led), total, capUSD)
}

func holoAnswer(s string) json.RawMessage {
	return json.RawMessage(`{"note":null,"thought":"done","tool_call":{"tool_name":"answer","content":"` + s + `"}}`)
}

// TestModelFailures drives the loop through each failure of the model
// against a real desktop.
func TestModelFailures(t *testing.T) {
	d := startDesktop(t)
	tests := []struct {
		name       string
		steps      []modeltest.OpenAIStep
		status     tasks.Status
		errHas     string
		stepErrors int
	}{
		{"500 then success", []modeltest.OpenAIStep{{Status: 500, Error: "boom"}, {Content: holoAnswer("ok")}}, tasks.StatusDone, "", 0},
		{"malformed then fixed", []modeltest.OpenAIStep{{Content: json.RawMessage(`"click the thing"`)}, {Content: holoAnswer("ok")}}, tasks.StatusDone, "", 1},
		{"malformed twice", []modeltest.OpenAIStep{{Content: json.RawMessage(`"click"`)}, {Content: json.RawMessage(`{"x":1}`)}}, tasks.StatusFailed, "unusable twice", 2},
		{"invalid action fed back", []modeltest.OpenAIStep{
			{Content: json.RawMessage(`{"note":null,"thought":"t","tool_call":{"tool_name":"key_press","keys":""}}`)},
			{Content: holoAnswer("ok")},
		}, tasks.StatusDone, "", 1},
		{"timeout", []modeltest.OpenAIStep{{Hang: true}}, tasks.StatusFailed, "no reply within", 0},
		{"bad request", []modeltest.OpenAIStep{{Status: 400, Error: "too many images"}}, tasks.StatusFailed, "400", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := modeltest.OpenAISteps(t, tt.steps)
			f := newFixture(t, desktops{byID: map[string]*agentapi.Client{"s1": d.client}}, 0, func(o *tasks.Options) {
				o.Backends["holo"] = holo.New(holo.Options{Endpoint: srv.URL, MaxRetries: 1})
				o.ModelTimeout = 10 * time.Second
				if tt.name == "timeout" {
					o.ModelTimeout = 500 * time.Millisecond
				}
			})
			task, err := f.m.Submit(t.Context(), "s1", tasks.Spec{Goal: "g", Backend: "holo"})
			if err != nil {
				t.Fatal(err)
			}
			got := f.wait(t, task.ID)
			if got.Status != tt.status || !strings.Contains(got.Error, tt.errHas) {
				t.Fatalf("task = %s %q, want %s with %q", got.Status, got.Error, tt.status, tt.errHas)
			}
			n := 0
			for _, ev := range got.Events {
				if ev.Type == tasks.EventStep && ev.Error != "" {
					n++
				}
			}
			if n != tt.stepErrors {
				t.Errorf("%d step errors, want %d: %+v", n, tt.stepErrors, got.Events)
			}
		})
	}
}

// TestDesktopGoneMidTask stops the desktop's agent while a task runs: the
// task fails with a desktop error instead of hanging.
func TestDesktopGoneMidTask(t *testing.T) {
	d := startDesktop(t)
	f := newFixture(t, desktops{byID: map[string]*agentapi.Client{"s1": d.client}}, 0, nil)
	script := []agentapi.Request{{Action: agentapi.Wait, Duration: 0.1}, {Action: agentapi.Wait, Duration: 0.1}, {Action: agentapi.Wait, Duration: 0.1}}
	task, err := f.m.Submit(t.Context(), "s1", tasks.Spec{Goal: "wait", Script: script})
	if err != nil {
		t.Fatal(err)
	}
	evs, _ := f.m.Subscribe(t.Context(), task.ID, 0)
	<-evs // the first step ran
	d.stop()
	got := f.wait(t, task.ID)
	if got.Status != tasks.StatusFailed || !strings.Contains(got.Error, "desktop") {
		t.Fatalf("task = %s %q, want failed with a desktop error", got.Status, got.Error)
	}
}

// TestRestartInterruptsRunningTasks: a task left running by a fleet that
// died, and one running when the manager closes, both end interrupted.
func TestRestartInterruptsRunningTasks(t *testing.T) {
	d := startDesktop(t)
	f := newFixture(t, desktops{byID: map[string]*agentapi.Client{"s1": d.client}}, 0, nil)
	orphan := store.Task{ID: "task_00000000000000aa", SessionID: "s2", Goal: "g", Backend: "scripted", MaxSteps: 5, Status: "running", CreatedAt: time.Now()}
	if err := f.st.InsertTask(t.Context(), orphan); err != nil {
		t.Fatal(err)
	}
	task, err := f.m.Submit(t.Context(), "s1", tasks.Spec{Script: []agentapi.Request{{Action: agentapi.Wait, Duration: 30}}})
	if err != nil {
		t.Fatal(err)
	}
	f.m.Close()
	m2, err := tasks.New(t.Context(), tasks.Options{Store: f.st, Budget: f.budget, Desktops: desktops{}, DataDir: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	for _, id := range []string{orphan.ID, task.ID} {
		got, err := m2.Get(t.Context(), id)
		if err != nil || got.Status != tasks.StatusInterrupted {
			t.Errorf("task %s after restart = %s, %v; want interrupted", id, got.Status, err)
		}
	}
}

// TestStreamResumes reads a finished task's SSE stream whole, then resumes
// it with Last-Event-ID.
func TestStreamResumes(t *testing.T) {
	d := startDesktop(t)
	f := newFixture(t, desktops{byID: map[string]*agentapi.Client{"s1": d.client}}, 0, nil)
	api := httptest.NewServer(fleetapi.New(fleetapi.Options{Tasks: f.m}).Handler())
	defer api.Close()

	script := []agentapi.Request{{Action: agentapi.MouseMove, Coordinate: &agentapi.Point{X: 10, Y: 10}}, {Action: agentapi.Wait, Duration: 0.05}}
	task, err := f.m.Submit(t.Context(), "s1", tasks.Spec{Goal: "move", Script: script})
	if err != nil {
		t.Fatal(err)
	}
	// Follow live from the start.
	live := readSSE(t, api.URL+"/tasks/"+task.ID+"/stream", "")
	if len(live) != 4 || live[3].Type != apitype.EventEnd || live[3].Status != apitype.TaskDone {
		t.Fatalf("live stream = %+v, want 3 steps and the end", live)
	}
	for i, ev := range live {
		if ev.ID != i+1 {
			t.Errorf("event %d has id %d", i, ev.ID)
		}
	}
	f.wait(t, task.ID)
	resumed := readSSE(t, api.URL+"/tasks/"+task.ID+"/stream", "2")
	if len(resumed) != 2 || resumed[0].ID != 3 {
		t.Fatalf("resumed after 2 = %+v, want events 3 and 4", resumed)
	}
	resp, err := http.Get(api.URL + live[0].Screenshot)
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Errorf("step screenshot: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	for _, path := range []string{"/tasks/task_nope/stream", "/tasks/../../etc/steps/1/screenshot", "/tasks/" + task.ID + "/steps/99/screenshot"} {
		resp, _ := http.Get(api.URL + path)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, resp.Status)
		}
		resp.Body.Close()
	}
	resp, _ = http.Get(api.URL + "/sessions/s1/tasks")
	var list struct{ Tasks []tasks.Task }
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Tasks) != 1 || list.Tasks[0].ID != task.ID || list.Tasks[0].Steps != 3 {
		t.Errorf("history = %+v", list.Tasks)
	}
}

func readSSE(t *testing.T, url, lastID string) []apitype.TaskEvent {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	evs, err := apitype.ReadEvents(resp.Body, nil)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestSubmitRefusesBadSpecs checks every bad input gets a clear error and
// records nothing.
func TestSubmitRefusesBadSpecs(t *testing.T) {
	f := newFixture(t, desktops{fallback: agentapi.UnixClient("/nonexistent")}, 0, nil)
	tests := []struct {
		name string
		spec tasks.Spec
		want error
	}{
		{"empty", tasks.Spec{}, tasks.ErrInvalid},
		{"blank goal", tasks.Spec{Goal: "  "}, tasks.ErrInvalid},
		{"unknown backend", tasks.Spec{Goal: "g", Backend: "gpt"}, tasks.ErrInvalid},
		{"negative steps", tasks.Spec{Goal: "g", MaxSteps: -1}, tasks.ErrInvalid},
		{"too many steps", tasks.Spec{Goal: "g", MaxSteps: tasks.MaxMaxSteps + 1}, tasks.ErrInvalid},
		{"negative usd", tasks.Spec{Goal: "g", MaxUSD: -1}, tasks.ErrInvalid},
		{"NaN usd", tasks.Spec{Goal: "g", MaxUSD: math.NaN()}, tasks.ErrInvalid},
		{"huge goal", tasks.Spec{Goal: strings.Repeat("x", tasks.MaxGoalBytes+1)}, tasks.ErrInvalid},
		{"scripted without script", tasks.Spec{Goal: "g", Backend: "scripted"}, tasks.ErrInvalid},
		{"bad script action", tasks.Spec{Goal: "g", Script: []agentapi.Request{{Action: "explode"}}}, tasks.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.m.Submit(t.Context(), "s1", tt.spec); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	noDesk := newFixture(t, desktops{}, 0, nil)
	if _, err := noDesk.m.Submit(t.Context(), "ghost", tasks.Spec{Goal: "g", Script: []agentapi.Request{{Action: agentapi.Wait, Duration: 1}}}); !errors.Is(err, tasks.ErrNoDesktop) {
		t.Errorf("unknown session: got %v, want ErrNoDesktop", err)
	}
	for _, fx := range []*fixture{f, noDesk} {
		if rows, _ := fx.st.ListTasks(t.Context(), "s1", 10); len(rows) != 0 {
			t.Errorf("refused submits recorded %d tasks", len(rows))
		}
	}
	if _, err := f.m.Get(t.Context(), "task_0000000000000000"); !errors.Is(err, tasks.ErrNotFound) {
		t.Errorf("Get unknown: %v", err)
	}
	if err := f.m.Cancel(t.Context(), "task_0000000000000000"); !errors.Is(err, tasks.ErrNotFound) {
		t.Errorf("Cancel unknown: %v", err)
	}
}

// TestCoordinatesLandOnTheDesktop drives a 1920x1080 desktop with each
// backend's convention and reads back where the pointer went: Holo's
// (500, 250) of 1000 is (960, 270); Claude, shown a 1280x720 screenshot,
// clicks (640, 360), which is (960, 540) of the output.
func TestCoordinatesLandOnTheDesktop(t *testing.T) {
	d := startDesktopAt(t, 1920, 1080)
	holoSrv := modeltest.OpenAISteps(t, []modeltest.OpenAIStep{
		{Content: json.RawMessage(`{"note":null,"thought":"t","tool_call":{"tool_name":"mouse_move","element":"target","x":500,"y":250}}`)},
		{Content: holoAnswer("ok")},
	})
	claudeSrv := modeltest.AnthropicSteps(t, []modeltest.AnthropicStep{
		{Content: []json.RawMessage{json.RawMessage(`{"type":"tool_use","id":"toolu_1","name":"computer","input":{"action":"mouse_move","coordinate":[640,360]}}`)}},
		{Content: []json.RawMessage{json.RawMessage(`{"type":"text","text":"done"}`)}},
	})
	f := newFixture(t, desktops{fallback: d.client}, 0, func(o *tasks.Options) {
		o.Backends["holo"] = holo.New(holo.Options{Endpoint: holoSrv.URL})
		o.Backends["anthropic"] = anthropic.New(anthropic.Options{APIKey: "k", BaseURL: claudeSrv.URL})
	})
	for _, tt := range []struct {
		backend string
		want    agentapi.Point
	}{{"holo", agentapi.Point{X: 960, Y: 270}}, {"anthropic", agentapi.Point{X: 960, Y: 540}}} {
		task, err := f.m.Submit(t.Context(), "s-"+tt.backend, tasks.Spec{Goal: "point", Backend: tt.backend})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.wait(t, task.ID); got.Status != tasks.StatusDone {
			t.Fatalf("%s: %s %s", tt.backend, got.Status, got.Error)
		}
		resp, err := d.client.Do(t.Context(), agentapi.Request{Action: agentapi.CursorPosition})
		if err != nil || resp.Cursor == nil || *resp.Cursor != tt.want {
			t.Errorf("%s: pointer at %v (%v), want %v", tt.backend, resp.Cursor, err, tt.want)
		}
	}
	// Claude was shown the downscaled screenshot and told its size.
	var body struct {
		Tools []struct {
			Name string `json:"name"`
			W    int    `json:"display_width_px"`
			H    int    `json:"display_height_px"`
		} `json:"tools"`
	}
	json.Unmarshal(claudeSrv.Requests()[0].Raw, &body)
	declared := 0
	for _, tool := range body.Tools {
		if tool.Name == "computer" {
			declared++
			if tool.W != 1280 || tool.H != 720 {
				t.Errorf("declared display = %dx%d, want 1280x720", tool.W, tool.H)
			}
		}
	}
	if declared != 1 {
		t.Errorf("tools %+v: want one computer tool", body.Tools)
	}
}

// TestPointerPositionOnlyForPointerActions: the tool_result Claude gets
// for a key or a wait says nothing of the pointer; a pointer action's
// reports where the pointer is, in the declared display's pixels.
func TestPointerPositionOnlyForPointerActions(t *testing.T) {
	d := startDesktop(t)
	use := func(id, input string) json.RawMessage {
		return json.RawMessage(`{"type":"tool_use","id":"` + id + `","name":"computer","input":` + input + `}`)
	}
	srv := modeltest.AnthropicSteps(t, []modeltest.AnthropicStep{
		{Content: []json.RawMessage{use("toolu_1", `{"action":"key","text":"shift"}`), use("toolu_2", `{"action":"wait","duration":0.1}`),
			use("toolu_3", `{"action":"mouse_move","coordinate":[100,60]}`)}, Usage: modeltest.AnthropicUsage{InputTokens: 100, OutputTokens: 10}},
		claudeDone("done"),
	})
	f := newFixture(t, desktops{byID: map[string]*agentapi.Client{"s1": d.client}}, 0, func(o *tasks.Options) {
		o.Backends["anthropic"] = anthropic.New(anthropic.Options{APIKey: "sk-ant-test", BaseURL: srv.URL})
	})
	task, err := f.m.Submit(t.Context(), "s1", tasks.Spec{Goal: "g", Backend: "anthropic"})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.wait(t, task.ID); got.Status != tasks.StatusDone {
		t.Fatalf("task = %s (%s), want done", got.Status, got.Error)
	}
	results := map[string]string{}
	var body struct {
		Messages []struct {
			Content []struct {
				Type      string `json:"type"`
				ToolUseID string `json:"tool_use_id"`
				Content   []struct{ Type, Text string }
			} `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(srv.Requests()[1].Raw, &body); err != nil {
		t.Fatal(err)
	}
	for _, b := range body.Messages[len(body.Messages)-1].Content {
		results[b.ToolUseID] += ""
		for _, c := range b.Content {
			results[b.ToolUseID] += c.Text
		}
	}
	if len(results) != 3 || strings.Contains(results["toolu_1"], "X=") || strings.Contains(results["toolu_2"], "X=") || results["toolu_3"] != "X=100,Y=60" {
		t.Errorf("tool_result texts = %q; want none for key and wait, X=100,Y=60 for mouse_move", results)
	}
}
