package ttyinput_test

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"atelier/internal/desktoptest/ttyinput"
)

// brief is what a test compares: kind and payload.
type brief struct {
	Kind, Text, Key string
	Mouse           *ttyinput.Mouse
}

func briefs(evs []ttyinput.Event) []brief {
	var out []brief
	for _, e := range evs {
		out = append(out, brief{e.Kind, e.Text, e.Key, e.Mouse})
	}
	return out
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     []brief
		wantRest string
	}{
		{"ascii and unicode", "héllo ✓ 日本語 🎉", []brief{{Kind: "text", Text: "héllo ✓ 日本語 🎉"}}, ""},
		{"return and tab split text", "a\rb\tc", []brief{{Kind: "text", Text: "a"}, {Kind: "key", Key: "Return"}, {Kind: "text", Text: "b"}, {Kind: "key", Key: "Tab"}, {Kind: "text", Text: "c"}}, ""},
		{"control bytes", "\x01\x7f\x1c", []brief{{Kind: "key", Key: "ctrl+a"}, {Kind: "key", Key: "BackSpace"}, {Kind: "key", Key: `ctrl+\`}}, ""},
		{"escape alone", "\x1b", []brief{{Kind: "key", Key: "Escape"}}, ""},
		{"alt+x", "\x1bx", []brief{{Kind: "key", Key: "alt+x"}}, ""},
		{"alt+ctrl+a", "\x1b\x01", []brief{{Kind: "key", Key: "alt+ctrl+a"}}, ""},
		{"alt+é", "\x1bé", []brief{{Kind: "key", Key: "alt+é"}}, ""},
		{"escape then a sequence", "\x1b\x1b[24;2~", []brief{{Kind: "key", Key: "Escape"}, {Kind: "key", Key: "shift+F12"}}, ""},
		{"escape twice", "\x1b\x1b", []brief{{Kind: "key", Key: "Escape"}, {Kind: "key", Key: "Escape"}}, ""},
		{"shift+Tab", "\x1b[Z", []brief{{Kind: "key", Key: "shift+Tab"}}, ""},
		{"arrows", "\x1b[A\x1b[B\x1b[C\x1b[D", []brief{{Kind: "key", Key: "Up"}, {Kind: "key", Key: "Down"}, {Kind: "key", Key: "Right"}, {Kind: "key", Key: "Left"}}, ""},
		{"ctrl+Up", "\x1b[1;5A", []brief{{Kind: "key", Key: "ctrl+Up"}}, ""},
		{"F1 and F5", "\x1bOP\x1b[15~", []brief{{Kind: "key", Key: "F1"}, {Kind: "key", Key: "F5"}}, ""},
		{"shift+F10", "\x1b[21;2~", []brief{{Kind: "key", Key: "shift+F10"}}, ""},
		{"left press and release", "\x1b[<0;12;3M\x1b[<0;12;3m", []brief{
			{Kind: "mouse", Mouse: &ttyinput.Mouse{Button: 1, Press: true, Col: 12, Row: 3}},
			{Kind: "mouse", Mouse: &ttyinput.Mouse{Button: 1, Col: 12, Row: 3}}}, ""},
		{"right with ctrl", "\x1b[<18;1;1M", []brief{{Kind: "mouse", Mouse: &ttyinput.Mouse{Button: 3, Press: true, Ctrl: true, Col: 1, Row: 1}}}, ""},
		{"drag motion", "\x1b[<32;5;6M", []brief{{Kind: "mouse", Mouse: &ttyinput.Mouse{Button: 1, Press: true, Motion: true, Col: 5, Row: 6}}}, ""},
		{"plain motion", "\x1b[<35;5;6M", []brief{{Kind: "mouse", Mouse: &ttyinput.Mouse{Button: 0, Press: true, Motion: true, Col: 5, Row: 6}}}, ""},
		{"wheel up and down", "\x1b[<64;2;2M\x1b[<65;2;2M", []brief{
			{Kind: "mouse", Mouse: &ttyinput.Mouse{Button: 4, Press: true, Col: 2, Row: 2}},
			{Kind: "mouse", Mouse: &ttyinput.Mouse{Button: 5, Press: true, Col: 2, Row: 2}}}, ""},
		{"unfinished CSI", "ab\x1b[<0;1", []brief{{Kind: "text", Text: "ab"}}, "\x1b[<0;1"},
		{"unfinished UTF-8", "a\xe6\x97", []brief{{Kind: "text", Text: "a"}}, "\xe6\x97"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, rest := ttyinput.Decode([]byte(tt.in))
			if diff := cmp.Diff(tt.want, briefs(evs), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Decode(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if string(rest) != tt.wantRest {
				t.Errorf("Decode(%q) rest = %q, want %q", tt.in, rest, tt.wantRest)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{"héllo", "\x1b[<0;1;1M", "\x1b[15;2~", "\x1bOP", "\x1b\x1b[A", "\x1b[", "\xff\xfe", "\x1b[<64;9999;1m"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, rest := ttyinput.Decode(b)
		got := append(ttyinput.Concat(evs), rest...)
		if !bytes.Equal(got, b) {
			t.Fatalf("events and rest %q do not rebuild the input %q", got, b)
		}
		for _, e := range evs {
			if e.Kind == "" || len(e.RawBytes()) == 0 {
				t.Fatalf("empty event %+v from %q", e, b)
			}
		}
	})
}
