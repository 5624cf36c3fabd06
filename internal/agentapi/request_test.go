package agentapi_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"atelier/internal/agentapi"
)

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want agentapi.Request
	}{
		{"screenshot", `{"v":1,"action":"screenshot"}`, agentapi.Request{V: 1, Action: agentapi.Screenshot}},
		{"click at", `{"v":1,"action":"left_click","coordinate":[10,20],"modifiers":"shift"}`,
			agentapi.Request{V: 1, Action: agentapi.LeftClick, Coordinate: &agentapi.Point{X: 10, Y: 20}, Modifiers: "shift"}},
		{"drag", `{"v":1,"id":"7","action":"left_click_drag","start_coordinate":[1,2],"coordinate":[3,4]}`,
			agentapi.Request{V: 1, ID: "7", Action: agentapi.LeftClickDrag, StartCoordinate: &agentapi.Point{X: 1, Y: 2}, Coordinate: &agentapi.Point{X: 3, Y: 4}}},
		{"type unicode", `{"v":1,"action":"type","text":"héllo ✓ 日本 🎉\n"}`,
			agentapi.Request{V: 1, Action: agentapi.Type, Text: "héllo ✓ 日本 🎉\n"}},
		{"scroll", `{"v":1,"action":"scroll","scroll_direction":"left","scroll_amount":5}`,
			agentapi.Request{V: 1, Action: agentapi.Scroll, ScrollDirection: "left", ScrollAmount: 5}},
		{"jpeg region", `{"v":1,"action":"screenshot","format":"jpeg","quality":70,"scale":0.5,"region":{"x":0,"y":0,"width":10,"height":10}}`,
			agentapi.Request{V: 1, Action: agentapi.Screenshot, Format: "jpeg", Quality: 70, Scale: 0.5, Region: &agentapi.Region{Width: 10, Height: 10}}},
		{"wait", `{"v":1,"action":"wait","duration":0.25}`, agentapi.Request{V: 1, Action: agentapi.Wait, Duration: 0.25}},
		{"settle", `{"v":1,"action":"settle","quiet":0.05,"duration":3}`, agentapi.Request{V: 1, Action: agentapi.Settle, Quiet: 0.05, Duration: 3}},
		{"settle default quiet", `{"v":1,"action":"settle","duration":1}`, agentapi.Request{V: 1, Action: agentapi.Settle, Duration: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := agentapi.Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode(%s): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decode(%s) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		code agentapi.Code
	}{
		{"not json", `{"v":1,`, agentapi.CodeBadJSON},
		{"array", `[1,2]`, agentapi.CodeBadJSON},
		{"trailing", `{"v":1,"action":"status"} {}`, agentapi.CodeBadJSON},
		{"no version", `{"action":"status"}`, agentapi.CodeBadVersion},
		{"version 2", `{"v":2,"action":"status","new_field":1}`, agentapi.CodeBadVersion},
		{"version string", `{"v":"1","action":"status"}`, agentapi.CodeBadVersion},
		{"no action", `{"v":1}`, agentapi.CodeUnknownAction},
		{"unknown verb", `{"v":1,"action":"explode"}`, agentapi.CodeUnknownAction},
		{"unknown field", `{"v":1,"action":"status","colour":"red"}`, agentapi.CodeUnknownField},
		{"bad type", `{"v":1,"action":"type","text":42}`, agentapi.CodeBadField},
		{"settle without ceiling", `{"v":1,"action":"settle","quiet":0.05}`, agentapi.CodeMissingField},
		{"settle quiet over ceiling", `{"v":1,"action":"settle","quiet":0.5,"duration":0.1}`, agentapi.CodeBadField},
		{"settle quiet over 1 s", `{"v":1,"action":"settle","quiet":2,"duration":10}`, agentapi.CodeBadField},
		{"settle quiet negative", `{"v":1,"action":"settle","quiet":-1,"duration":1}`, agentapi.CodeBadField},
		{"quiet on wait", `{"v":1,"action":"wait","quiet":0.1,"duration":1}`, agentapi.CodeBadField},
		{"bad point", `{"v":1,"action":"mouse_move","coordinate":[1]}`, agentapi.CodeBadField},
		{"float point", `{"v":1,"action":"mouse_move","coordinate":[1.5,2]}`, agentapi.CodeBadField},
		{"missing coordinate", `{"v":1,"action":"mouse_move"}`, agentapi.CodeMissingField},
		{"missing text", `{"v":1,"action":"key"}`, agentapi.CodeMissingField},
		{"field not for verb", `{"v":1,"action":"left_click","text":"a"}`, agentapi.CodeBadField},
		{"bad direction", `{"v":1,"action":"scroll","scroll_direction":"sideways"}`, agentapi.CodeBadField},
		{"scroll too far", `{"v":1,"action":"scroll","scroll_direction":"up","scroll_amount":1000}`, agentapi.CodeBadField},
		{"negative wait", `{"v":1,"action":"wait","duration":-1}`, agentapi.CodeBadField},
		{"long wait", `{"v":1,"action":"wait","duration":3600}`, agentapi.CodeBadField},
		{"bad format", `{"v":1,"action":"screenshot","format":"gif"}`, agentapi.CodeBadField},
		{"quality png", `{"v":1,"action":"screenshot","quality":50}`, agentapi.CodeBadField},
		{"scale zero-ish", `{"v":1,"action":"screenshot","scale":0.001}`, agentapi.CodeBadField},
		{"empty region", `{"v":1,"action":"screenshot","region":{"x":0,"y":0,"width":0,"height":5}}`, agentapi.CodeBadField},
		{"huge text", `{"v":1,"action":"type","text":"` + strings.Repeat("a", agentapi.MaxTextRunes+1) + `"}`, agentapi.CodeTooLarge},
		{"huge request", `{"v":1,"action":"type","text":"` + strings.Repeat("a", agentapi.MaxRequestBytes) + `"}`, agentapi.CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := agentapi.Decode([]byte(tt.in))
			var pe *agentapi.Error
			if !errors.As(err, &pe) {
				t.Fatalf("Decode: got %v, want an *agentapi.Error with code %s", err, tt.code)
			}
			if pe.Code != tt.code {
				t.Errorf("Decode: code %s (%s), want %s", pe.Code, pe.Message, tt.code)
			}
			if pe.Message == "" {
				t.Error("Decode: empty error message")
			}
		})
	}
}

func TestCheckBounds(t *testing.T) {
	tests := []struct {
		name string
		req  agentapi.Request
		ok   bool
	}{
		{"inside", agentapi.Request{Coordinate: &agentapi.Point{X: 1279, Y: 719}}, true},
		{"right edge", agentapi.Request{Coordinate: &agentapi.Point{X: 1280, Y: 0}}, false},
		{"negative", agentapi.Request{Coordinate: &agentapi.Point{X: -1, Y: 0}}, false},
		{"drag start out", agentapi.Request{StartCoordinate: &agentapi.Point{X: 0, Y: 720}, Coordinate: &agentapi.Point{}}, false},
		{"region inside", agentapi.Request{Region: &agentapi.Region{X: 1180, Y: 620, Width: 100, Height: 100}}, true},
		{"region out", agentapi.Request{Region: &agentapi.Region{X: 1181, Y: 620, Width: 100, Height: 100}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.CheckBounds(1280, 720)
			if tt.ok != (err == nil) {
				t.Fatalf("CheckBounds = %v, want ok=%v", err, tt.ok)
			}
			var pe *agentapi.Error
			if err != nil && (!errors.As(err, &pe) || pe.Code != agentapi.CodeBadCoordinate) {
				t.Errorf("CheckBounds error %v, want code %s", err, agentapi.CodeBadCoordinate)
			}
		})
	}
}

// FuzzDecode checks that Decode never panics, and that whatever it accepts
// is valid and survives a round trip through JSON unchanged.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"action":"screenshot","format":"jpeg","quality":70,"scale":0.5}`,
		`{"v":1,"action":"left_click_drag","start_coordinate":[1,2],"coordinate":[3,4]}`,
		`{"v":1,"action":"type","text":"héllo ✓\n"}`,
		`{"v":1,"action":"key","text":"ctrl+a"}`,
		`{"v":1,"action":"scroll","scroll_direction":"up","scroll_amount":3,"coordinate":[5,5]}`,
		`{"v":2}`, `{}`, `[]`, `{"v":1,"action":"wait","duration":1e308}`,
		`{"v":1,"action":"settle","quiet":0.035,"duration":3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := agentapi.Decode(in)
		if err != nil {
			var pe *agentapi.Error
			if !errors.As(err, &pe) || pe.Code == "" {
				t.Fatalf("Decode(%q) error %v is not a coded *agentapi.Error", in, err)
			}
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("Decode(%q) accepted a request Validate refuses: %v", in, err)
		}
		b, err := jsonMarshal(req)
		if err != nil {
			t.Fatal(err)
		}
		again, err := agentapi.Decode(b)
		if err != nil {
			t.Fatalf("re-Decode(%s): %v", b, err)
		}
		if diff := cmp.Diff(req, again); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
	})
}
