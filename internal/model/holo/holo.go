// Package holo drives H Company's Holo3 / Holo3.1 computer-use models over an
// OpenAI-compatible chat completions server (vLLM or H's API) through the
// official openai-go SDK, following research/models.md §1: structured output
// {note, thought, tool_call}, the chat layout with <task>/<observation> tags,
// at most three screenshots in context, reasoning on (and never sent back),
// and coordinates in [0, 1000] scaled to the exact image sent. An ask_user
// tool lets the model put a question to a person; their reply is the next
// observation's <user_reply>.
package holo

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"atelier/internal/agentapi"
	"atelier/internal/model"
)

// Defaults.
const (
	DefaultEndpoint  = "http://localhost:8000/v1"
	DefaultModel     = "holo3-35b-a3b"
	DefaultMaxTokens = 4096
	// DefaultMaxImages is H's image budget: older screenshots are replaced
	// by a placeholder that keeps the <observation> wrapper.
	DefaultMaxImages = 3
)

// Options configure the backend. Zero values take the defaults.
type Options struct {
	Endpoint  string // HOLO3_ENDPOINT
	APIKey    string // HAI_API_KEY for H's API; vLLM needs none
	Model     string
	MaxTokens int64
	// Output is how the step format is asked for; "" means
	// OutputResponseFormat.
	Output OutputMode
	// MaxImages is how many screenshots a request carries; a vLLM started
	// with --limit-mm-per-prompt '{"image": 1}' needs 1. 0 means 3.
	MaxImages int
	// MaxRetries is the SDK's retry count on 408/409/429/5xx and connection
	// errors, with exponential backoff; 0 means 2, negative means none.
	MaxRetries int
}

// OutputMode is how a request constrains the model's output.
type OutputMode string

// Output modes. H's docs say to pick one and stay in it: tools must not be
// combined with structured outputs (research/models.md §1.2, §1.6).
const (
	// OutputResponseFormat sends the step schema as OpenAI's
	// response_format json_schema (vLLM honours it).
	OutputResponseFormat OutputMode = "response_format"
	// OutputStructured sends it as H's top-level structured_outputs field.
	OutputStructured OutputMode = "structured_outputs"
	// OutputTools declares each tool as an OpenAI function and takes the
	// reply's tool_calls: native function calling, Holo3.1 only.
	OutputTools OutputMode = "tools"
)

// OutputModes lists the accepted output modes.
var OutputModes = []OutputMode{OutputResponseFormat, OutputStructured, OutputTools}

// Models lists the Holo models this backend knows (H's model ids, which a
// self-hosted server should serve under); model.DefaultPrices prices each.
// Native function calling (OutputTools) is Holo3.1's alone.
var Models = map[string]struct{ ToolCalls bool }{
	"holo3-1-35b-a3b": {ToolCalls: true},
	"holo3-122b-a10b": {},
	"holo3-35b-a3b":   {},
}

// Backend starts Holo conversations.
type Backend struct {
	opts   Options
	client openai.Client
}

// New returns a Backend.
func New(opts Options) *Backend {
	opts.Endpoint = cmp.Or(opts.Endpoint, DefaultEndpoint)
	opts.Model = cmp.Or(opts.Model, DefaultModel)
	opts.MaxTokens = cmp.Or(opts.MaxTokens, DefaultMaxTokens)
	opts.MaxImages = cmp.Or(opts.MaxImages, DefaultMaxImages)
	opts.Output = cmp.Or(opts.Output, OutputResponseFormat)
	retries := cmp.Or(opts.MaxRetries, 2)
	reqOpts := []option.RequestOption{option.WithBaseURL(opts.Endpoint), option.WithMaxRetries(max(retries, 0))}
	// The SDK refuses to send without a key; a local vLLM ignores it.
	reqOpts = append(reqOpts, option.WithAPIKey(cmp.Or(opts.APIKey, "none")))
	return &Backend{opts: opts, client: openai.NewClient(reqOpts...)}
}

// Start begins a conversation toward s.Goal.
func (b *Backend) Start(_ context.Context, s model.Start) (model.Conversation, error) {
	if len(s.Script) > 0 {
		return nil, fmt.Errorf("%w: holo takes a goal, not a script", model.ErrBadStart)
	}
	m := cmp.Or(s.Model, b.opts.Model)
	if known, ok := Models[m]; ok && !known.ToolCalls && b.opts.Output == OutputTools {
		return nil, fmt.Errorf("%w: %s has no native function calling (Holo3.1 has); use structured outputs", model.ErrBadStart, m)
	}
	return &Conversation{b: b, model: m}, nil
}

// Conversation is one task's chat with Holo.
type Conversation struct {
	b     *Backend
	model string
	turns []turn
	// lastPrompt is the previous call's prompt size, for estimates.
	lastPrompt int64
}

// turn is one exchange: what we sent (text around one screenshot) and the
// assistant's content as it is sent back (the parsed JSON only, or with
// native function calling its text and its one function call, whose
// result the next turn's tool message carries).
type turn struct {
	before, after string
	image         model.Screenshot
	assistant     string
	call          *call
}

// call is a function call of an assistant turn (OutputTools).
type call struct {
	id, name, args string
	result         string // the tool message answering it
}

// Model returns the model id.
func (c *Conversation) Model() string { return c.model }

// ScreenshotScale is 1: Holo answers in [0, 1000] of whatever it sees, and
// the full-size image keeps small targets legible.
func (c *Conversation) ScreenshotScale(int, int) float64 { return 1 }

// Estimate bounds the next call: the last prompt plus a screenshot, and a
// full completion.
func (c *Conversation) Estimate(t model.Turn) model.Usage {
	in := c.lastPrompt + model.ImageTokens(t.Screenshot.Width, t.Screenshot.Height) + 2000
	return model.Usage{Model: c.model, InputTokens: in, OutputTokens: c.b.opts.MaxTokens}
}

// systemPrompt states the job and the output format: H trained Holo3 with
// the schema both in the constraint and in the prompt.
// With native function calling, the tools are declared as functions
// instead, and the reply's text is its thought.
func systemPrompt(schema []byte, mode OutputMode) string {
	format := "Reply with exactly one JSON object: a short thought, an optional note of facts to remember " +
		"(your reasoning is not kept between turns), and one tool_call. "
	if mode == OutputTools {
		format = "Reply with a one-line plan, including any fact you must remember (your reasoning is not " +
			"kept between turns), and call exactly one tool. "
	}
	prompt := "You operate a Linux desktop (sway) to accomplish the user's task. Each turn you get an " +
		"observation with a screenshot. " + format +
		"Coordinates x and y are integers from 0 to 1000, relative to the screenshot's width and height, " +
		"origin at the top-left. Keys use xdotool names (Return, Escape, ctrl+l, super+Return). " +
		"When the task is done, call answer; if it cannot be done, call fail. Call ask_user only when you " +
		"cannot go on without a person: credentials you were not given, or a choice only the user can " +
		"make. Ask one clear question; the person's reply comes in the next observation as <user_reply>."
	if mode == OutputTools {
		return prompt
	}
	return prompt + "\n<output_format>\n" + string(schema) + "\n</output_format>"
}

// observation writes the text around turn t's screenshot. With native
// function calling the results go in the tool message instead
// (toolResult).
func observation(t model.Turn, mode OutputMode) (before, after string) {
	var sb strings.Builder
	if t.Step == 1 {
		fmt.Fprintf(&sb, "<task>%s</task>\n", t.Goal)
	}
	fmt.Fprintf(&sb, "<observation step=%d>\n", t.Step)
	if mode != OutputTools {
		sb.WriteString(results(t))
	}
	if t.Answered {
		if t.Answer != "" {
			fmt.Fprintf(&sb, "<user_reply>the person's reply to your ask_user question: %s</user_reply>\n", t.Answer)
		} else {
			sb.WriteString("<user_reply>the person handed control back without answering your ask_user question</user_reply>\n")
		}
	}
	for _, n := range t.Notes {
		fmt.Fprintf(&sb, "<event>%s</event>\n", n)
	}
	sb.WriteString("<screenshot>")
	return sb.String(), "</screenshot>\n</observation>"
}

// results reports the previous reply's outcome: why it could not be
// carried out, or each action's result.
func results(t model.Turn) string {
	var sb strings.Builder
	if t.Error != "" {
		fmt.Fprintf(&sb, "<error>your previous reply could not be carried out: %s</error>\n", t.Error)
	}
	for i, r := range t.Results {
		if r.Error != "" {
			fmt.Fprintf(&sb, "<tool_result index=%d>error: %s</tool_result>\n", i+1, r.Error)
		} else {
			fmt.Fprintf(&sb, "<tool_result index=%d>ok</tool_result>\n", i+1)
		}
	}
	return sb.String()
}

// toolResult is the tool message answering the previous reply's function
// call.
func toolResult(t model.Turn) string {
	if r := strings.TrimSpace(results(t)); r != "" {
		return r
	}
	return "done; see the next observation"
}

// messages lays out the chat: system, then user/assistant turns, the newest
// MaxImages keeping their screenshots.
func (c *Conversation) messages(schema []byte) []openai.ChatCompletionMessageParamUnion {
	msgs := []openai.ChatCompletionMessageParamUnion{openai.SystemMessage(systemPrompt(schema, c.b.opts.Output))}
	for i, t := range c.turns {
		if i > 0 && c.turns[i-1].call != nil {
			// Every function call is answered before the next observation.
			prev := c.turns[i-1].call
			msgs = append(msgs, openai.ToolMessage(prev.result, prev.id))
		}
		parts := []openai.ChatCompletionContentPartUnionParam{openai.TextContentPart(t.before)}
		if i >= len(c.turns)-c.b.opts.MaxImages {
			url := "data:" + t.image.MediaType() + ";base64," + base64.StdEncoding.EncodeToString(t.image.Data)
			parts = append(parts, openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: url}))
		} else {
			parts = append(parts, openai.TextContentPart("(an earlier screenshot, no longer shown)"))
		}
		parts = append(parts, openai.TextContentPart(t.after))
		msgs = append(msgs, openai.UserMessage(parts))
		switch {
		case t.call != nil:
			a := openai.ChatCompletionAssistantMessageParam{ToolCalls: []openai.ChatCompletionMessageToolCallUnionParam{{
				OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{ID: t.call.id,
					Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: t.call.name, Arguments: t.call.args}},
			}}}
			if t.assistant != "" {
				a.Content.OfString = openai.String(t.assistant)
			}
			msgs = append(msgs, openai.ChatCompletionMessageParamUnion{OfAssistant: &a})
		case t.assistant != "":
			msgs = append(msgs, openai.AssistantMessage(t.assistant))
		}
	}
	return msgs
}

// Next sends the observation and parses the step.
func (c *Conversation) Next(ctx context.Context, t model.Turn) (model.Reply, error) {
	mode := c.b.opts.Output
	if n := len(c.turns); n > 0 && c.turns[n-1].call != nil {
		c.turns[n-1].call.result = toolResult(t)
	}
	before, after := observation(t, mode)
	c.turns = append(c.turns, turn{before: before, after: after, image: t.Screenshot})
	schema := stepSchema()
	schemaJSON, err := json.Marshal(schema)
	if err != nil {
		return model.Reply{}, fmt.Errorf("encode schema: %w", err)
	}
	params := openai.ChatCompletionNewParams{
		Model:           c.model,
		Messages:        c.messages(schemaJSON),
		MaxTokens:       openai.Int(c.b.opts.MaxTokens),
		ReasoningEffort: shared.ReasoningEffortMedium,
	}
	extra := map[string]any{"chat_template_kwargs": map[string]any{"enable_thinking": true}}
	switch mode {
	case OutputStructured:
		extra["structured_outputs"] = map[string]any{"json": schema}
	case OutputTools:
		params.Tools = functionTools()
		params.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")}
		params.ParallelToolCalls = openai.Bool(false)
	default:
		params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "step", Schema: schema, Strict: openai.Bool(true)},
		}}
	}
	params.SetExtraFields(extra)

	resp, err := c.b.client.Chat.Completions.New(ctx, params)
	if err != nil {
		c.turns = c.turns[:len(c.turns)-1] // nothing was answered; the loop ends or retries the turn
		return model.Reply{}, fmt.Errorf("holo %s: %w", c.model, err)
	}
	// Priced under the id we asked for: a server may report another name.
	usage := model.Usage{
		Model:           c.model,
		InputTokens:     resp.Usage.PromptTokens - resp.Usage.PromptTokensDetails.CachedTokens,
		CacheReadTokens: resp.Usage.PromptTokensDetails.CachedTokens,
		OutputTokens:    resp.Usage.CompletionTokens,
		ReasoningTokens: resp.Usage.CompletionTokensDetails.ReasoningTokens,
	}
	c.lastPrompt = resp.Usage.PromptTokens
	if len(resp.Choices) == 0 {
		return model.Reply{}, model.OutputErrorf(usage, "the server returned no choices")
	}
	ch := resp.Choices[0]
	last := &c.turns[len(c.turns)-1]
	var st step
	if mode == OutputTools {
		st, err = c.parseToolReply(ch, last)
	} else {
		st, err = c.parseContentReply(ch, last)
	}
	if err != nil {
		return model.Reply{}, model.OutputErrorf(usage, "%v", err)
	}
	reply, err := st.toReply(t.Screenshot)
	if err != nil {
		return model.Reply{}, model.OutputErrorf(usage, "%v", err)
	}
	reply.Usage = usage
	return reply, nil
}

// parseContentReply parses a step object from the reply's content and
// records, as the assistant turn, only that object (reasoning is never
// resent), or the content as it came when it is unusable.
func (c *Conversation) parseContentReply(ch openai.ChatCompletionChoice, last *turn) (step, error) {
	content := ch.Message.Content
	last.assistant = content
	if ch.FinishReason == "length" {
		return step{}, fmt.Errorf("the reply was cut off at max_tokens (%d)", c.b.opts.MaxTokens)
	}
	st, err := parseStep(content)
	if err != nil {
		return st, err
	}
	last.assistant = st.canonical
	return st, nil
}

// parseToolReply parses the reply's first function call (parallel calls
// are off; any others are dropped from the history) and records it, with
// the reply's text as its thought. A call that cannot be used is still
// recorded, so the next turn's tool message answers it with the error.
func (c *Conversation) parseToolReply(ch openai.ChatCompletionChoice, last *turn) (step, error) {
	last.assistant = strings.TrimSpace(ch.Message.Content)
	if ch.FinishReason == "length" && len(ch.Message.ToolCalls) == 0 {
		return step{}, fmt.Errorf("the reply was cut off at max_tokens (%d)", c.b.opts.MaxTokens)
	}
	if len(ch.Message.ToolCalls) == 0 {
		return step{}, errors.New("the reply called no tool: call exactly one")
	}
	tc := ch.Message.ToolCalls[0]
	last.call = &call{id: tc.ID, name: tc.Function.Name, args: tc.Function.Arguments}
	st, err := parseCall(tc.Function.Name, tc.Function.Arguments)
	if err != nil {
		return st, err
	}
	st.Thought, last.call.args = last.assistant, st.canonical
	return st, nil
}

// step is one parsed reply.
type step struct {
	Note     *string         `json:"note"`
	Thought  string          `json:"thought"`
	ToolCall json.RawMessage `json:"tool_call"`

	call      map[string]json.RawMessage
	canonical string
}

// parseStep parses a reply's content strictly: one JSON object with the
// three fields, a tool_call naming a known tool with exactly its arguments.
func parseStep(content string) (step, error) {
	var st step
	s := strings.TrimSpace(content)
	// Servers without constrained decoding sometimes fence the JSON.
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(s, "```json"), "```"), "```")
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return st, fmt.Errorf("the reply is not the step object: %v", err)
	}
	if dec.More() {
		return st, errors.New("the reply has data after the step object")
	}
	if err := json.Unmarshal(st.ToolCall, &st.call); err != nil || st.call == nil {
		return st, errors.New("tool_call is not an object")
	}
	if err := st.checkCall(); err != nil {
		return st, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err == nil {
		st.canonical = buf.String()
	}
	return st, nil
}

// parseCall parses a native function call strictly: a known tool with a
// JSON object of exactly its arguments. Its canonical form is the
// arguments, compacted.
func parseCall(name, args string) (step, error) {
	var st step
	dec := json.NewDecoder(strings.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st.call); err != nil || st.call == nil || dec.More() {
		return st, fmt.Errorf("the arguments of %s are not one JSON object", name)
	}
	if _, ok := st.call["tool_name"]; ok {
		return st, fmt.Errorf("tool %s has no argument %q", name, "tool_name")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(args)); err == nil {
		st.canonical = buf.String()
	}
	st.call["tool_name"], _ = json.Marshal(name)
	return st, st.checkCall()
}

// checkCall checks that the call names a known tool and gives exactly its
// arguments.
func (st step) checkCall() error {
	var name string
	if err := json.Unmarshal(st.call["tool_name"], &name); err != nil {
		return errors.New("tool_call has no tool_name")
	}
	i := slices.IndexFunc(tools, func(t tool) bool { return t.name == name })
	if i < 0 {
		return fmt.Errorf("unknown tool %q", name)
	}
	for arg := range st.call {
		if _, ok := tools[i].props[arg]; !ok && arg != "tool_name" {
			return fmt.Errorf("tool %s has no argument %q", name, arg)
		}
	}
	for _, arg := range slices.Sorted(maps.Keys(tools[i].props)) {
		if _, ok := st.call[arg]; !ok && !optional[arg] {
			return fmt.Errorf("tool %s needs %q", name, arg)
		}
	}
	return nil
}

func (st step) str(name string) (string, error) {
	var s string
	if err := json.Unmarshal(st.call[name], &s); err != nil {
		return "", fmt.Errorf("%s must be a string", name)
	}
	return s, nil
}

func (st step) num(name string) (float64, error) {
	var f float64
	if err := json.Unmarshal(st.call[name], &f); err != nil {
		return 0, fmt.Errorf("%s must be a number", name)
	}
	return f, nil
}

// point maps (x, y) in [0, 1000] of the image to output pixels.
func (st step) point(xName, yName string, img model.Screenshot) (*agentapi.Point, error) {
	x, errX := st.num(xName)
	y, errY := st.num(yName)
	if err := cmp.Or(errX, errY); err != nil {
		return nil, err
	}
	if x != float64(int(x)) || y != float64(int(y)) || x < 0 || y < 0 || x > 1000 || y > 1000 {
		return nil, fmt.Errorf("(%v, %v) is not a pair of integers in [0, 1000]", x, y)
	}
	p := ToOutput(int(x), int(y), img)
	return &p, nil
}

// ToOutput maps Holo's (x, y) in [0, 1000] to a pixel of the image sent,
// then to the output: px = x·W/1000, with 1000 landing on the last pixel.
func ToOutput(x, y int, img model.Screenshot) agentapi.Point {
	px := min(x*img.Width/1000, img.Width-1)
	py := min(y*img.Height/1000, img.Height-1)
	return img.ToOutput(px, py)
}

// toReply maps the tool call to protocol-v1 actions in output pixels.
func (st step) toReply(img model.Screenshot) (model.Reply, error) {
	r := model.Reply{Thought: st.Thought}
	if st.Note != nil {
		r.Note = *st.Note
	}
	name, _ := st.str("tool_name")
	req := func(v agentapi.Verb) agentapi.Request { return agentapi.Request{V: agentapi.Version, Action: v} }
	at := func(v agentapi.Verb) error {
		p, err := st.point("x", "y", img)
		if err != nil {
			return err
		}
		a := req(v)
		a.Coordinate = p
		r.Actions = append(r.Actions, a)
		return nil
	}
	var err error
	switch name {
	case "click":
		err = at(agentapi.LeftClick)
	case "double_click":
		err = at(agentapi.DoubleClick)
	case "right_click":
		err = at(agentapi.RightClick)
	case "mouse_move":
		err = at(agentapi.MouseMove)
	case "write":
		if err = at(agentapi.LeftClick); err != nil {
			break
		}
		var content string
		if content, err = st.str("content"); err != nil {
			break
		}
		a := req(agentapi.Type)
		a.Text = content
		r.Actions = append(r.Actions, a)
		var enter bool
		if raw, ok := st.call["press_enter"]; ok && json.Unmarshal(raw, &enter) == nil && enter {
			k := req(agentapi.Key)
			k.Text = "Return"
			r.Actions = append(r.Actions, k)
		}
	case "type":
		a := req(agentapi.Type)
		a.Text, err = st.str("content")
		r.Actions = append(r.Actions, a)
	case "key_press":
		a := req(agentapi.Key)
		a.Text, err = st.str("keys")
		r.Actions = append(r.Actions, a)
	case "scroll":
		a := req(agentapi.Scroll)
		if a.Coordinate, err = st.point("x", "y", img); err != nil {
			break
		}
		if a.ScrollDirection, err = st.str("direction"); err != nil {
			break
		}
		a.ScrollAmount = 3
		if _, ok := st.call["amount"]; ok {
			var n float64
			if n, err = st.num("amount"); err != nil {
				break
			}
			a.ScrollAmount = int(n)
		}
		r.Actions = append(r.Actions, a)
	case "drag":
		a := req(agentapi.LeftClickDrag)
		if a.StartCoordinate, err = st.point("x1", "y1", img); err != nil {
			break
		}
		a.Coordinate, err = st.point("x2", "y2", img)
		r.Actions = append(r.Actions, a)
	case "wait":
		a := req(agentapi.Wait)
		a.Duration, err = st.num("seconds")
		r.Actions = append(r.Actions, a)
	case "answer":
		r.Done = true
		r.Answer, err = st.str("content")
	case "fail":
		r.Done, r.Failed = true, true
		r.Answer, err = st.str("reason")
	case askUser:
		var q string
		if q, err = st.str("question"); err == nil && strings.TrimSpace(q) == "" {
			err = errors.New("question is empty")
		}
		r.Help = strings.TrimSpace(q)
	}
	if err != nil {
		return model.Reply{}, fmt.Errorf("tool %s: %v", name, err)
	}
	return r, nil
}
