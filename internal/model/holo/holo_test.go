package holo_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"atelier/internal/agentapi"
	"atelier/internal/model"
	"atelier/internal/model/holo"
	"atelier/internal/model/modeltest"
)

const goal = "run echo holo-ok > ~/done in a terminal"

var shot = model.Screenshot{Format: "png", Data: []byte("\x89PNG fake"), Width: 1280, Height: 720, OutputWidth: 1280, OutputHeight: 720}

func start(t *testing.T, srv *modeltest.Server) model.Conversation {
	t.Helper()
	b := holo.New(holo.Options{Endpoint: srv.URL, MaxRetries: 2})
	c, err := b.Start(t.Context(), model.Start{Goal: goal})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTranscriptMapsToActions(t *testing.T) {
	srv := modeltest.OpenAI(t, modeltest.Transcript("holo_open_terminal.json"))
	c := start(t, srv)
	want := []model.Reply{
		{Thought: "Open a terminal with super+Return.", Actions: []agentapi.Request{{V: 1, Action: agentapi.Key, Text: "super+Return"}}},
		{Thought: "Wait for the terminal window to appear.", Note: "terminal requested", Actions: []agentapi.Request{{V: 1, Action: agentapi.Wait, Duration: 1.5}}},
		{Thought: "Type the command into the focused terminal.", Actions: []agentapi.Request{{V: 1, Action: agentapi.Type, Text: "echo holo-ok > ~/done"}}},
		{Thought: "Run it with Return.", Actions: []agentapi.Request{{V: 1, Action: agentapi.Key, Text: "Return"}}},
		{Thought: "The command ran.", Done: true, Answer: "Wrote holo-ok to ~/done from a terminal."},
	}
	reqs := modeltest.Replay(t, srv, c, goal, shot, "", want)
	first := reqs[0].Body
	if rf, _ := first["response_format"].(map[string]any); rf["type"] != "json_schema" {
		t.Errorf("response_format = %v, want a json_schema", first["response_format"])
	}
	if kw, _ := first["chat_template_kwargs"].(map[string]any); kw["enable_thinking"] != true {
		t.Errorf("chat_template_kwargs = %v, want enable_thinking true", first["chat_template_kwargs"])
	}
	if first["reasoning_effort"] != "medium" {
		t.Errorf("reasoning_effort = %v, want medium", first["reasoning_effort"])
	}
	if _, ok := first["extra_body"]; ok {
		t.Error("request has a literal extra_body key; H ignores it")
	}
	last := reqs[len(reqs)-1]
	if n := strings.Count(string(last.Raw), `"type":"image_url"`); n != holo.DefaultMaxImages {
		t.Errorf("last request holds %d images, want the budget of %d", n, holo.DefaultMaxImages)
	}
	if strings.Contains(string(last.Raw), "super+Return opens the terminal") {
		t.Error("reasoning was sent back to the model")
	}
	msgs := last.Body["messages"].([]any)
	sys := msgs[0].(map[string]any)["content"].(string)
	if !strings.Contains(sys, "<output_format>") || !strings.Contains(sys, `"tool_call"`) {
		t.Error("system prompt lacks the <output_format> schema")
	}
	asst := msgs[2].(map[string]any)
	if asst["role"] != "assistant" || !json.Valid([]byte(asst["content"].(string))) {
		t.Errorf("second message = %v, want the parsed step JSON as the assistant turn", asst)
	}
	text, _ := json.Marshal(msgs) // re-encoded without HTML escaping of < and >
	text = []byte(strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(string(text)))
	if !strings.Contains(string(text), "<task>run echo holo-ok") || !strings.Contains(string(text), "no longer shown") {
		t.Error("chat layout lacks the <task> tag or the placeholder of old screenshots")
	}
}

func TestCoordinatesScaleToTheImageSent(t *testing.T) {
	// A 640x360 image of a 1280x720 output: (500, 250) of 1000 is pixel
	// (320, 90) of the image, (640, 180) of the output.
	half := model.Screenshot{Format: "png", Data: []byte("x"), Width: 640, Height: 360, OutputWidth: 1280, OutputHeight: 720}
	tests := []struct {
		x, y int
		img  model.Screenshot
		want agentapi.Point
	}{
		{500, 250, shot, agentapi.Point{X: 640, Y: 180}},
		{500, 250, half, agentapi.Point{X: 640, Y: 180}},
		{0, 0, shot, agentapi.Point{}},
		{1000, 1000, shot, agentapi.Point{X: 1279, Y: 719}},
		{1000, 1000, half, agentapi.Point{X: 1278, Y: 718}},
		{333, 667, model.Screenshot{Width: 1920, Height: 1080, OutputWidth: 1920, OutputHeight: 1080}, agentapi.Point{X: 639, Y: 720}},
	}
	for _, tt := range tests {
		if got := holo.ToOutput(tt.x, tt.y, tt.img); got != tt.want {
			t.Errorf("ToOutput(%d, %d, %dx%d) = %v, want %v", tt.x, tt.y, tt.img.Width, tt.img.Height, got, tt.want)
		}
	}

	srv := modeltest.OpenAISteps(t, []modeltest.OpenAIStep{{
		Content:      json.RawMessage(`{"note":null,"thought":"click it","tool_call":{"tool_name":"click","element":"target","x":500,"y":250}}`),
		PromptTokens: 10, CompletionTokens: 5,
	}})
	got, err := start(t, srv).Next(t.Context(), model.Turn{Step: 1, Screenshot: half})
	if err != nil {
		t.Fatal(err)
	}
	want := []agentapi.Request{{V: 1, Action: agentapi.LeftClick, Coordinate: &agentapi.Point{X: 640, Y: 180}}}
	if diff := cmp.Diff(want, got.Actions); diff != "" {
		t.Errorf("click (-want +got):\n%s", diff)
	}
}

func TestUnusableOutput(t *testing.T) {
	tests := []struct{ name, content, finish string }{
		{"not json", `"I will click the button."`, ""},
		{"unknown tool", `{"note":null,"thought":"t","tool_call":{"tool_name":"explode"}}`, ""},
		{"missing arg", `{"note":null,"thought":"t","tool_call":{"tool_name":"click","element":"e","x":5}}`, ""},
		{"extra arg", `{"note":null,"thought":"t","tool_call":{"tool_name":"type","content":"a","x":1}}`, ""},
		{"out of range", `{"note":null,"thought":"t","tool_call":{"tool_name":"click","element":"e","x":5,"y":1001}}`, ""},
		{"cut off", `"{\"note\": null, \"thou"`, "length"},
		{"empty question", `{"note":null,"thought":"t","tool_call":{"tool_name":"ask_user","question":" \n"}}`, ""},
		{"no question", `{"note":null,"thought":"t","tool_call":{"tool_name":"ask_user"}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := modeltest.OpenAISteps(t, []modeltest.OpenAIStep{
				{Content: json.RawMessage(tt.content), FinishReason: tt.finish, PromptTokens: 100, CompletionTokens: 9},
				{Content: json.RawMessage(`{"note":null,"thought":"t","tool_call":{"tool_name":"answer","content":"ok"}}`), PromptTokens: 120, CompletionTokens: 9},
			})
			c := start(t, srv)
			_, err := c.Next(t.Context(), model.Turn{Step: 1, Screenshot: shot})
			oe, ok := errors.AsType[*model.OutputError](err)
			if !ok || !errors.Is(err, model.ErrOutput) {
				t.Fatalf("got %v, want an output error", err)
			}
			if oe.Usage.InputTokens != 100 {
				t.Errorf("usage = %+v, want the call's 100 input tokens charged", oe.Usage)
			}
			// Fed back, the model can recover.
			got, err := c.Next(t.Context(), model.Turn{Step: 2, Screenshot: shot, Error: err.Error()})
			if err != nil || !got.Done {
				t.Fatalf("after feedback: %+v, %v", got, err)
			}
			if raw := string(srv.Requests()[1].Raw); !strings.Contains(raw, "could not be carried out") {
				t.Error("the second request does not feed the error back")
			}
		})
	}
}

func TestRetriesServerErrors(t *testing.T) {
	srv := modeltest.OpenAISteps(t, []modeltest.OpenAIStep{
		{Status: 500, Error: "EngineCore encountered an issue"},
		{Status: 503, Error: "server overloaded"},
		{Content: json.RawMessage(`{"note":null,"thought":"t","tool_call":{"tool_name":"answer","content":"ok"}}`), PromptTokens: 50, CompletionTokens: 5},
	})
	got, err := start(t, srv).Next(t.Context(), model.Turn{Step: 1, Screenshot: shot})
	if err != nil || !got.Done {
		t.Fatalf("got %+v, %v; want the answer after two retries", got, err)
	}
	if n := len(srv.Requests()); n != 3 {
		t.Errorf("server got %d requests, want 3", n)
	}

	bad := modeltest.OpenAISteps(t, []modeltest.OpenAIStep{{Status: 400, Error: "image limit exceeded"}})
	if _, err := start(t, bad).Next(t.Context(), model.Turn{Step: 1, Screenshot: shot}); err == nil || errors.Is(err, model.ErrOutput) {
		t.Fatalf("400: got %v, want a plain error", err)
	}
	if n := len(bad.Requests()); n != 1 {
		t.Errorf("a 400 was sent %d times, want 1 (not retried)", n)
	}
}

func TestStructuredOutputsField(t *testing.T) {
	srv := modeltest.OpenAISteps(t, []modeltest.OpenAIStep{{
		Content: json.RawMessage(`{"note":null,"thought":"t","tool_call":{"tool_name":"answer","content":"ok"}}`), ReasoningContent: true, Reasoning: "r",
	}})
	b := holo.New(holo.Options{Endpoint: srv.URL, Output: holo.OutputStructured, Model: "holo3-122b-a10b"})
	c, _ := b.Start(t.Context(), model.Start{Goal: "g"})
	if _, err := c.Next(t.Context(), model.Turn{Step: 1, Screenshot: shot}); err != nil {
		t.Fatal(err)
	}
	body := srv.Requests()[0].Body
	so, _ := body["structured_outputs"].(map[string]any)
	if so["json"] == nil || body["response_format"] != nil || body["model"] != "holo3-122b-a10b" {
		t.Errorf("body = structured_outputs %v, response_format %v, model %v", body["structured_outputs"], body["response_format"], body["model"])
	}
}

func TestStartRefusesScript(t *testing.T) {
	_, err := holo.New(holo.Options{}).Start(t.Context(), model.Start{Goal: "g", Script: []agentapi.Request{{Action: agentapi.Wait, Duration: 1}}})
	if !errors.Is(err, model.ErrBadStart) {
		t.Fatalf("got %v, want ErrBadStart", err)
	}
}

func TestImageBudgetIsConfigurable(t *testing.T) {
	steps := make([]modeltest.OpenAIStep, 3)
	for i := range steps {
		steps[i] = modeltest.OpenAIStep{Content: json.RawMessage(`{"note":null,"thought":"t","tool_call":{"tool_name":"wait","seconds":1}}`)}
	}
	srv := modeltest.OpenAISteps(t, steps)
	c, _ := holo.New(holo.Options{Endpoint: srv.URL, MaxImages: 1}).Start(t.Context(), model.Start{Goal: goal})
	for i := range steps {
		if _, err := c.Next(t.Context(), model.Turn{Goal: goal, Step: i + 1, Screenshot: shot, Results: []model.Result{{}}}); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range srv.Requests() {
		if n := strings.Count(string(r.Raw), `"type":"image_url"`); n != 1 {
			t.Errorf("request %d holds %d images, want 1", i+1, n)
		}
	}
}

const (
	helpGoal   = "commit the staged changes in ~/project"
	question   = "README.md and cmd/main.go are staged in ~/project. What commit message should I use?"
	helpAnswer = "Fix the usage text in README and main"
)

// lastUserText returns the text parts of a request's last message.
func lastUserText(t *testing.T, r modeltest.Request) string {
	t.Helper()
	msgs := r.Body["messages"].([]any)
	var sb strings.Builder
	for _, p := range msgs[len(msgs)-1].(map[string]any)["content"].([]any) {
		if text, ok := p.(map[string]any)["text"].(string); ok {
			sb.WriteString(text)
		}
	}
	return sb.String()
}

func TestAskForHelpThenContinue(t *testing.T) {
	srv := modeltest.OpenAI(t, modeltest.Transcript("holo_ask_for_help.json"))
	c := start(t, srv)
	click := func(x, y int) agentapi.Request {
		return agentapi.Request{V: 1, Action: agentapi.LeftClick, Coordinate: &agentapi.Point{X: x, Y: y}}
	}
	enter := agentapi.Request{V: 1, Action: agentapi.Key, Text: "Return"}
	const staged = "staged: README.md, cmd/main.go"
	want := []model.Reply{
		{Thought: "Open a terminal with super+Return.", Actions: []agentapi.Request{{V: 1, Action: agentapi.Key, Text: "super+Return"}}},
		{Thought: "List the staged changes.", Actions: []agentapi.Request{
			click(640, 345), {V: 1, Action: agentapi.Type, Text: "cd ~/project && git diff --cached --stat"}, enter,
		}},
		{Thought: "The commit message is the user's choice; ask for it.", Note: staged, Help: question},
		{Thought: "Commit with the message the user gave.", Note: staged, Actions: []agentapi.Request{
			click(640, 403), {V: 1, Action: agentapi.Type, Text: `git commit -m "` + helpAnswer + `"`}, enter,
		}},
		{Thought: "The commit was made.", Done: true, Answer: `Committed README.md and cmd/main.go in ~/project as "` + helpAnswer + `".`},
	}
	reqs := modeltest.Replay(t, srv, c, helpGoal, shot, helpAnswer, want)
	sys := reqs[0].Body["messages"].([]any)[0].(map[string]any)["content"].(string)
	if !strings.Contains(sys, "Call ask_user only when") || !strings.Contains(sys, `"const":"ask_user"`) {
		t.Error("system prompt does not offer ask_user in its text and schema")
	}
	reply := "<user_reply>the person's reply to your ask_user question: " + helpAnswer + "</user_reply>"
	for i, r := range reqs {
		if got := strings.Contains(lastUserText(t, r), reply); got != (i == 3) {
			t.Errorf("request %d carries the reply: %v, want only request 4 to", i+1, got)
		}
	}
	// The question stays in the history the model sees after the answer.
	if !strings.Contains(string(reqs[3].Raw), `\"tool_name\":\"ask_user\"`) {
		t.Error("request 4 lacks the assistant turn that asked")
	}
}

func TestHandBackWithoutAnswer(t *testing.T) {
	srv := modeltest.OpenAISteps(t, []modeltest.OpenAIStep{
		{Content: json.RawMessage(`{"note":null,"thought":"t","tool_call":{"tool_name":"ask_user","question":"Which account?"}}`)},
		{Content: json.RawMessage(`{"note":null,"thought":"t","tool_call":{"tool_name":"answer","content":"ok"}}`)},
	})
	c := start(t, srv)
	got, err := c.Next(t.Context(), model.Turn{Step: 1, Screenshot: shot})
	if err != nil || got.Help != "Which account?" || len(got.Actions) != 0 || got.Done {
		t.Fatalf("got %+v, %v; want a help reply", got, err)
	}
	if _, err := c.Next(t.Context(), model.Turn{Step: 2, Screenshot: shot, Answered: true}); err != nil {
		t.Fatal(err)
	}
	text := lastUserText(t, srv.Requests()[1])
	if !strings.Contains(text, "<user_reply>the person handed control back without answering") {
		t.Errorf("second observation = %q, want it to say the person gave no answer", text)
	}
}

// TestNativeFunctionCalling drives Holo3.1 with its tools declared as
// functions: the request carries tools and tool_choice "required" and no
// output schema; each call comes back as a step; every call is answered by
// a tool message before the next observation (the fake refuses a request
// otherwise), an unusable one with its error.
func TestNativeFunctionCalling(t *testing.T) {
	srv := modeltest.OpenAI(t, modeltest.Transcript("holo31_tool_calls.json"))
	b := holo.New(holo.Options{Endpoint: srv.URL, Output: holo.OutputTools, Model: "holo3-1-35b-a3b"})
	c, err := b.Start(t.Context(), model.Start{Goal: goal})
	if err != nil {
		t.Fatal(err)
	}
	at := &agentapi.Point{X: 640, Y: 180}
	want := []struct {
		reply  model.Reply
		errHas string
	}{
		{reply: model.Reply{Thought: "Open a terminal with super+Return.", Actions: []agentapi.Request{{V: 1, Action: agentapi.Key, Text: "super+Return"}}}},
		{errHas: `tool click has no argument "button"`},
		{reply: model.Reply{Thought: "Type the command.", Actions: []agentapi.Request{
			{V: 1, Action: agentapi.LeftClick, Coordinate: at}, {V: 1, Action: agentapi.Type, Text: "echo holo-ok > ~/done"}, {V: 1, Action: agentapi.Key, Text: "Return"},
		}}},
		{reply: model.Reply{Thought: "Done.", Done: true, Answer: "Wrote holo-ok to ~/done."}},
	}
	var prev model.Reply
	feedback := ""
	for i, w := range want {
		got, err := c.Next(t.Context(), model.Turn{Goal: goal, Step: i + 1, Screenshot: shot, Results: make([]model.Result, len(prev.Actions)), Error: feedback})
		if w.errHas != "" {
			if !errors.Is(err, model.ErrOutput) || !strings.Contains(err.Error(), w.errHas) {
				t.Fatalf("step %d: %v, want an output error with %q", i+1, err, w.errHas)
			}
			prev, feedback = model.Reply{}, err.Error()
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %v", i+1, err)
		}
		if got.Usage.InputTokens == 0 || got.Usage.Model != "holo3-1-35b-a3b" {
			t.Errorf("step %d usage %+v", i+1, got.Usage)
		}
		got.Usage = model.Usage{}
		if diff := cmp.Diff(w.reply, got); diff != "" {
			t.Errorf("step %d (-want +got):\n%s", i+1, diff)
		}
		prev, feedback = got, ""
	}
	reqs := srv.Requests()
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(reqs), len(want))
	}
	first := reqs[0].Body
	tools, _ := first["tools"].([]any)
	fn, _ := tools[0].(map[string]any)["function"].(map[string]any)
	if len(tools) < 10 || fn["name"] != "click" || first["tool_choice"] != "required" || first["parallel_tool_calls"] != false ||
		first["response_format"] != nil || first["structured_outputs"] != nil {
		t.Errorf("first request: %d tools (first %v), tool_choice %v, response_format %v, structured_outputs %v",
			len(tools), fn["name"], first["tool_choice"], first["response_format"], first["structured_outputs"])
	}
	var last struct {
		Messages []struct {
			Role       string `json:"role"`
			Content    any    `json:"content"`
			ToolCallID string `json:"tool_call_id"`
			ToolCalls  []struct {
				ID       string `json:"id"`
				Function struct{ Name, Arguments string }
			} `json:"tool_calls"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(reqs[3].Raw, &last); err != nil {
		t.Fatal(err)
	}
	var calls, results []string
	for _, m := range last.Messages {
		for _, tc := range m.ToolCalls {
			calls = append(calls, tc.Function.Name+" "+tc.Function.Arguments)
		}
		if m.Role == "tool" {
			results = append(results, fmt.Sprint(m.Content))
		}
	}
	wantCalls := []string{`key_press {"keys":"super+Return"}`, `click {"element": "terminal", "x": 500, "y": 250, "button": "left"}`,
		`write {"element":"terminal","x":500,"y":250,"content":"echo holo-ok > ~/done","press_enter":true}`}
	if diff := cmp.Diff(wantCalls, calls); diff != "" {
		t.Errorf("function calls sent back (-want +got):\n%s", diff)
	}
	if len(results) != 3 || !strings.Contains(results[0], "ok") || !strings.Contains(results[1], `no argument \"button\"`) && !strings.Contains(results[1], `no argument "button"`) {
		t.Errorf("tool messages = %q, want ok, then the click's error", results)
	}
	if strings.Contains(string(reqs[3].Raw), "sway: super+Return opens the terminal") || strings.Contains(string(reqs[3].Raw), "<output_format>") {
		t.Error("reasoning or an output schema was sent in function-calling mode")
	}
}

// TestToolCallsNeedHolo31: Holo3 models have no native function calling.
func TestToolCallsNeedHolo31(t *testing.T) {
	b := holo.New(holo.Options{Endpoint: "http://127.0.0.1:1/v1", Output: holo.OutputTools})
	for _, m := range []string{"holo3-35b-a3b", "holo3-122b-a10b"} {
		if _, err := b.Start(t.Context(), model.Start{Goal: "g", Model: m}); !errors.Is(err, model.ErrBadStart) {
			t.Errorf("%s with tools: %v, want ErrBadStart", m, err)
		}
	}
	if _, err := b.Start(t.Context(), model.Start{Goal: "g", Model: "holo3-1-35b-a3b"}); err != nil {
		t.Errorf("holo3-1-35b-a3b with tools: %v", err)
	}
}
