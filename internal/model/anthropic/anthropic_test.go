package anthropic_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"atelier/internal/agentapi"
	"atelier/internal/model"
	"atelier/internal/model/anthropic"
	"atelier/internal/model/modeltest"
)

const goal = "run echo claude-ok > ~/done in a terminal"

var shot = model.Screenshot{Format: "png", Data: []byte("\x89PNG fake"), Width: 1280, Height: 720, OutputWidth: 1280, OutputHeight: 720}

func start(t *testing.T, srv *modeltest.Server, modelID string) model.Conversation {
	t.Helper()
	b := anthropic.New(anthropic.Options{APIKey: "sk-ant-test", BaseURL: srv.URL, Model: modelID})
	c, err := b.Start(t.Context(), model.Start{Goal: goal})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTranscriptMapsToActions(t *testing.T) {
	srv := modeltest.Anthropic(t, modeltest.Transcript("anthropic_open_terminal.json"))
	c := start(t, srv, "")
	want := []model.Reply{
		{Thought: "I'll open a terminal first. This desktop runs sway, where super+Return opens one.", Actions: []agentapi.Request{{V: 1, Action: agentapi.Key, Text: "super+Return"}}},
		{Actions: []agentapi.Request{{V: 1, Action: agentapi.Wait, Duration: 1.5}}},
		{Thought: "The terminal is open. I'll type the command and run it.", Actions: []agentapi.Request{
			{V: 1, Action: agentapi.Type, Text: "echo claude-ok > ~/done"},
			{V: 1, Action: agentapi.Key, Text: "Return"},
		}},
		{Thought: "The command ran in the terminal: ~/done now contains claude-ok.", Done: true, Answer: "The command ran in the terminal: ~/done now contains claude-ok."},
	}
	reqs := modeltest.Replay(t, srv, c, goal, shot, "", want)
	for i, r := range reqs {
		if got := r.Header.Get("anthropic-beta"); got != "computer-use-2025-01-24" {
			t.Errorf("request %d: anthropic-beta %q, want computer-use-2025-01-24 for Sonnet 4.5", i, got)
		}
		if r.Header.Get("Authorization") != "Bearer sk-ant-test" {
			t.Errorf("request %d: the API key was not sent", i)
		}
	}
	var body struct {
		Model string `json:"model"`
		Tools []struct {
			Type    string `json:"type"`
			Name    string `json:"name"`
			W       int    `json:"display_width_px"`
			H       int    `json:"display_height_px"`
			ZoomSet *bool  `json:"enable_zoom"`
		} `json:"tools"`
		Messages []struct {
			Role    string `json:"role"`
			Content []struct {
				Type      string `json:"type"`
				ToolUseID string `json:"tool_use_id"`
				IsError   bool   `json:"is_error"`
				Content   []struct {
					Type string `json:"type"`
				} `json:"content"`
			} `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(reqs[3].Raw, &body); err != nil {
		t.Fatal(err)
	}
	if body.Model != "claude-sonnet-4-5" || len(body.Tools) != 2 || body.Tools[0].Type != "computer_20250124" ||
		body.Tools[0].Name != "computer" || body.Tools[0].W != 1280 || body.Tools[0].H != 720 || body.Tools[1].Name != "ask_user" {
		t.Errorf("model %q tools %+v; want Sonnet 4.5 with computer_20250124 at 1280x720, and ask_user", body.Model, body.Tools)
	}
	// The third reply had two tool_use blocks: the fourth request answers
	// both, in order, the screenshot in the last.
	lastUser := body.Messages[len(body.Messages)-1]
	var ids []string
	for _, b := range lastUser.Content {
		ids = append(ids, b.ToolUseID)
	}
	if diff := cmp.Diff([]string{"toolu_01Xk2pLq9WmZ4rTb8NcV6dYe", "toolu_01Ry7TnV3qKc5mWx2BpL8hZs"}, ids); diff != "" {
		t.Errorf("tool_result ids (-want +got):\n%s", diff)
	}
	if n := len(lastUser.Content[1].Content); n == 0 || lastUser.Content[1].Content[n-1].Type != "image" {
		t.Errorf("last tool_result = %+v, want the new screenshot", lastUser.Content[1])
	}
	if len(body.Messages) != 7 || body.Messages[1].Role != "assistant" {
		t.Errorf("conversation has %d messages, want 7 alternating", len(body.Messages))
	}
}

func TestToolVersionFollowsModel(t *testing.T) {
	for _, tt := range []struct{ model, tool, beta string }{
		{"claude-sonnet-4-5", "computer_20250124", "computer-use-2025-01-24"},
		{"claude-sonnet-4-5-20250929", "computer_20250124", "computer-use-2025-01-24"},
		{"claude-haiku-4-5", "computer_20250124", "computer-use-2025-01-24"},
		{"claude-opus-4-5", "computer_20251124", "computer-use-2025-11-24"},
		{"claude-sonnet-4-6", "computer_20251124", "computer-use-2025-11-24"},
		{"claude-opus-4-7", "computer_20251124", "computer-use-2025-11-24"},
	} {
		srv := modeltest.AnthropicSteps(t, []modeltest.AnthropicStep{{Content: []json.RawMessage{json.RawMessage(`{"type":"text","text":"done"}`)}}})
		if _, err := start(t, srv, tt.model).Next(t.Context(), model.Turn{Goal: goal, Step: 1, Screenshot: shot}); err != nil {
			t.Fatal(err)
		}
		r := srv.Requests()[0]
		tool := r.Body["tools"].([]any)[0].(map[string]any)
		if r.Header.Get("anthropic-beta") != tt.beta || tool["type"] != tt.tool {
			t.Errorf("%s: beta %q tool %v; want %s %s", tt.model, r.Header.Get("anthropic-beta"), tool["type"], tt.beta, tt.tool)
		}
	}
}

func TestScalesScreenshotsAndCoordinates(t *testing.T) {
	// A 1920x1080 output is sent at 1280x720 (fits WXGA); the model's
	// [640, 360] is the output's (960, 540).
	if s := anthropic.Scale(1920, 1080); s != 1280.0/1920 {
		t.Fatalf("Scale(1920, 1080) = %v, want 2/3", s)
	}
	if s := anthropic.Scale(1280, 720); s != 1 {
		t.Fatalf("Scale(1280, 720) = %v, want 1", s)
	}
	if s := anthropic.Scale(2560, 1600); s != 0.5 {
		t.Fatalf("Scale(2560, 1600) = %v, want 0.5", s)
	}
	big := model.Screenshot{Format: "png", Data: []byte("x"), Width: 1280, Height: 720, OutputWidth: 1920, OutputHeight: 1080}
	srv := modeltest.AnthropicSteps(t, []modeltest.AnthropicStep{{Content: []json.RawMessage{
		json.RawMessage(`{"type":"tool_use","id":"toolu_1","name":"computer","input":{"action":"left_click","coordinate":[640,360],"text":"shift"}}`),
		json.RawMessage(`{"type":"tool_use","id":"toolu_2","name":"computer","input":{"action":"left_click_drag","start_coordinate":[0,0],"coordinate":[1279,719]}}`),
		json.RawMessage(`{"type":"tool_use","id":"toolu_3","name":"computer","input":{"action":"scroll","coordinate":[3,3],"scroll_direction":"down","scroll_amount":5}}`),
		json.RawMessage(`{"type":"tool_use","id":"toolu_4","name":"computer","input":{"action":"cursor_position"}}`),
	}}})
	got, err := start(t, srv, "").Next(t.Context(), model.Turn{Goal: goal, Step: 1, Screenshot: big})
	if err != nil {
		t.Fatal(err)
	}
	want := []agentapi.Request{
		{V: 1, Action: agentapi.LeftClick, Coordinate: &agentapi.Point{X: 960, Y: 540}, Modifiers: "shift"},
		{V: 1, Action: agentapi.LeftClickDrag, StartCoordinate: &agentapi.Point{}, Coordinate: &agentapi.Point{X: 1918, Y: 1078}},
		{V: 1, Action: agentapi.Scroll, Coordinate: &agentapi.Point{X: 4, Y: 4}, ScrollDirection: "down", ScrollAmount: 5},
		{V: 1, Action: agentapi.CursorPosition},
	}
	if diff := cmp.Diff(want, got.Actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	tool := srv.Requests()[0].Body["tools"].([]any)[0].(map[string]any)
	if tool["display_width_px"] != 1280.0 || tool["display_height_px"] != 720.0 {
		t.Errorf("declared display %vx%v, want 1280x720", tool["display_width_px"], tool["display_height_px"])
	}
}

func TestRetriesOverloadAndRateLimit(t *testing.T) {
	srv := modeltest.AnthropicSteps(t, []modeltest.AnthropicStep{
		{Status: 529, ErrorType: "overloaded_error", Error: "Overloaded"},
		{Status: 429, ErrorType: "rate_limit_error", Error: "Number of request tokens has exceeded your per-minute rate limit"},
		{Status: 500, ErrorType: "api_error", Error: "Internal server error"},
		{Content: []json.RawMessage{json.RawMessage(`{"type":"text","text":"done"}`)}, Usage: modeltest.AnthropicUsage{InputTokens: 10, OutputTokens: 2}},
	})
	b := anthropic.New(anthropic.Options{APIKey: "k", BaseURL: srv.URL, MaxRetries: 3})
	c, _ := b.Start(t.Context(), model.Start{Goal: goal})
	got, err := c.Next(t.Context(), model.Turn{Goal: goal, Step: 1, Screenshot: shot})
	if err != nil || !got.Done {
		t.Fatalf("got %+v, %v; want the answer after three retries", got, err)
	}
	if n := len(srv.Requests()); n != 4 {
		t.Errorf("server got %d requests, want 4", n)
	}
	bad := modeltest.AnthropicSteps(t, []modeltest.AnthropicStep{{Status: 400, ErrorType: "invalid_request_error", Error: "tool_use ids were found without tool_result blocks"}})
	if _, err := start(t, bad, "").Next(t.Context(), model.Turn{Goal: goal, Step: 1, Screenshot: shot}); err == nil {
		t.Fatal("400: got no error")
	}
	if n := len(bad.Requests()); n != 1 {
		t.Errorf("a 400 was sent %d times, want 1", n)
	}
}

func TestUnusableOutputIsFedBackAsErrorResults(t *testing.T) {
	srv := modeltest.AnthropicSteps(t, []modeltest.AnthropicStep{
		{Content: []json.RawMessage{
			json.RawMessage(`{"type":"tool_use","id":"toolu_a","name":"computer","input":{"action":"key","text":"Return"}}`),
			json.RawMessage(`{"type":"tool_use","id":"toolu_b","name":"computer","input":{"action":"teleport"}}`),
		}, Usage: modeltest.AnthropicUsage{InputTokens: 50, OutputTokens: 20}},
		{Content: []json.RawMessage{json.RawMessage(`{"type":"text","text":"sorry"}`)}},
	})
	c := start(t, srv, "")
	_, err := c.Next(t.Context(), model.Turn{Goal: goal, Step: 1, Screenshot: shot})
	if oe, ok := errors.AsType[*model.OutputError](err); !ok || oe.Usage.InputTokens != 50 {
		t.Fatalf("got %v, want an output error carrying its usage", err)
	}
	if _, err := c.Next(t.Context(), model.Turn{Goal: goal, Step: 2, Screenshot: shot, Error: err.Error()}); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Requests()[1].Body["messages"].([]any)
	results := msgs[len(msgs)-1].(map[string]any)["content"].([]any)
	if len(results) != 2 {
		t.Fatalf("second request answers %d tool_use blocks, want both", len(results))
	}
	for _, r := range results {
		m := r.(map[string]any)
		if m["type"] != "tool_result" || m["is_error"] != true {
			t.Errorf("result %v, want an is_error tool_result", m)
		}
	}
	if _, err := anthropic.New(anthropic.Options{}).Start(t.Context(), model.Start{Goal: goal}); !errors.Is(err, model.ErrBadStart) {
		t.Errorf("start without a key: %v, want ErrBadStart", err)
	}
}

func TestRefusalEndsTaskAsFailed(t *testing.T) {
	srv := modeltest.AnthropicSteps(t, []modeltest.AnthropicStep{{Content: []json.RawMessage{json.RawMessage(`{"type":"text","text":"I can't help with that."}`)}, StopReason: "refusal"}})
	got, err := start(t, srv, "").Next(t.Context(), model.Turn{Goal: goal, Step: 1, Screenshot: shot})
	if err != nil || !got.Done || !got.Failed || got.Answer != "I can't help with that." {
		t.Fatalf("got %+v, %v; want done and failed with the refusal", got, err)
	}
}

const (
	helpGoal   = "commit the staged changes in ~/project"
	question   = "README.md and cmd/main.go are staged in ~/project. What commit message should I use?"
	helpAnswer = "Fix the usage text in README and main"
)

// toolResult is a tool_result block as sent.
type toolResult struct {
	Type      string `json:"type"`
	ToolUseID string `json:"tool_use_id"`
	IsError   bool   `json:"is_error"`
	Content   []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
}

// lastResults returns the blocks of a request's last message.
func lastResults(t *testing.T, r modeltest.Request) []toolResult {
	t.Helper()
	var body struct {
		Messages []struct {
			Content []toolResult `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(r.Raw, &body); err != nil {
		t.Fatal(err)
	}
	return body.Messages[len(body.Messages)-1].Content
}

func TestAskForHelpThenContinue(t *testing.T) {
	srv := modeltest.Anthropic(t, modeltest.Transcript("anthropic_ask_for_help.json"))
	c := start(t, srv, "")
	enter := agentapi.Request{V: 1, Action: agentapi.Key, Text: "Return"}
	done := `Committed README.md and cmd/main.go in ~/project as "` + helpAnswer + `".`
	want := []model.Reply{
		{Thought: "I'll open a terminal to look at what is staged in ~/project.", Actions: []agentapi.Request{{V: 1, Action: agentapi.Key, Text: "super+Return"}}},
		{Actions: []agentapi.Request{{V: 1, Action: agentapi.Type, Text: "cd ~/project && git diff --cached --stat"}, enter}},
		{Thought: "README.md and cmd/main.go are staged. The task doesn't say which commit message to use, and that is the author's choice, so I'll ask.", Help: question},
		{Thought: "Thanks. I'll commit with that message.", Actions: []agentapi.Request{{V: 1, Action: agentapi.Type, Text: `git commit -m "` + helpAnswer + `"`}, enter}},
		{Thought: done, Done: true, Answer: done},
	}
	reqs := modeltest.Replay(t, srv, c, helpGoal, shot, helpAnswer, want)
	tool := reqs[0].Body["tools"].([]any)[1].(map[string]any)
	schema, _ := tool["input_schema"].(map[string]any)
	if tool["name"] != "ask_user" || fmt.Sprint(schema["required"]) != "[question]" {
		t.Errorf("second tool = %v, want ask_user requiring a question", tool)
	}
	// The ask is answered by a tool_result of its id carrying the
	// person's reply, with the fresh screenshot.
	res := lastResults(t, reqs[3])
	if len(res) != 1 || res[0].Type != "tool_result" || res[0].ToolUseID != "toolu_01Ka7vTn2LdQ8mWs5RjB9xFc" || res[0].IsError {
		t.Fatalf("request 4 answers with %+v, want one tool_result for the ask", res)
	}
	if c := res[0].Content; len(c) != 2 || c[0].Text != helpAnswer || c[1].Type != "image" {
		t.Errorf("ask result content = %+v, want the answer then the screenshot", c)
	}
}

func TestAskWithActionsRunsNothing(t *testing.T) {
	for _, tt := range []struct{ answer, want string }{
		{"the work one, and yes", "the work one, and yes"},
		{"", "The person handed control back without answering."},
	} {
		srv := modeltest.AnthropicSteps(t, []modeltest.AnthropicStep{
			{Content: []json.RawMessage{
				json.RawMessage(`{"type":"text","text":"The login page offers two accounts."}`),
				json.RawMessage(`{"type":"tool_use","id":"toolu_click","name":"computer","input":{"action":"left_click","coordinate":[10,10]}}`),
				json.RawMessage(`{"type":"tool_use","id":"toolu_ask1","name":"ask_user","input":{"question":"Which account?"}}`),
				json.RawMessage(`{"type":"tool_use","id":"toolu_ask2","name":"ask_user","input":{"question":" Stay signed in? "}}`),
			}},
			{Content: []json.RawMessage{json.RawMessage(`{"type":"text","text":"done"}`)}},
		})
		c := start(t, srv, "")
		got, err := c.Next(t.Context(), model.Turn{Goal: goal, Step: 1, Screenshot: shot})
		if err != nil || got.Help != "Which account?\nStay signed in?" || got.Actions != nil || got.Done {
			t.Fatalf("got %+v, %v; want both questions and no actions", got, err)
		}
		if _, err := c.Next(t.Context(), model.Turn{Goal: goal, Step: 2, Screenshot: shot, Answered: true, Answer: tt.answer}); err != nil {
			t.Fatal(err)
		}
		res := lastResults(t, srv.Requests()[1])
		if len(res) != 3 {
			t.Fatalf("request 2 has %d results, want one per tool_use", len(res))
		}
		if res[0].ToolUseID != "toolu_click" || !res[0].IsError || !strings.HasPrefix(res[0].Content[0].Text, "not run: you asked a person") {
			t.Errorf("click result = %+v, want it reported as not run", res[0])
		}
		for _, r := range res[1:] {
			if !strings.HasPrefix(r.ToolUseID, "toolu_ask") || r.IsError || r.Content[0].Text != tt.want {
				t.Errorf("answer %q: ask result = %+v, want %q", tt.answer, r, tt.want)
			}
		}
		if c := res[2].Content; c[len(c)-1].Type != "image" {
			t.Errorf("last result = %+v, want the screenshot in it", res[2])
		}
	}
}

func TestEmptyQuestionIsUnusable(t *testing.T) {
	for _, input := range []string{`{"question":"  "}`, `{}`, `{"question":7}`} {
		srv := modeltest.AnthropicSteps(t, []modeltest.AnthropicStep{
			{Content: []json.RawMessage{json.RawMessage(`{"type":"tool_use","id":"toolu_ask","name":"ask_user","input":` + input + `}`)}},
			{Content: []json.RawMessage{json.RawMessage(`{"type":"text","text":"done"}`)}},
		})
		c := start(t, srv, "")
		_, err := c.Next(t.Context(), model.Turn{Goal: goal, Step: 1, Screenshot: shot})
		if !errors.Is(err, model.ErrOutput) {
			t.Fatalf("%s: got %v, want an output error", input, err)
		}
		if _, err := c.Next(t.Context(), model.Turn{Goal: goal, Step: 2, Screenshot: shot, Error: err.Error()}); err != nil {
			t.Fatal(err)
		}
		res := lastResults(t, srv.Requests()[1])
		if len(res) != 1 || res[0].ToolUseID != "toolu_ask" || !res[0].IsError || !strings.Contains(res[0].Content[0].Text, "question") {
			t.Errorf("%s: fed back as %+v, want an is_error result naming the question", input, res)
		}
	}
}
