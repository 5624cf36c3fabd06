package holo

import (
	"maps"
	"slices"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

// The step contract (research/models.md §1.4–1.5): one object
// {note, thought, tool_call}, where tool_call is a flat tagged union on
// tool_name. Pointer tools take x, y in [0, 1000] relative to the image sent
// and an element description, as H's own examples do.

// tool is one variant of the tool union.
type tool struct {
	name  string
	desc  string
	props map[string]any // argument name → JSON schema
}

var (
	coord   = map[string]any{"type": "integer", "minimum": 0, "maximum": 1000}
	element = map[string]any{"type": "string", "description": "what is being pointed at"}
	text    = map[string]any{"type": "string"}
)

func pointer(extra map[string]any) map[string]any {
	p := map[string]any{"element": element, "x": coord, "y": coord}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// tools is the desktop toolbox offered to Holo.
var tools = []tool{
	{"click", "left-click a point", pointer(nil)},
	{"double_click", "double-click a point", pointer(nil)},
	{"right_click", "right-click a point", pointer(nil)},
	{"mouse_move", "move the pointer to a point", pointer(nil)},
	{"write", "click a point, then type content (and press Enter if press_enter)", pointer(map[string]any{
		"content": text, "press_enter": map[string]any{"type": "boolean"},
	})},
	{"type", "type content where the keyboard focus is", map[string]any{"content": text}},
	{"key_press", `press a key combination, xdotool style: "Return", "ctrl+l", "super+Return"`, map[string]any{"keys": text}},
	{"scroll", "scroll at a point", pointer(map[string]any{
		"direction": map[string]any{"type": "string", "enum": []string{"up", "down", "left", "right"}},
		"amount":    map[string]any{"type": "integer", "minimum": 1, "maximum": 20},
	})},
	{"drag", "press at (x1, y1), move to (x2, y2), release", map[string]any{
		"element": element, "x1": coord, "y1": coord, "x2": coord, "y2": coord,
	}},
	{"wait", "wait for the screen to change", map[string]any{"seconds": map[string]any{"type": "number", "minimum": 0, "maximum": 10}}},
	{"answer", "the task is done: give the final answer", map[string]any{"content": text}},
	{"fail", "the task cannot be done: say why", map[string]any{"reason": text}},
	{askUser, "ask the person who gave the task one question only they can answer; the task waits for their reply",
		map[string]any{"question": text}},
}

// askUser is the help tool: its question goes to a person (Reply.Help) and
// their reply comes back in the next observation.
const askUser = "ask_user"

// optional lists arguments a variant may leave out.
var optional = map[string]bool{"press_enter": true, "amount": true}

// callSchema returns the JSON schema of t's arguments, tool_name aside.
func (t tool) callSchema() (props map[string]any, required []string) {
	props, required = map[string]any{}, []string{}
	for _, name := range slices.Sorted(maps.Keys(t.props)) {
		props[name] = t.props[name]
		if !optional[name] {
			required = append(required, name)
		}
	}
	return props, required
}

// stepSchema returns the JSON schema of one step object.
func stepSchema() map[string]any {
	variants := make([]any, 0, len(tools))
	for _, t := range tools {
		props, required := t.callSchema()
		props["tool_name"] = map[string]any{"type": "string", "const": t.name, "description": t.desc}
		variants = append(variants, map[string]any{
			"type": "object", "properties": props, "required": append([]string{"tool_name"}, required...), "additionalProperties": false,
		})
	}
	return map[string]any{
		"type": "object",
		"properties": map[string]any{
			"note":      map[string]any{"type": []string{"string", "null"}, "description": "facts to remember for later steps, or null"},
			"thought":   map[string]any{"type": "string", "description": "a one-line plan for this step"},
			"tool_call": map[string]any{"anyOf": variants},
		},
		"required":             []string{"note", "thought", "tool_call"},
		"additionalProperties": false,
	}
}

// functionTools declares the toolbox as OpenAI functions, for native
// function calling (OutputTools).
func functionTools() []openai.ChatCompletionToolUnionParam {
	out := make([]openai.ChatCompletionToolUnionParam, 0, len(tools))
	for _, t := range tools {
		props, required := t.callSchema()
		out = append(out, openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: t.name, Description: openai.String(t.desc),
			Parameters: shared.FunctionParameters{"type": "object", "properties": props, "required": required, "additionalProperties": false},
		}))
	}
	return out
}
