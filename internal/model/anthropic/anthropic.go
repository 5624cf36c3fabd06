// Package anthropic drives Claude through Anthropic's Computer Use tool,
// with the official anthropic-sdk-go (v2), following research/models.md §2:
// the computer tool version and beta header that match the model,
// screenshots scaled down to fit WXGA and coordinates scaled back up, every
// tool_use of a reply run in order and answered with a tool_result, the new
// screenshot in the last one, and the SDK's retries with backoff on
// 408/409/429/5xx (529 included).
//
// Next to the computer tool the model gets ask_user, a custom tool whose
// question goes to a person (Reply.Help); its tool_result is their reply.
// A reply that asks runs none of its computer actions: they are answered
// "not run", so the model acts on the answer rather than on a guess.
// Several ask_user calls in one reply are one question to the person, each
// answered with their reply.
package anthropic

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	sdk "github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"atelier/internal/agentapi"
	"atelier/internal/model"
)

// Defaults.
const (
	DefaultModel     = "claude-sonnet-4-5"
	DefaultMaxTokens = 4096
	// MaxWidth and MaxHeight bound the screenshots sent (WXGA): Anthropic
	// advises against larger ones, and the API would downscale them
	// silently, breaking the coordinate mapping.
	MaxWidth, MaxHeight = 1280, 800
	// MaxImages is how many screenshots stay in the conversation; older
	// ones become a text placeholder.
	MaxImages = 5
)

// Options configure the backend. Zero values take the defaults.
type Options struct {
	APIKey    string // ANTHROPIC_API_KEY; required to start a task
	BaseURL   string // default: Anthropic's API
	Model     string
	MaxTokens int64
	// MaxRetries is the SDK's retry count on 408/409/429/5xx and connection
	// errors, with exponential backoff honouring retry-after; 0 means 2,
	// negative means none.
	MaxRetries int
}

// Backend starts Claude computer-use conversations.
type Backend struct {
	opts   Options
	client sdk.Client
}

// New returns a Backend. The SDK is given the key explicitly and reads no
// credential from the environment or disk.
func New(opts Options) *Backend {
	opts.Model = cmp.Or(opts.Model, DefaultModel)
	opts.MaxTokens = cmp.Or(opts.MaxTokens, DefaultMaxTokens)
	reqOpts := []option.RequestOption{
		option.WithoutEnvironmentDefaults(),
		option.WithAPIKey(opts.APIKey),
		option.WithMaxRetries(max(cmp.Or(opts.MaxRetries, 2), 0)),
	}
	if opts.BaseURL != "" {
		reqOpts = append(reqOpts, option.WithBaseURL(opts.BaseURL))
	}
	return &Backend{opts: opts, client: sdk.NewClient(reqOpts...)}
}

// ToolVersion is a computer tool type and the beta header it needs.
type ToolVersion struct {
	Type string
	Beta sdk.AnthropicBeta
}

// Tool versions (research/models.md §2.1).
var (
	Computer20250124 = ToolVersion{"computer_20250124", sdk.AnthropicBetaComputerUse2025_01_24}
	Computer20251124 = ToolVersion{"computer_20251124", sdk.AnthropicBetaComputerUse2025_11_24}
)

// Models maps every Claude model this backend knows (by family id; dated
// snapshots and aliases resolve through model.Family) to the computer
// tool version it takes (research/models.md §2.1): Opus 4.5+ and Sonnet
// 4.6+ take computer_20251124, which older models are not guaranteed to
// accept. model.DefaultPrices prices each of them.
var Models = map[string]ToolVersion{
	"claude-3-7-sonnet": Computer20250124,
	"claude-sonnet-4":   Computer20250124,
	"claude-opus-4":     Computer20250124,
	"claude-opus-4-1":   Computer20250124,
	"claude-sonnet-4-5": Computer20250124,
	"claude-haiku-4-5":  Computer20250124,
	"claude-opus-4-5":   Computer20251124,
	"claude-opus-4-6":   Computer20251124,
	"claude-sonnet-4-6": Computer20251124,
	"claude-opus-4-7":   Computer20251124,
}

// ToolFor returns the tool version matching a model id; a model this
// backend does not know is taken to be newer, with the newest tool.
func ToolFor(modelID string) ToolVersion {
	if v, ok := Models[model.Family(modelID)]; ok {
		return v
	}
	return Computer20251124
}

// Start begins a conversation toward s.Goal.
func (b *Backend) Start(_ context.Context, s model.Start) (model.Conversation, error) {
	if len(s.Script) > 0 {
		return nil, fmt.Errorf("%w: anthropic takes a goal, not a script", model.ErrBadStart)
	}
	if b.opts.APIKey == "" {
		return nil, fmt.Errorf("%w: ANTHROPIC_API_KEY is not set", model.ErrBadStart)
	}
	m := cmp.Or(s.Model, b.opts.Model)
	return &Conversation{b: b, model: m, tool: ToolFor(m)}, nil
}

// Conversation is one task's exchange with Claude.
type Conversation struct {
	b     *Backend
	model string
	tool  ToolVersion
	// displayW, displayH are declared in the tool: the size of the images
	// sent, fixed at the first turn.
	displayW, displayH int
	msgs               []sdk.BetaMessageParam
	pending            []toolUse // awaiting a tool_result
	lastInput          int64
}

// toolUse is a tool_use of the last reply.
type toolUse struct {
	id  string
	ask bool // an ask_user call, answered with the person's reply
}

// Model returns the model id.
func (c *Conversation) Model() string { return c.model }

// ScreenshotScale fits the output within MaxWidth×MaxHeight; smaller
// outputs are sent as they are.
func (c *Conversation) ScreenshotScale(w, h int) float64 {
	return Scale(w, h)
}

// Scale returns the scale that fits w×h within MaxWidth×MaxHeight.
func Scale(w, h int) float64 {
	return min(1, float64(MaxWidth)/float64(w), float64(MaxHeight)/float64(h))
}

// Estimate bounds the next call: the last input plus a screenshot, and a
// full completion.
func (c *Conversation) Estimate(t model.Turn) model.Usage {
	in := c.lastInput + model.ImageTokens(t.Screenshot.Width, t.Screenshot.Height) + 1500
	return model.Usage{Model: c.model, InputTokens: in, OutputTokens: c.b.opts.MaxTokens}
}

const system = "You operate a Linux desktop (the sway tiling window manager; super+Return opens a terminal) " +
	"to accomplish the user's task with the computer tool. Act, then check the screenshot you get back. " +
	"When the task is done, reply with a short final answer and no tool use. Call ask_user, alone, only " +
	"when you cannot go on without a person: credentials you were not given, or a choice only the user " +
	"can make. Its result is the person's reply."

// askUser is the help tool's name.
const askUser = "ask_user"

// askTool declares ask_user; a fresh value per request, as the SDK's
// params hold pointers.
func askTool() sdk.BetaToolUnionParam {
	return sdk.BetaToolUnionParam{OfTool: &sdk.BetaToolParam{
		Name: askUser,
		Description: sdk.String("Ask the person who gave you the task one question only they can answer " +
			"(a password you were not given, a choice that is theirs). The task waits for their reply, " +
			"which is this tool's result; the screen may have changed meanwhile."),
		InputSchema: sdk.BetaToolInputSchemaParam{
			Properties: map[string]any{"question": map[string]any{"type": "string", "description": "one clear question"}},
			Required:   []string{"question"},
		},
	}}
}

func imageBlock(s model.Screenshot) sdk.BetaImageBlockParam {
	return sdk.BetaImageBlockParam{Source: sdk.BetaImageBlockParamSourceUnion{OfBase64: &sdk.BetaBase64ImageSourceParam{
		Data: base64.StdEncoding.EncodeToString(s.Data), MediaType: sdk.BetaBase64ImageSourceMediaType(s.MediaType()),
	}}}
}

// observe appends the user message of turn t: the goal and first
// screenshot, or a tool_result for every pending tool_use.
func (c *Conversation) observe(t model.Turn) {
	if len(c.msgs) == 0 {
		c.displayW, c.displayH = t.Screenshot.Width, t.Screenshot.Height
		img := imageBlock(t.Screenshot)
		c.msgs = append(c.msgs, sdk.NewBetaUserMessage(sdk.NewBetaTextBlock(t.Goal), sdk.BetaContentBlockParamUnion{OfImage: &img}))
		return
	}
	var blocks []sdk.BetaContentBlockParamUnion
	asked := slices.ContainsFunc(c.pending, func(u toolUse) bool { return u.ask })
	action := 0 // index of the computer action in t.Results
	for i, u := range c.pending {
		res := sdk.BetaToolResultBlockParam{ToolUseID: u.id}
		text, isErr := c.result(t, u, asked, action)
		if !u.ask {
			action++
		}
		if isErr {
			res.IsError = sdk.Bool(true)
		}
		if text != "" {
			res.Content = append(res.Content, sdk.BetaToolResultBlockParamContentUnion{OfText: &sdk.BetaTextBlockParam{Text: text}})
		}
		if i == len(c.pending)-1 {
			img := imageBlock(t.Screenshot)
			res.Content = append(res.Content, sdk.BetaToolResultBlockParamContentUnion{OfImage: &img})
		}
		blocks = append(blocks, sdk.BetaContentBlockParamUnion{OfToolResult: &res})
	}
	for _, n := range t.Notes {
		blocks = append(blocks, sdk.NewBetaTextBlock(n))
	}
	if len(blocks) == 0 {
		// The model ended its turn without tools but the task goes on.
		img := imageBlock(t.Screenshot)
		blocks = append(blocks, sdk.NewBetaTextBlock("Continue."), sdk.BetaContentBlockParamUnion{OfImage: &img})
	}
	c.pending = nil
	c.msgs = append(c.msgs, sdk.NewBetaUserMessage(blocks...))
}

// result is the text of u's tool_result in turn t, and whether it reports
// an error; action is u's index among the computer actions.
func (c *Conversation) result(t model.Turn, u toolUse, asked bool, action int) (string, bool) {
	switch {
	case u.ask && t.Answered && t.Answer == "":
		return "The person handed control back without answering.", false
	case u.ask && t.Answered:
		return t.Answer, false
	case t.Error != "":
		return "not run: " + t.Error, true
	case u.ask:
		return "not answered", true
	case asked:
		return "not run: you asked a person in the same reply; act once they have answered", true
	case action >= len(t.Results):
		return "not run", true
	case t.Results[action].Error != "":
		return t.Results[action].Error, true
	case t.Results[action].Cursor != nil:
		p := c.toDisplay(*t.Results[action].Cursor, t.Screenshot)
		return fmt.Sprintf("X=%d,Y=%d", p.X, p.Y), false
	}
	return "", false
}

// trimImages replaces all but the newest MaxImages screenshots with a
// placeholder.
func (c *Conversation) trimImages() {
	seen := 0
	placeholder := func() *sdk.BetaTextBlockParam {
		return &sdk.BetaTextBlockParam{Text: "(an earlier screenshot, no longer shown)"}
	}
	for i := len(c.msgs) - 1; i >= 0; i-- {
		u := c.msgs[i].OfUser
		if u == nil {
			continue
		}
		for j := range u.Content {
			b := &u.Content[j]
			if b.OfImage != nil {
				if seen++; seen > MaxImages {
					b.OfImage, b.OfText = nil, placeholder()
				}
			}
			if tr := b.OfToolResult; tr != nil {
				for k := range tr.Content {
					if tr.Content[k].OfImage != nil {
						if seen++; seen > MaxImages {
							tr.Content[k].OfImage, tr.Content[k].OfText = nil, placeholder()
						}
					}
				}
			}
		}
	}
}

func (c *Conversation) toolParam() sdk.BetaToolUnionParam {
	w, h := int64(c.displayW), int64(c.displayH)
	if c.tool == Computer20251124 {
		return sdk.BetaToolUnionParam{OfComputerUseTool20251124: &sdk.BetaToolComputerUse20251124Param{DisplayWidthPx: w, DisplayHeightPx: h}}
	}
	return sdk.BetaToolUnionParam{OfComputerUseTool20250124: &sdk.BetaToolComputerUse20250124Param{DisplayWidthPx: w, DisplayHeightPx: h}}
}

// Next sends the observation and maps the reply's tool_use blocks.
func (c *Conversation) Next(ctx context.Context, t model.Turn) (model.Reply, error) {
	undo := len(c.msgs)
	pending := c.pending
	c.observe(t)
	c.trimImages()
	msg, err := c.b.client.Beta.Messages.New(ctx, sdk.BetaMessageNewParams{
		Model:     sdk.Model(c.model),
		MaxTokens: c.b.opts.MaxTokens,
		System:    []sdk.BetaTextBlockParam{{Text: system}},
		Messages:  c.msgs,
		Tools:     []sdk.BetaToolUnionParam{c.toolParam(), askTool()},
		Betas:     []sdk.AnthropicBeta{c.tool.Beta},
	})
	if err != nil {
		c.msgs, c.pending = c.msgs[:undo], pending
		return model.Reply{}, fmt.Errorf("anthropic %s: %w", c.model, err)
	}
	u := msg.Usage
	usage := model.Usage{
		Model: c.model, InputTokens: u.InputTokens, OutputTokens: u.OutputTokens,
		CacheReadTokens: u.CacheReadInputTokens, CacheWriteTokens: u.CacheCreationInputTokens,
	}
	c.lastInput = u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
	// The assistant turn goes back unchanged, thinking blocks included.
	c.msgs = append(c.msgs, msg.ToParam())

	var reply model.Reply
	reply.Usage = usage
	var texts, questions []string
	var bad error
	for _, block := range msg.Content {
		switch b := block.AsAny().(type) {
		case sdk.BetaTextBlock:
			texts = append(texts, b.Text)
		case sdk.BetaToolUseBlock:
			c.pending = append(c.pending, toolUse{id: b.ID, ask: b.Name == askUser})
			switch b.Name {
			case askUser:
				q, err := question([]byte(b.JSON.Input.Raw()))
				bad = cmp.Or(bad, err)
				questions = append(questions, q)
			case "computer":
				a, err := c.toAction([]byte(b.JSON.Input.Raw()), t.Screenshot)
				bad = cmp.Or(bad, err)
				reply.Actions = append(reply.Actions, a)
			default:
				bad = cmp.Or(bad, fmt.Errorf("unknown tool %q", b.Name))
			}
		}
	}
	reply.Thought = strings.TrimSpace(strings.Join(texts, "\n"))
	if bad != nil {
		return model.Reply{}, model.OutputErrorf(usage, "%v", bad)
	}
	if len(questions) > 0 {
		reply.Help, reply.Actions = strings.Join(questions, "\n"), nil
	}
	if len(c.pending) == 0 {
		if msg.StopReason == sdk.BetaStopReasonRefusal {
			reply.Done, reply.Failed, reply.Answer = true, true, cmp.Or(reply.Thought, "the model refused")
			return reply, nil
		}
		if msg.StopReason == sdk.BetaStopReasonMaxTokens {
			return model.Reply{}, model.OutputErrorf(usage, "the reply was cut off at max_tokens (%d)", c.b.opts.MaxTokens)
		}
		reply.Done, reply.Answer = true, reply.Thought
	}
	return reply, nil
}

// question returns an ask_user call's question.
func question(raw []byte) (string, error) {
	var in struct {
		Question string `json:"question"`
	}
	if err := json.Unmarshal(raw, &in); err != nil {
		return "", fmt.Errorf("%s input: %v", askUser, err)
	}
	if q := strings.TrimSpace(in.Question); q != "" {
		return q, nil
	}
	return "", fmt.Errorf("%s: question is empty", askUser)
}

// input is a computer tool_use's input. Clicks name a held modifier as
// "text" in the docs and "key" in the reference implementation; both are
// accepted.
type input struct {
	Action          string   `json:"action"`
	Coordinate      *[2]int  `json:"coordinate"`
	StartCoordinate *[2]int  `json:"start_coordinate"`
	Text            *string  `json:"text"`
	Key             *string  `json:"key"`
	ScrollDirection string   `json:"scroll_direction"`
	ScrollAmount    *int     `json:"scroll_amount"`
	Duration        *float64 `json:"duration"`
}

// toAction maps one computer action to protocol v1, coordinates scaled from
// the declared display to output pixels.
func (c *Conversation) toAction(raw []byte, shot model.Screenshot) (agentapi.Request, error) {
	var in input
	if err := json.Unmarshal(raw, &in); err != nil {
		return agentapi.Request{}, fmt.Errorf("computer input: %v", err)
	}
	a := agentapi.Request{V: agentapi.Version, Action: agentapi.Verb(in.Action)}
	point := func(p *[2]int) (*agentapi.Point, error) {
		if p == nil {
			return nil, nil
		}
		if p[0] < 0 || p[1] < 0 || p[0] >= c.displayW || p[1] >= c.displayH {
			return nil, fmt.Errorf("%s: [%d, %d] is outside the %dx%d display", in.Action, p[0], p[1], c.displayW, c.displayH)
		}
		q := c.toOutput(p[0], p[1], shot)
		return &q, nil
	}
	need := func(ok bool, field string) error {
		if !ok {
			return fmt.Errorf("%s needs %s", in.Action, field)
		}
		return nil
	}
	var err error
	if a.Coordinate, err = point(in.Coordinate); err != nil {
		return a, err
	}
	modifier := ""
	if in.Text != nil {
		modifier = *in.Text
	} else if in.Key != nil {
		modifier = *in.Key
	}
	switch a.Action {
	case agentapi.Screenshot, agentapi.CursorPosition:
		a.Coordinate = nil
	case agentapi.LeftClick, agentapi.RightClick, agentapi.MiddleClick, agentapi.DoubleClick, agentapi.TripleClick:
		a.Modifiers = modifier
	case agentapi.MouseMove:
		err = need(a.Coordinate != nil, "coordinate")
	case agentapi.LeftMouseDown, agentapi.LeftMouseUp:
	case agentapi.LeftClickDrag:
		if err = need(in.StartCoordinate != nil && a.Coordinate != nil, "start_coordinate and coordinate"); err == nil {
			a.StartCoordinate, err = point(in.StartCoordinate)
		}
	case agentapi.Type, agentapi.Key:
		if err = need(in.Text != nil && *in.Text != "", "text"); err == nil {
			a.Text = *in.Text
		}
	case agentapi.HoldKey:
		if err = need(in.Text != nil && in.Duration != nil, "text and duration"); err == nil {
			a.Text, a.Duration = *in.Text, *in.Duration
		}
	case agentapi.Scroll:
		a.ScrollDirection, a.Modifiers, a.ScrollAmount = in.ScrollDirection, modifier, 3
		if in.ScrollAmount != nil {
			a.ScrollAmount = *in.ScrollAmount
		}
		err = need(in.ScrollDirection != "", "scroll_direction")
	case agentapi.Wait:
		if err = need(in.Duration != nil, "duration"); err == nil {
			a.Duration = *in.Duration
		}
	default:
		return a, fmt.Errorf("unsupported computer action %q", in.Action)
	}
	return a, err
}

// toOutput maps a pixel of the declared display to the output. The images
// sent have the declared size, so this is the inverse of the screenshot's
// downscale.
func (c *Conversation) toOutput(x, y int, shot model.Screenshot) agentapi.Point {
	return model.Screenshot{Width: c.displayW, Height: c.displayH, OutputWidth: shot.OutputWidth, OutputHeight: shot.OutputHeight}.ToOutput(x, y)
}

// toDisplay maps an output pixel to the declared display.
func (c *Conversation) toDisplay(p agentapi.Point, shot model.Screenshot) agentapi.Point {
	if shot.OutputWidth == 0 || shot.OutputHeight == 0 {
		return p
	}
	return agentapi.Point{X: p.X * c.displayW / shot.OutputWidth, Y: p.Y * c.displayH / shot.OutputHeight}
}
