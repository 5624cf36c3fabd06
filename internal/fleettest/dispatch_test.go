package fleettest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
	"atelier/internal/cli"
	"atelier/internal/client"
	"atelier/internal/fleettest"
)

// createSessions creates n ready sessions with a label, side by side.
func createSessions(t *testing.T, ctx context.Context, c *client.Client, label string, n int) []apitype.Session {
	t.Helper()
	out := make([]apitype.Session, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i], errs[i] = c.CreateSession(ctx, apitype.CreateSession{Label: label}, 90*time.Second) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil || out[i].State != apitype.StateReady {
			t.Fatalf("create session %d: %+v %v", i, out[i], err)
		}
	}
	return out
}

// TestDispatch gives one goal to every session with a label: the ready one
// runs it (its file appears), the one a person holds and the stopped one
// are reported and fail nothing; a second dispatch by id finds the first
// session busy and an unknown one missing; the batch's stream ends with
// the batch finished, and the batch outlives a fleet restart.
func TestDispatch(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{Token: token})
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	ss := createSessions(t, ctx, f.Client, "crew", 3)
	run, held, stopped := ss[0], ss[1], ss[2]
	lease, err := f.Client.TakeOver(ctx, held.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Client.StopSession(ctx, stopped.ID); err != nil {
		t.Fatal(err)
	}

	script := []agentapi.Request{
		{Action: agentapi.Key, Text: "super+Return"},
		{Action: agentapi.Wait, Duration: 1},
		{Action: agentapi.Type, Text: "echo batch > ~/batch\n"},
	}
	spec := taskSpec("write batch to ~/batch", script...)
	b, err := f.Client.Dispatch(ctx, apitype.Dispatch{TaskSpec: spec, Label: "crew"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{run.ID: apitype.OutcomeStarted, held.ID: apitype.OutcomeHeld, stopped.ID: apitype.OutcomeStopped}
	checkOutcomes(t, b, want)
	if b.Selector != "label=crew" || b.Goal != spec.Goal {
		t.Errorf("batch %+v: want selector label=crew and the goal", b)
	}

	// While the first task runs, the same session is busy.
	b2, err := f.Client.Dispatch(ctx, apitype.Dispatch{TaskSpec: spec, SessionIDs: []string{run.ID, "s_nosuchsession"}})
	if err != nil {
		t.Fatal(err)
	}
	checkOutcomes(t, b2, map[string]string{run.ID: apitype.OutcomeBusy, "s_nosuchsession": apitype.OutcomeNotFound})
	if b2.Live || b2.Counts[apitype.OutcomeBusy] != 1 || b2.Counts[apitype.OutcomeNotFound] != 1 {
		t.Errorf("second batch %+v: want not live, one busy, one not found", b2)
	}

	var steps int
	end, err := f.Client.FollowBatch(ctx, b.ID, func(ev apitype.BatchEvent) {
		if ev.SessionID != run.ID || ev.Event == nil {
			t.Errorf("batch event %+v: want one of %s's task", ev, run.ID)
			return
		}
		if ev.Event.Type == apitype.EventStep {
			steps++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if end.Live || end.Counts[string(apitype.TaskDone)] != 1 || steps != len(script)+1 {
		t.Errorf("batch ended %+v after %d steps: want not live, one done, %d steps", end, steps, len(script)+1)
	}
	f.Home(run.ID).WaitFile(t, "batch", "batch\n")
	// The person's session was never touched.
	if _, err := f.Home(held.ID).ReadFile(t, "batch"); err == nil {
		t.Errorf("the held session got the batch's file")
	}
	if _, err := f.Client.HandBack(ctx, held.ID, lease.ID, ""); err != nil {
		t.Fatal(err)
	}

	// Bad selections change nothing.
	for _, d := range []apitype.Dispatch{
		{TaskSpec: spec},
		{TaskSpec: spec, Label: "crew", SessionIDs: []string{run.ID}},
		{TaskSpec: spec, Label: "nobody"},
		{TaskSpec: apitype.TaskSpec{}, Label: "crew"},
	} {
		if _, err := f.Client.Dispatch(ctx, d); err == nil {
			t.Errorf("dispatch %+v was accepted", d)
		}
	}

	// The CLI dispatches by label and follows to the end.
	file := filepath.Join(t.TempDir(), "script.json")
	raw, _ := json.Marshal([]agentapi.Request{script[0], script[1], {Action: agentapi.Type, Text: "echo cli > ~/cli\n"}})
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	vars := map[string]string{"ATELIER_URL": f.URL, "ATELIER_API_TOKEN": token}
	env := &cli.Env{Getenv: func(k string) string { return vars[k] }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
	err = cli.Run(ctx, []string{"task", "run", "--label", "crew", "--script", file, "--follow", "write cli"}, env)
	// The stopped session keeps the batch from finishing everywhere.
	if err == nil || !strings.Contains(out.String(), run.ID) || !strings.Contains(out.String(), apitype.OutcomeStopped) || !strings.Contains(out.String(), "2 done") {
		t.Errorf("atelier task run --label: %v\n%s", err, out.String())
	}
	f.Home(run.ID).WaitFile(t, "cli", "cli\n")
	f.Home(held.ID).WaitFile(t, "cli", "cli\n")

	// The batch outlives the fleet.
	f.Close()
	f2 := fleettest.New(t, fleettest.Options{Token: token, DataDir: f.DataDir})
	again, err := f2.Client.Batch(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkOutcomes(t, again, want)
	if again.Counts[string(apitype.TaskDone)] != 1 {
		t.Errorf("batch after a restart %+v: want its task done", again)
	}
}

func checkOutcomes(t *testing.T, b apitype.Batch, want map[string]string) {
	t.Helper()
	if len(b.Members) != len(want) {
		t.Fatalf("batch members %+v, want %v", b.Members, want)
	}
	for _, m := range b.Members {
		if want[m.SessionID] != m.Outcome {
			t.Errorf("member %s: outcome %s (%s), want %s", m.SessionID, m.Outcome, m.Message, want[m.SessionID])
		}
		if (m.Outcome == apitype.OutcomeStarted) != (m.Task != nil) {
			t.Errorf("member %s: outcome %s with task %+v", m.SessionID, m.Outcome, m.Task)
		}
		if m.Outcome != apitype.OutcomeStarted && m.Message == "" {
			t.Errorf("member %s: %s without a message", m.SessionID, m.Outcome)
		}
	}
}
