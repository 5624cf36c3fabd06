package holo

import (
	"strings"
	"testing"

	"atelier/internal/model"
)

// FuzzParseStep: any reply either is refused with an error or maps to
// protocol-v1 actions inside the output, or to a non-empty question with no
// actions. It never panics.
func FuzzParseStep(f *testing.F) {
	f.Add(`{"note":null,"thought":"t","tool_call":{"tool_name":"click","element":"e","x":500,"y":250}}`)
	f.Add(`{"note":"n","thought":"t","tool_call":{"tool_name":"drag","element":"e","x1":0,"y1":0,"x2":1000,"y2":1000}}`)
	f.Add(`{"note":null,"thought":"t","tool_call":{"tool_name":"scroll","element":"e","x":1,"y":2,"direction":"up","amount":3}}`)
	f.Add("```json\n{\"note\":null,\"thought\":\"t\",\"tool_call\":{\"tool_name\":\"answer\",\"content\":\"ok\"}}\n```")
	f.Add(`{"note":null,"thought":"t","tool_call":{"tool_name":"write","element":"e","x":1e3,"y":-0,"content":"x","press_enter":true}}`)
	f.Add(`{"note":null,"thought":"t","tool_call":{"tool_name":"ask_user","question":"Which account should I use?"}}`)
	img := model.Screenshot{Width: 1280, Height: 720, OutputWidth: 1920, OutputHeight: 1080}
	f.Fuzz(func(t *testing.T, content string) {
		st, err := parseStep(content)
		if err != nil {
			return
		}
		r, err := st.toReply(img)
		if err != nil {
			return
		}
		if r.Help != "" && len(r.Actions) > 0 || r.Help != strings.TrimSpace(r.Help) {
			t.Fatalf("%s: help %q with %d actions", content, r.Help, len(r.Actions))
		}
		for _, a := range r.Actions {
			if err := a.CheckBounds(img.OutputWidth, img.OutputHeight); err != nil {
				t.Fatalf("%s maps outside the output: %v", content, err)
			}
		}
	})
}
