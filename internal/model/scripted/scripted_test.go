package scripted_test

import (
	"errors"
	"testing"

	"atelier/internal/agentapi"
	"atelier/internal/model"
	"atelier/internal/model/scripted"
)

func TestPlaysScriptThenFinishes(t *testing.T) {
	script := []agentapi.Request{{Action: agentapi.Key, Text: "super+Return"}, {Action: agentapi.Type, Text: "ls\n"}}
	c, err := scripted.Backend{}.Start(t.Context(), model.Start{Script: script})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range script {
		r, err := c.Next(t.Context(), model.Turn{Step: i + 1, Results: []model.Result{{}}})
		if err != nil || r.Done || len(r.Actions) != 1 || r.Actions[0].Action != want.Action || r.Actions[0].V != 1 {
			t.Fatalf("step %d = %+v, %v; want %s", i+1, r, err, want.Action)
		}
	}
	if r, _ := c.Next(t.Context(), model.Turn{Step: 3, Results: []model.Result{{}}}); !r.Done || r.Failed {
		t.Errorf("after the script: %+v, want done", r)
	}
	u := c.Estimate(model.Turn{})
	if usd, priced := model.DefaultPrices().Cost(u); usd != 0 || !priced || c.Model() != scripted.ModelName {
		t.Errorf("a script costs %+v (%v USD, priced %v), want nothing, priced", u, usd, priced)
	}
}

func TestFailedActionEndsScript(t *testing.T) {
	c, _ := scripted.Backend{}.Start(t.Context(), model.Start{Script: []agentapi.Request{{Action: agentapi.Key, Text: "nope"}, {Action: agentapi.Wait, Duration: 1}}})
	c.Next(t.Context(), model.Turn{Step: 1})
	r, _ := c.Next(t.Context(), model.Turn{Step: 2, Results: []model.Result{{Error: "bad_key: nope"}}})
	if !r.Done || !r.Failed {
		t.Errorf("after a failed action: %+v, want done and failed", r)
	}
}

func TestInterruptedActionIsPlayedAgain(t *testing.T) {
	c, _ := scripted.Backend{}.Start(t.Context(), model.Start{Script: []agentapi.Request{{Action: agentapi.Key, Text: "a"}, {Action: agentapi.Key, Text: "b"}}})
	c.Next(t.Context(), model.Turn{Step: 1})
	r, _ := c.Next(t.Context(), model.Turn{Step: 2, Results: []model.Result{{Error: "not run: a person took control", Interrupted: true}}})
	if r.Done || len(r.Actions) != 1 || r.Actions[0].Text != "a" {
		t.Fatalf("after a takeover kept action 1 from running: %+v, want action 1 again", r)
	}
	r, _ = c.Next(t.Context(), model.Turn{Step: 3, Results: []model.Result{{}}})
	if r.Done || len(r.Actions) != 1 || r.Actions[0].Text != "b" {
		t.Errorf("then: %+v, want action 2", r)
	}
}

func TestStartRefusesBadScripts(t *testing.T) {
	for _, s := range [][]agentapi.Request{nil, {{Action: "explode"}}, {{Action: agentapi.LeftClick, Text: "x"}}} {
		if _, err := (scripted.Backend{}).Start(t.Context(), model.Start{Script: s}); !errors.Is(err, model.ErrBadStart) {
			t.Errorf("script %v: got %v, want ErrBadStart", s, err)
		}
	}
}
