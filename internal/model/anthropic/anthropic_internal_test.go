package anthropic

import (
	"testing"

	"atelier/internal/model"
)

// FuzzToAction: any computer tool input is refused or maps to an action
// whose coordinates lie inside the output. It never panics.
func FuzzToAction(f *testing.F) {
	f.Add(`{"action":"left_click","coordinate":[640,360],"text":"shift"}`)
	f.Add(`{"action":"left_click_drag","start_coordinate":[0,0],"coordinate":[1279,719]}`)
	f.Add(`{"action":"scroll","coordinate":[1,1],"scroll_direction":"down","scroll_amount":5}`)
	f.Add(`{"action":"hold_key","text":"shift","duration":1}`)
	f.Add(`{"action":"zoom","region":[0,0,10,10]}`)
	f.Add(`{"action":"mouse_move","coordinate":[1280,0]}`)
	c := &Conversation{displayW: 1280, displayH: 720}
	shot := model.Screenshot{Width: 1280, Height: 720, OutputWidth: 1920, OutputHeight: 1080}
	f.Fuzz(func(t *testing.T, input string) {
		a, err := c.toAction([]byte(input), shot)
		if err != nil {
			return
		}
		if err := a.CheckBounds(shot.OutputWidth, shot.OutputHeight); err != nil {
			t.Fatalf("%s maps outside the output: %v", input, err)
		}
	})
}
