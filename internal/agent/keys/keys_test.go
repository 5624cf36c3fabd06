package keys

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"atelier/internal/agentapi"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		mods Mod
		ks   uint32
	}{
		{"a", 0, 'a'},
		{"A", 0, 'A'},
		{"ctrl+a", Ctrl, 'a'},
		{"Control+Shift+T", Ctrl | Shift, 'T'},
		{"super+Return", Super, 0xff0d},
		{"cmd+enter", Super, 0xff0d},
		{"alt+Tab", Alt, 0xff09},
		{"shift+F10", Shift, 0xffc7},
		{"F24", 0, 0xffd5},
		{"Escape", 0, 0xff1b},
		{"esc", 0, 0xff1b},
		{"Page_Up", 0, 0xff55},
		{"Prior", 0, 0xff55},
		{"PgDn", 0, 0xff56},
		{"KP_Enter", 0, 0xff8d},
		{"KP_7", 0, 0xffb7},
		{"Del", 0, 0xffff},
		{"Backspace", 0, 0xff08},
		{"ArrowUp", 0, 0xff52},
		{"space", 0, ' '},
		{" ", 0, ' '},
		{"minus", 0, '-'},
		{"ctrl+minus", Ctrl, '-'},
		{"+", 0, '+'},
		{"ctrl++", Ctrl, '+'},
		{"ctrl + a", Ctrl, 'a'},
		{"é", 0, 0xe9},
		{"✓", 0, 0x01002713},
		{"super", 0, 0xffeb},
		{"meta+win+logo+a", Super, 'a'},
	} {
		c, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if c.Mods != tc.mods || c.Keysym != tc.ks {
			t.Errorf("Parse(%q) = %v+%#x, want %v+%#x", tc.in, c.Mods, c.Keysym, tc.mods, tc.ks)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, names string }{
		{"", "empty"},
		{"ctrl+", "no key"},
		{"hyper+a", `"hyper"`},
		{"ctrl+nosuchkey", `"nosuchkey"`},
		{"F25", `"F25"`},
		{"ctrl+\x07", `"\a"`},
	} {
		_, err := Parse(tc.in)
		var apiErr *agentapi.Error
		if !errors.As(err, &apiErr) || apiErr.Code != agentapi.CodeBadKey || !strings.Contains(apiErr.Message, tc.names) {
			t.Errorf("Parse(%q) error %v, want bad_key naming %s", tc.in, err, tc.names)
		}
	}
	if _, err := ParseSequence("ctrl+a bogus"); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("ParseSequence: %v, want an error naming bogus", err)
	}
	if _, err := ParseModifiers("ctrl+fn"); err == nil || !strings.Contains(err.Error(), `"fn"`) {
		t.Errorf("ParseModifiers: %v, want an error naming fn", err)
	}
}

func TestRuneKeysym(t *testing.T) {
	for r, want := range map[rune]uint32{
		'a': 'a', '~': '~', 'é': 0xe9, 'ÿ': 0xff, '€': 0x010020ac, '😀': 0x0101f600,
		'\n': 0xff0d, '\t': 0xff09, '\x07': 0, 0x7f: 0, 0x85: 0,
	} {
		if got := RuneKeysym(r); got != want {
			t.Errorf("RuneKeysym(%U) = %#x, want %#x", r, got, want)
		}
	}
	for ks, want := range map[uint32]string{0xff0d: "Return", 'a': "U0061", 0xe9: "U00E9", 0x0101f600: "U1F600", 0xffc7: "F10", 0xffb0: "KP_0"} {
		if got := KeysymName(ks); got != want {
			t.Errorf("KeysymName(%#x) = %q, want %q", ks, got, want)
		}
	}
}

func TestKeymapExtension(t *testing.T) {
	k := NewKeymap()
	if c, ok := k.Code('a'); !ok || c < firstCode || c > lastCode {
		t.Fatalf("base lacks a: %d %v", c, ok)
	}
	base := k.String()
	free := k.Free()
	if free < 40 {
		t.Fatalf("only %d free keycodes for the extension", free)
	}
	seen := map[uint32]bool{}
	for i := range free {
		c, ok := k.Add(0x01004e00 + uint32(i))
		if !ok || seen[c] || c > lastCode {
			t.Fatalf("Add %d: code %d ok %v", i, c, ok)
		}
		seen[c] = true
	}
	if _, ok := k.Add(0x01009999); ok {
		t.Fatal("Add succeeded on a full keymap")
	}
	k.ResetExtension()
	if k.String() != base || k.Free() != free {
		t.Fatal("ResetExtension did not restore the base")
	}
}

// TestKeymapCompiles checks the generated keymap with xkbcommon's own
// compiler, when Debian's libxkbcommon-tools is installed.
func TestKeymapCompiles(t *testing.T) {
	if _, err := exec.LookPath("xkbcli"); err != nil {
		t.Skip("SKIP: xkbcli not installed (apt-get install libxkbcommon-tools); keymap not compiled")
	}
	k := NewKeymap()
	for _, r := range "é✓日本😀" {
		k.Add(RuneKeysym(r))
	}
	cmd := exec.Command("xkbcli", "compile-keymap", "--from-xkb")
	cmd.Stdin = strings.NewReader(k.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, _ := cmd.Output() // its exit status is unreliable across versions; judge by output
	if stderr.Len() > 0 || !strings.Contains(string(out), "xkb_symbols") {
		t.Fatalf("keymap does not compile: %s", stderr.String())
	}
	for _, want := range []string{"U0001F600", "U2713", "Super_L", "modifier_map Mod4", "[               a,               A ]"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("compiled keymap lacks %q", want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"ctrl+a", "super+Return", "ctrl++", "+", " ", "é", "shift+F10", "a b", "ctrl+", "++"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			var apiErr *agentapi.Error
			if !errors.As(err, &apiErr) || apiErr.Code != agentapi.CodeBadKey {
				t.Fatalf("Parse(%q): error %v is not bad_key", s, err)
			}
			return
		}
		if c.Keysym == 0 {
			t.Fatalf("Parse(%q) gave keysym 0", s)
		}
		if name := KeysymName(c.Keysym); name == "" {
			t.Fatalf("keysym %#x has no keymap name", c.Keysym)
		}
		if _, err := ParseSequence(s); err != nil && !strings.ContainsAny(s, " \t\n") {
			t.Fatalf("ParseSequence(%q) fails where Parse succeeds: %v", s, err)
		}
	})
}
