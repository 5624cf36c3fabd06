package tasks_test

import (
	fleetapi "atelier/internal/api"
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/budget"
	"atelier/internal/config"
	"atelier/internal/fleetwire"
	"atelier/internal/model"
	"atelier/internal/model/modeltest"
	"atelier/internal/tasks"
)

// fleetModels builds the backends and prices the way the fleet does, from
// an environment (config.Load, then fleetwire.Backends).
func fleetModels(t *testing.T, environ map[string]string) func(*tasks.Options) {
	t.Helper()
	// A fleet needs a token to load (config refuses an open API unasked).
	getenv := func(k string) string {
		if k == config.EnvToken {
			return "test-token-0123456789abcdef"
		}
		return environ[k]
	}
	c, err := config.Load(getenv, nil, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	return func(o *tasks.Options) { o.Backends, o.Prices = fleetwire.Backends(c.Model), c.Model.Prices }
}

func claudeDone(text string) modeltest.AnthropicStep {
	return modeltest.AnthropicStep{
		Content: []json.RawMessage{json.RawMessage(`{"type":"text","text":"` + text + `"}`)},
		Usage:   modeltest.AnthropicUsage{InputTokens: 2000, OutputTokens: 100},
	}
}

// TestCapRefusesUnpricedModel: under a daily cap (or a task's max_usd), a
// model with no price is refused at submit, 409 model_unpriced, with
// nothing recorded and no model called. Without a cap it runs, and its
// calls are recorded as unpriced in the ledger and the step events.
func TestCapRefusesUnpricedModel(t *testing.T) {
	d := startDesktop(t)
	claude := modeltest.AnthropicSteps(t, []modeltest.AnthropicStep{claudeDone("done")})
	holoSrv := modeltest.OpenAISteps(t, []modeltest.OpenAIStep{{Content: holoAnswer("done"), PromptTokens: 3000, CompletionTokens: 50}})
	environ := map[string]string{"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": claude.URL, "HOLO3_ENDPOINT": holoSrv.URL}
	f := newFixture(t, desktops{byID: map[string]*agentapi.Client{"s1": d.client}}, 5, fleetModels(t, environ))
	api := httptest.NewServer(fleetapi.New(fleetapi.Options{Tasks: f.m}).Handler())
	defer api.Close()
	for _, spec := range []string{
		`{"goal":"g","backend":"anthropic","model":"claude-sonnet-9"}`,
		`{"goal":"g","backend":"holo","model":"holo4-35b-a3b"}`,
	} {
		resp, err := http.Post(api.URL+"/sessions/s1/task", "application/json", strings.NewReader(spec))
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Code, Message string }
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict || body.Error.Code != "model_unpriced" || !strings.Contains(body.Error.Message, "MODEL_PRICES") {
			t.Errorf("%s under a cap: %d %+v, want 409 model_unpriced naming MODEL_PRICES", spec, resp.StatusCode, body.Error)
		}
	}
	if list, _ := f.m.List(t.Context(), "s1"); len(list) != 0 || len(claude.Requests())+len(holoSrv.Requests()) != 0 {
		t.Fatalf("a refused task left %d tasks and %d model calls", len(list), len(claude.Requests())+len(holoSrv.Requests()))
	}

	// No daily cap, but the task's own max_usd: refused too.
	free := newFixture(t, desktops{byID: map[string]*agentapi.Client{"s1": d.client}}, 0, fleetModels(t, environ))
	if _, err := free.m.Submit(t.Context(), "s1", tasks.Spec{Goal: "g", Backend: "holo", Model: "holo4-35b-a3b", MaxUSD: 1}); !errors.Is(err, tasks.ErrUnpriced) {
		t.Fatalf("unpriced model with max_usd: %v, want ErrUnpriced", err)
	}
	// No cap at all: it runs, recorded as unpriced.
	task, err := free.m.Submit(t.Context(), "s1", tasks.Spec{Goal: "g", Backend: "holo", Model: "holo4-35b-a3b"})
	if err != nil {
		t.Fatal(err)
	}
	got := free.wait(t, task.ID)
	if got.Status != tasks.StatusDone || got.CostUSD != 0 {
		t.Fatalf("task = %s, %v USD (%s), want done at 0", got.Status, got.CostUSD, got.Error)
	}
	_, led := ledgerTotal(t, free.st)
	if len(led) != 1 || led[0].Basis != budget.BasisUnpriced || led[0].Model != "holo4-35b-a3b" || led[0].InputTokens != 3000 {
		t.Errorf("ledger = %+v, want one unpriced call of holo4-35b-a3b with its tokens", led)
	}
	if ev := got.Events[0]; ev.Basis != budget.BasisUnpriced || ev.Usage == nil {
		t.Errorf("step event = %+v, want basis unpriced with its usage", ev)
	}
}

// TestDatedModelAndEnvironmentEndpoints: a dated Claude id is priced as its
// family; MODEL_PRICES adding one (Holo) entry leaves Claude priced; the
// Anthropic base URL and the Holo key come from the environment.
func TestDatedModelAndEnvironmentEndpoints(t *testing.T) {
	d := startDesktop(t)
	claude := modeltest.AnthropicSteps(t, []modeltest.AnthropicStep{claudeDone("done")})
	holoSrv := modeltest.OpenAISteps(t, []modeltest.OpenAIStep{{Content: holoAnswer("done"), PromptTokens: 1_000_000, CompletionTokens: 1_000_000}})
	environ := map[string]string{
		"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": claude.URL,
		"HOLO3_ENDPOINT": holoSrv.URL, "HAI_API_KEY": "hai-test-key", "HOLO3_MODEL": "my-holo",
		"MODEL_PRICES": "my-holo=0.5/2",
	}
	f := newFixture(t, desktops{byID: map[string]*agentapi.Client{"s1": d.client}}, 50, fleetModels(t, environ))

	task, err := f.m.Submit(t.Context(), "s1", tasks.Spec{Goal: "g", Backend: "anthropic", Model: "claude-opus-4-1-20250805"})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.wait(t, task.ID); got.Status != tasks.StatusDone || got.Model != "claude-opus-4-1-20250805" {
		t.Fatalf("task = %s %s (%s), want done", got.Status, got.Model, got.Error)
	}
	reqs := claude.Requests()
	if len(reqs) != 1 || reqs[0].Body["model"] != "claude-opus-4-1-20250805" || reqs[0].Header.Get("anthropic-beta") != "computer-use-2025-01-24" {
		t.Fatalf("the Anthropic server at ANTHROPIC_BASE_URL got %d requests (%v)", len(reqs), reqs)
	}
	task, err = f.m.Submit(t.Context(), "s1", tasks.Spec{Goal: "g", Backend: "holo"})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.wait(t, task.ID); got.Status != tasks.StatusDone || got.Model != "my-holo" {
		t.Fatalf("holo task = %s %s (%s), want done with HOLO3_MODEL", got.Status, got.Model, got.Error)
	}
	hreqs := holoSrv.Requests()
	if len(hreqs) != 1 || hreqs[0].Header.Get("Authorization") != "Bearer hai-test-key" || hreqs[0].Body["model"] != "my-holo" {
		t.Fatalf("holo request: %v", hreqs)
	}
	_, led := ledgerTotal(t, f.st)
	opus := (2000*15 + 100*75) / 1e6 // Opus 4.1's $15 / $75 per million
	if len(led) != 2 || math.Abs(led[0].USD-opus) > 1e-9 || led[0].Basis != budget.BasisUsage || math.Abs(led[1].USD-2.5) > 1e-9 {
		t.Errorf("ledger = %+v, want Opus 4.1 at %.6f and my-holo at 2.5", led, opus)
	}
}

// TestCancelDuringModelCallChargesReservation: a task cancelled while its
// model call is in flight is charged the call's reservation, and the
// ledger and the step event say so.
func TestCancelDuringModelCallChargesReservation(t *testing.T) {
	d := startDesktop(t)
	claude := modeltest.AnthropicSteps(t, []modeltest.AnthropicStep{{Hang: true}})
	f := newFixture(t, desktops{byID: map[string]*agentapi.Client{"s1": d.client}}, 5,
		fleetModels(t, map[string]string{"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": claude.URL}))
	task, err := f.m.Submit(t.Context(), "s1", tasks.Spec{Goal: "g", Backend: "anthropic"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(claude.Requests()) == 0 { // the fake announces nothing: poll it
		if time.Now().After(deadline) {
			t.Fatal("the model was not called in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	reserved, _ := f.budget.Today(t.Context())
	if err := f.m.Cancel(t.Context(), task.ID); err != nil {
		t.Fatal(err)
	}
	got := f.wait(t, task.ID)
	if got.Status != tasks.StatusCancelled {
		t.Fatalf("task = %s (%s), want cancelled", got.Status, got.Error)
	}
	total, led := ledgerTotal(t, f.st)
	if len(led) != 1 || led[0].Basis != budget.BasisReservation || reserved.ReservedUSD <= 0 || math.Abs(total-reserved.ReservedUSD) > 1e-9 {
		t.Fatalf("ledger = %+v (total %v); want one entry charging the %v USD reserved", led, total, reserved.ReservedUSD)
	}
	if want, _ := model.DefaultPrices().Cost(model.Usage{Model: led[0].Model, InputTokens: led[0].InputTokens, OutputTokens: led[0].OutputTokens}); math.Abs(want-led[0].USD) > 1e-9 {
		t.Errorf("the entry's tokens price at %v, its USD is %v: it should record the estimate reserved", want, led[0].USD)
	}
	if math.Abs(got.CostUSD-total) > 1e-9 {
		t.Errorf("task cost %v, ledger %v", got.CostUSD, total)
	}
	ev := got.Events[0]
	if ev.Type != tasks.EventStep || ev.Basis != budget.BasisReservation || math.Abs(ev.StepUSD-total) > 1e-9 || !strings.Contains(ev.Error, "abandoned") {
		t.Errorf("step event = %+v, want the abandoned call charged its reservation", ev)
	}
	if tb, _ := f.budget.Today(t.Context()); tb.ReservedUSD != 0 || math.Abs(tb.SpentUSD-total) > 1e-9 {
		t.Errorf("budget = %+v, want the reservation spent, none left", tb)
	}
}
