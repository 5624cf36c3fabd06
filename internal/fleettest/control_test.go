package fleettest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
	"atelier/internal/audit"
	"atelier/internal/cli"
	"atelier/internal/client"
	"atelier/internal/config"
	"atelier/internal/control"
	"atelier/internal/fleettest"
	"atelier/internal/model/modeltest"
)

// holoStep is one Holo3 reply of a transcript: a thought and one tool call.
func holoStep(thought string, call map[string]any, delay time.Duration) modeltest.OpenAIStep {
	b, _ := json.Marshal(map[string]any{"note": nil, "thought": thought, "tool_call": call})
	return modeltest.OpenAIStep{Content: b, PromptTokens: 2400, CompletionTokens: 80, DelayMS: int(delay / time.Millisecond)}
}

// waitFor polls cond (bounded): the fleet announces nothing to a test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getTask(t *testing.T, ctx context.Context, f *fleettest.Fleet, id string) apitype.Task {
	t.Helper()
	task, err := f.Client.Task(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// taskSpec is a task's spec on the wire, with its script's actions.
func taskSpec(goal string, script ...agentapi.Request) apitype.TaskSpec {
	spec := apitype.TaskSpec{Goal: goal}
	for _, a := range script {
		b, _ := json.Marshal(a)
		spec.Script = append(spec.Script, b)
	}
	return spec
}

// requestText is every text part of a chat completion request, joined.
func requestText(r modeltest.Request) string {
	b, _ := json.Marshal(r.Body["messages"])
	return string(b)
}

// lastImage is the last screenshot (a data: URL) a request carries.
func lastImage(r modeltest.Request) string {
	msgs, _ := r.Body["messages"].([]any)
	img := ""
	for _, m := range msgs {
		parts, _ := m.(map[string]any)["content"].([]any)
		for _, p := range parts {
			if u, ok := p.(map[string]any)["image_url"].(map[string]any); ok {
				img, _ = u["url"].(string)
			}
		}
	}
	return img
}

// TestTakeoverAndHandBack runs a Holo task against a fake model server and
// takes the desktop over mid-step through the API: the step's action is
// refused and the task pauses; API input without the lease is refused while
// the person's input goes through (a file appears in the home); after the
// hand-back the model's next request carries a fresh screenshot and the
// person's note, and the audit log shows no task input while they held it.
func TestTakeoverAndHandBack(t *testing.T) {
	srv := modeltest.OpenAISteps(t, []modeltest.OpenAIStep{
		holoStep("Look at the desktop first.", map[string]any{"tool_name": "wait", "seconds": 0.1}, 0),
		// The test takes over while this reply is on its way.
		holoStep("Click the middle of the screen.", map[string]any{"tool_name": "click", "element": "desktop", "x": 500, "y": 500}, 1500*time.Millisecond),
		holoStep("A person handed back; the terminal they opened is visible.", map[string]any{"tool_name": "answer", "content": "done"}, 0),
	})
	f := fleettest.New(t, fleettest.Options{Token: token, Model: config.Model{Backend: "holo", HoloEndpoint: srv.URL}})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "takeover"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := f.Client.SubmitTask(ctx, s.ID, taskSpec("look around"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the model's second request", func() bool { return len(srv.Requests()) == 2 })

	lease, err := f.Client.TakeOver(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if lease.ID == "" || lease.PausedTask != sub.TaskID || lease.Holder.Kind != string(control.KindPerson) || lease.Holder.Who != audit.ActorToken+"api" {
		t.Fatalf("lease %+v: want a person's lease pausing %s", lease, sub.TaskID)
	}
	if _, err := f.Client.TakeOver(ctx, s.ID); !isCode(err, apitype.CodeControlHeld) {
		t.Errorf("a second takeover: %v; want 409 control_held", err)
	}
	var busy apitype.Error
	st, body := apiCall(t, ctx, f, http.MethodPost, "/sessions/"+s.ID+"/task", taskSpec("another"))
	if json.Unmarshal(body, &busy); st != http.StatusConflict || busy.Err.Code != "task_running" {
		t.Errorf("a task submitted while paused: %d %s; want 409 task_running", st, body)
	}

	// The step in flight finishes without acting, and no model call
	// follows while the person holds the desktop.
	waitFor(t, "step 2's event", func() bool { return len(getTask(t, ctx, f, sub.TaskID).Events) >= 3 })
	task := getTask(t, ctx, f, sub.TaskID)
	if task.Status != apitype.TaskPausedForHuman {
		t.Errorf("task status %s; want %s", task.Status, apitype.TaskPausedForHuman)
	}
	var paused, step2 *apitype.TaskEvent
	for i, ev := range task.Events {
		switch {
		case ev.Type == apitype.EventPaused:
			paused = &task.Events[i]
		case ev.Type == apitype.EventStep && ev.Step == 2:
			step2 = &task.Events[i]
		}
	}
	if paused == nil || paused.Holder == nil || paused.Holder.Kind != string(control.KindPerson) {
		t.Errorf("events %+v: want a paused_for_human event naming the person", task.Events)
	}
	if step2 == nil || len(step2.Results) != 1 || step2.Results[0].OK || !step2.Results[0].Skipped {
		t.Errorf("step 2 %+v: want its click not run", step2)
	}

	// Input without the lease is refused, naming the holder; with it, the
	// person's keys reach a terminal.
	_, err = f.Client.Act(ctx, s.ID, map[string]any{"action": "left_click", "coordinate": []int{10, 10}})
	if ce, ok := errors.AsType[*client.Error](err); !ok || ce.Code != apitype.CodeControlHeld || ce.Holder == nil || ce.Holder.Kind != "person" {
		t.Errorf("input without the lease: %v; want 409 control_held naming the person", err)
	}
	if _, err := f.Client.ActWithLease(ctx, s.ID, "lease_0123", map[string]any{"action": "left_click", "coordinate": []int{10, 10}}); !isCode(err, apitype.CodeBadLease) {
		t.Errorf("input with a wrong lease: %v; want 409 lease_invalid", err)
	}
	if _, err := f.Client.Act(ctx, s.ID, map[string]any{"action": "cursor_position"}); err != nil {
		t.Errorf("observation without the lease: %v; want it allowed", err)
	}
	inputs := typeCommand(t, f.Client, f.Home(s.ID), s.ID, lease.ID, "echo human-was-here > ~/human.txt")
	f.Home(s.ID).WaitFile(t, "human.txt", "human-was-here\n")
	if n := len(srv.Requests()); n != 2 {
		t.Errorf("%d model requests while the person held the desktop; want 2", n)
	}

	note := "I opened a terminal for you"
	ctl, err := f.Client.HandBack(ctx, s.ID, lease.ID, note)
	if err != nil {
		t.Fatal(err)
	}
	if ctl.Holder == nil || ctl.Holder.Kind != string(control.KindTask) || ctl.Holder.Who != sub.TaskID {
		t.Errorf("control after the hand-back: %+v; want the task", ctl)
	}
	task = followToEnd(t, ctx, f, sub.TaskID)
	if task.Status != apitype.TaskDone {
		t.Fatalf("task ended %s (%s); want done", task.Status, task.Error)
	}
	reqs := srv.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d model requests; want 3", len(reqs))
	}
	text := requestText(reqs[2])
	for _, want := range []string{note, "A person took control of the desktop", "not run: a person took control"} {
		if !strings.Contains(text, want) {
			t.Errorf("the request after the hand-back lacks %q:\n%.2000s", want, text)
		}
	}
	if before, after := lastImage(reqs[1]), lastImage(reqs[2]); after == "" || after == before {
		t.Errorf("the request after the hand-back does not carry a fresh screenshot")
	}

	checkControlAudit(t, ctx, f, s.ID, sub.TaskID, inputs)
}

// followToEnd reads a task's stream to its end and returns the task.
func followToEnd(t *testing.T, ctx context.Context, f *fleettest.Fleet, id string) apitype.Task {
	t.Helper()
	if err := f.Client.TaskEvents(ctx, id, 0, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the task's final record", func() bool { return !isLive(getTask(t, ctx, f, id).Status) })
	return getTask(t, ctx, f, id)
}

func isLive(s apitype.TaskStatus) bool {
	return s == apitype.TaskRunning || s == apitype.TaskPausedForHuman || s == apitype.TaskNeedsHelp
}

// checkControlAudit checks a session's audit around one person's control
// period: the takeover and the hand-back recorded with who and why, the
// period's count of input events, and no task action that ran between
// them.
func checkControlAudit(t *testing.T, ctx context.Context, f *fleettest.Fleet, sessionID, taskID string, wantInputs int) {
	t.Helper()
	st, body := apiCall(t, ctx, f, http.MethodGet, "/sessions/"+sessionID+"/audit", nil)
	if st != http.StatusOK {
		t.Fatalf("audit: %d %s", st, body)
	}
	var takeover, handback int64
	for _, e := range decodeEntries(t, body) {
		if e.Kind != audit.KindControl {
			continue
		}
		switch e.Detail["event"] {
		case control.WhyTakeover:
			takeover = e.Seq
			if e.Actor != audit.ActorToken+"api" {
				t.Errorf("takeover entry by %s; want token:api", e.Actor)
			}
		case control.WhyHandback:
			handback = e.Seq
			p, _ := e.Detail["period"].(map[string]any)
			if p == nil || p["input_events"] != float64(wantInputs) || p["duration_ms"].(float64) <= 0 {
				t.Errorf("hand-back entry %+v: want a period of %d input events", e.Detail, wantInputs)
			}
		}
	}
	if takeover == 0 || handback <= takeover {
		t.Fatalf("audit control entries: takeover at %d, hand-back at %d; want both, in order", takeover, handback)
	}
	for _, e := range decodeEntries(t, body) {
		if e.Kind == audit.KindAction && e.Actor == audit.ActorTask+taskID && e.Seq > takeover && e.Seq < handback && e.Result.Code == audit.CodeOK {
			t.Errorf("task action %s ran while the person held the desktop (entry %d)", e.Action, e.Seq)
		}
	}
}

// TestTakeoverRaces races a takeover with a task submit and a burst of API
// input without a lease: exactly one person holds control afterwards, and
// the audit log shows no input admitted after the takeover.
func TestTakeoverRaces(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{Token: token})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "races"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	script := make([]agentapi.Request, 40)
	for i := range script {
		script[i] = agentapi.Request{Action: agentapi.MouseMove, Coordinate: &agentapi.Point{X: 100 + i, Y: 100}}
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		leases  []string
		taskID  string
		refused int
	)
	start := make(chan struct{})
	for range 3 {
		wg.Go(func() {
			<-start
			l, err := f.Client.TakeOver(ctx, s.ID)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				leases = append(leases, l.ID)
			} else if !isCode(err, apitype.CodeControlHeld) {
				t.Errorf("takeover: %v", err)
			}
		})
	}
	wg.Go(func() {
		<-start
		sub, err := f.Client.SubmitTask(ctx, s.ID, taskSpec("move", script...))
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			taskID = sub.TaskID
		} else if !isCode(err, apitype.CodeControlHeld) {
			t.Errorf("submit: %v", err)
		}
	})
	for range 4 {
		wg.Go(func() {
			<-start
			for i := range 15 {
				_, err := f.Client.Act(ctx, s.ID, map[string]any{"action": "mouse_move", "coordinate": []int{300 + i, 300}})
				if err != nil {
					if !isCode(err, apitype.CodeControlHeld) {
						t.Errorf("burst: %v", err)
					}
					mu.Lock()
					refused++
					mu.Unlock()
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if len(leases) != 1 {
		t.Fatalf("%d takeovers succeeded; want exactly 1", len(leases))
	}
	ctl, err := f.Client.Control(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ctl.Holder == nil || ctl.Holder.Kind != string(control.KindPerson) {
		t.Fatalf("control %+v: want the person holding it", ctl)
	}
	if refused == 0 {
		t.Logf("every burst action ran before the takeover")
	}
	t.Logf("task %q, %d of 60 burst actions refused", taskID, refused)

	// Nothing after the takeover entry is input that ran, until the hand-back.
	if _, err := f.Client.HandBack(ctx, s.ID, leases[0], ""); err != nil {
		t.Fatal(err)
	}
	if taskID != "" {
		followToEnd(t, ctx, f, taskID)
	}
	_, body := apiCall(t, ctx, f, http.MethodGet, "/sessions/"+s.ID+"/audit", nil)
	var takeover, handback int64
	entries := decodeEntries(t, body)
	for _, e := range entries {
		if e.Kind == audit.KindControl && e.Detail["event"] == control.WhyTakeover {
			takeover = e.Seq
		}
		if e.Kind == audit.KindControl && e.Detail["event"] == control.WhyHandback {
			handback = e.Seq
		}
	}
	if takeover == 0 || handback <= takeover {
		t.Fatalf("takeover at %d, hand-back at %d", takeover, handback)
	}
	for _, e := range entries {
		if e.Kind == audit.KindAction && e.Seq > takeover && e.Seq < handback && e.Result.Code == audit.CodeOK {
			t.Errorf("input by %s ran while the person held the desktop (entry %d: %s)", e.Actor, e.Seq, e.Action)
		}
	}
}

// TestIdleLeaseReturnsThroughCLI takes a running task's desktop with the
// CLI, acts once with the printed lease, and leaves it: the lease returns by
// itself after the idle time, the task resumes (an event saying why), the
// audit log has the period, and the stale lease is refused.
func TestIdleLeaseReturnsThroughCLI(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{Token: token, ControlIdle: 3 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "idle"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	script := []agentapi.Request{{Action: agentapi.Wait, Duration: 0.5}, {Action: agentapi.Wait, Duration: 0.5}, {Action: agentapi.MouseMove, Coordinate: &agentapi.Point{X: 50, Y: 50}}}
	sub, err := f.Client.SubmitTask(ctx, s.ID, taskSpec("wait", script...))
	if err != nil {
		t.Fatal(err)
	}

	vars := map[string]string{"ATELIER_URL": f.URL, "ATELIER_API_TOKEN": token}
	run := func(stdin string, args ...string) (string, error) {
		var out strings.Builder
		env := &cli.Env{Getenv: func(k string) string { return vars[k] }, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &out}
		err := cli.Run(ctx, args, env)
		return out.String(), err
	}
	out, err := run("", "takeover", s.ID)
	if err != nil {
		t.Fatalf("atelier takeover: %v\n%s", err, out)
	}
	_, after, ok := strings.Cut(out, "export "+cli.EnvLease+"=")
	lease, _, _ := strings.Cut(after, "\n")
	if !ok || !strings.HasPrefix(lease, "lease_") || !strings.Contains(out, sub.TaskID) {
		t.Fatalf("atelier takeover printed:\n%s\nwant the lease to export and the paused task", out)
	}
	if out, err := run(`{"action":"mouse_move","coordinate":[400,300]}`, "act", s.ID); err == nil {
		t.Errorf("atelier act without the lease ran:\n%s", out)
	}
	vars[cli.EnvLease] = lease
	if out, err := run(`{"action":"mouse_move","coordinate":[400,300]}`, "act", s.ID); err != nil {
		t.Fatalf("atelier act with the lease: %v\n%s", err, out)
	}
	if out, err := run("", "control", s.ID); err != nil || !strings.Contains(out, "person token:api") || !strings.Contains(out, "paused_for_human") {
		t.Errorf("atelier control: %v\n%s\nwant the person holding it and the task paused", err, out)
	}

	task := followToEnd(t, ctx, f, sub.TaskID)
	if task.Status != apitype.TaskDone {
		t.Fatalf("task ended %s (%s); want done", task.Status, task.Error)
	}
	var resumed *apitype.TaskEvent
	for i, ev := range task.Events {
		if ev.Type == apitype.EventResumed {
			resumed = &task.Events[i]
		}
	}
	if resumed == nil || resumed.Reason != control.WhyIdle {
		t.Errorf("events %+v: want a resumed event with reason idle", task.Events)
	}
	out, err = run(`{"action":"mouse_move","coordinate":[400,300]}`, "act", s.ID)
	if err == nil || !strings.Contains(err.Error(), "idle") {
		t.Errorf("atelier act with the returned lease: %v\n%s\nwant a refusal saying it returned", err, out)
	}
	if _, err := run("", "handback", s.ID); err == nil {
		t.Errorf("atelier handback of a returned lease succeeded")
	}

	_, body := apiCall(t, ctx, f, http.MethodGet, "/sessions/"+s.ID+"/audit", nil)
	var idle *audit.Entry
	entries := decodeEntries(t, body)
	for i, e := range entries {
		if e.Kind == audit.KindControl && e.Detail["event"] == control.WhyIdle {
			idle = &entries[i]
		}
	}
	if idle == nil || idle.Actor != audit.ActorFleet {
		t.Fatalf("audit: want a control entry for the idle return by the fleet")
	}
	if p, _ := idle.Detail["period"].(map[string]any); p == nil || p["input_events"] != 1.0 {
		t.Errorf("idle return %+v: want a period of 1 input event", idle.Detail)
	}
}

// TestAskForHelp replays a Holo transcript in which the model asks a
// question: the task moves to needs_help with it (stream and control
// state), a hand-back with an answer resumes it and the answer is in the
// model's next request; a second task that asks is cancelled while waiting.
func TestAskForHelp(t *testing.T) {
	question := "Which of your two accounts should I sign in with?"
	answer := "the work account, ops@example.com"
	srv := modeltest.OpenAISteps(t, []modeltest.OpenAIStep{
		holoStep("Signing in needs the user's choice.", map[string]any{"tool_name": "ask_user", "question": question}, 0),
		holoStep("The user chose.", map[string]any{"tool_name": "answer", "content": "signed in with the work account"}, 0),
		holoStep("Ask again.", map[string]any{"tool_name": "ask_user", "question": "Are you still there?"}, 0),
	})
	f := fleettest.New(t, fleettest.Options{Token: token, Model: config.Model{Backend: "holo", HoloEndpoint: srv.URL}})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "help"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := f.Client.SubmitTask(ctx, s.ID, taskSpec("sign in"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "needs_help", func() bool { return getTask(t, ctx, f, sub.TaskID).Status == apitype.TaskNeedsHelp })
	task := getTask(t, ctx, f, sub.TaskID)
	if ev := task.Events[len(task.Events)-1]; ev.Type != apitype.EventNeedsHelp || ev.Question != question {
		t.Errorf("last event %+v: want needs_help with the question", ev)
	}
	ctl, err := f.Client.Control(ctx, s.ID)
	if err != nil || ctl.TaskState != string(control.TaskNeedsHelp) || ctl.Question != question {
		t.Errorf("control %+v, %v: want the task needing help, with its question", ctl, err)
	}
	// Waiting for help, the task still holds the desktop.
	if _, err := f.Client.Act(ctx, s.ID, map[string]any{"action": "left_click", "coordinate": []int{10, 10}}); !isCode(err, apitype.CodeControlHeld) {
		t.Errorf("input while the task waits for help: %v; want 409 control_held", err)
	}
	if _, err := f.Client.HandBack(ctx, s.ID, "", answer); err != nil {
		t.Fatal(err)
	}
	task = followToEnd(t, ctx, f, sub.TaskID)
	if task.Status != apitype.TaskDone {
		t.Fatalf("task ended %s (%s); want done", task.Status, task.Error)
	}
	reqs := srv.Requests()
	if len(reqs) != 2 || !strings.Contains(requestText(reqs[1]), answer) || strings.Contains(requestText(reqs[0]), answer) {
		t.Errorf("%d model requests; want 2, the answer in the second only", len(reqs))
	}

	// A task waiting for an answer ends when cancelled.
	if sub, err = f.Client.SubmitTask(ctx, s.ID, taskSpec("check in")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "needs_help", func() bool { return getTask(t, ctx, f, sub.TaskID).Status == apitype.TaskNeedsHelp })
	handBack := checkViewerTakeover(t, ctx, f, s.ID)
	if _, err := f.Client.CancelTask(ctx, sub.TaskID); err != nil {
		t.Fatal(err)
	}
	if task := followToEnd(t, ctx, f, sub.TaskID); task.Status != apitype.TaskCancelled {
		t.Errorf("cancelled while waiting for help: ended %s; want cancelled", task.Status)
	}
	handBack()
	if ctl, err := f.Client.Control(ctx, s.ID); err != nil || ctl.Holder != nil || ctl.Task != "" {
		t.Errorf("control after the cancel: %+v, %v; want nobody", ctl, err)
	}
}

// checkViewerTakeover drives the viewer's control routes of the fleet, as
// its page does, while a task waits for help: both tokens read the state,
// a view token cannot take control, a control token can. It returns the
// viewer's hand-back, which leaves nobody holding control.
func checkViewerTakeover(t *testing.T, ctx context.Context, f *fleettest.Fleet, sessionID string) (handBack func()) {
	t.Helper()
	token := func(mode string) string {
		link, err := f.Client.EmbedLink(ctx, sessionID, mode, 0)
		if err != nil {
			t.Fatal(err)
		}
		return link.Token
	}
	// The page sends no bearer token: the embed token is its gate.
	page := client.New(f.URL, "", nil)
	for _, mode := range []string{"view", "control"} {
		if st, err := page.EmbedControl(ctx, sessionID, token(mode)); err != nil || st.TaskState != string(control.TaskNeedsHelp) || st.Question == "" {
			t.Errorf("the %s viewer's control state: %+v, %v; want the task needing help, with its question", mode, st, err)
		}
	}
	if _, err := page.EmbedTakeOver(ctx, sessionID, token("view"), "viewer-1"); !isStatus(err, http.StatusForbidden) {
		t.Errorf("a view token takes control: %v; want 403", err)
	}
	lease, err := page.EmbedTakeOver(ctx, sessionID, token("control"), "viewer-1")
	if err != nil || lease.Holder.Who != audit.ActorViewer+"control" {
		t.Fatalf("a control token takes control: %+v, %v", lease, err)
	}
	if ctl, err := f.Client.Control(ctx, sessionID); err != nil || ctl.Holder == nil || ctl.Holder.Who != audit.ActorViewer+"control" {
		t.Errorf("control after the viewer took it: %+v, %v", ctl, err)
	}
	return func() {
		if st, err := page.EmbedHandBack(ctx, sessionID, token("control"), lease.ID, ""); err != nil || st.Holder != nil {
			t.Errorf("the viewer hands back: %+v, %v; want nobody holding", st, err)
		}
	}
}
