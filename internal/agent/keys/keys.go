// Package keys turns the key names computer-use models send into X keysyms:
// xdotool-style combos ("ctrl+a", "super+Return", "shift+F10"), the aliases
// models use ("Enter", "Esc", "PgDn", "ArrowUp"), and any single character.
// It also builds the XKB keymap the agent's virtual keyboard uploads.
package keys

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"atelier/internal/agentapi"
)

// Mod is a set of modifiers held around a key or a click.
type Mod uint8

// The modifiers, in the order they are pressed.
const (
	Shift Mod = 1 << iota
	Ctrl
	Alt
	Super
)

// Mods lists every modifier in press order.
var Mods = []Mod{Shift, Ctrl, Alt, Super}

// Keysym returns the keysym of the left-hand key of the single modifier m.
func (m Mod) Keysym() uint32 {
	switch m {
	case Shift:
		return 0xffe1 // Shift_L
	case Ctrl:
		return 0xffe3 // Control_L
	case Alt:
		return 0xffe9 // Alt_L
	case Super:
		return 0xffeb // Super_L
	}
	return 0
}

func (m Mod) String() string {
	var parts []string
	for _, one := range Mods {
		if m&one != 0 {
			parts = append(parts, map[Mod]string{Shift: "shift", Ctrl: "ctrl", Alt: "alt", Super: "super"}[one])
		}
	}
	return strings.Join(parts, "+")
}

var modNames = map[string]Mod{
	"shift": Shift,
	"ctrl":  Ctrl, "control": Ctrl,
	"alt":   Alt,
	"super": Super, "meta": Super, "win": Super, "cmd": Super, "logo": Super,
}

// Combo is one key pressed with modifiers held.
type Combo struct {
	Mods   Mod
	Keysym uint32
}

// Parse parses one combo: modifiers joined by "+", then one key (a keysym
// name, an alias, or a single character). A bad part is a CodeBadKey error
// that names it.
func Parse(combo string) (Combo, error) {
	s := strings.TrimSpace(combo)
	if s == "" {
		if combo != "" { // " " is the space key
			return Combo{Keysym: ' '}, nil
		}
		return Combo{}, agentapi.Errorf(agentapi.CodeBadKey, "empty key")
	}
	key := s
	var mods []string
	switch {
	case s == "+":
	case strings.HasSuffix(s, "++"): // "ctrl++" is ctrl and the plus key
		key = "+"
		mods = strings.Split(s[:len(s)-2], "+")
	default:
		parts := strings.Split(s, "+")
		key, mods = parts[len(parts)-1], parts[:len(parts)-1]
	}
	var c Combo
	for _, m := range mods {
		mod, ok := modNames[strings.ToLower(strings.TrimSpace(m))]
		if !ok {
			return Combo{}, agentapi.Errorf(agentapi.CodeBadKey, "unknown modifier %q in %q; modifiers: ctrl, alt, shift, super", m, combo)
		}
		c.Mods |= mod
	}
	if k := strings.TrimSpace(key); k != "" {
		key = k
	}
	if key == "" {
		return Combo{}, agentapi.Errorf(agentapi.CodeBadKey, "no key after the modifiers in %q", combo)
	}
	ks, ok := Lookup(key)
	if !ok {
		return Combo{}, agentapi.Errorf(agentapi.CodeBadKey, "unknown key %q in %q", key, combo)
	}
	c.Keysym = ks
	return c, nil
}

// ParseSequence parses combos separated by spaces, as xdotool's key command
// takes them: "ctrl+a ctrl+c". A lone " " is the space key.
func ParseSequence(s string) ([]Combo, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		c, err := Parse(s)
		if err != nil {
			return nil, err
		}
		return []Combo{c}, nil
	}
	combos := make([]Combo, 0, len(fields))
	for _, f := range fields {
		c, err := Parse(f)
		if err != nil {
			return nil, err
		}
		combos = append(combos, c)
	}
	return combos, nil
}

// ParseModifiers parses modifiers joined by "+" ("shift", "ctrl+alt"), as a
// click's modifiers field carries them.
func ParseModifiers(s string) (Mod, error) {
	var m Mod
	for _, part := range strings.Split(s, "+") {
		mod, ok := modNames[strings.ToLower(strings.TrimSpace(part))]
		if !ok {
			return 0, agentapi.Errorf(agentapi.CodeBadKey, "unknown modifier %q in %q; modifiers: ctrl, alt, shift, super", part, s)
		}
		m |= mod
	}
	return m, nil
}

// Lookup returns the keysym of one key: a single character stands for
// itself; longer names are keysym names or aliases, matched ignoring case.
func Lookup(name string) (uint32, bool) {
	if r, size := utf8.DecodeRuneInString(name); size == len(name) && r != utf8.RuneError {
		ks := RuneKeysym(r)
		return ks, ks != 0
	}
	ks, ok := byName[strings.ToLower(name)]
	return ks, ok
}

// RuneKeysym returns the keysym that types r: Latin-1 characters are their
// own keysyms, others are 0x01000000+r. Control characters have none,
// except tab, newline and return, which are the Tab and Return keys.
func RuneKeysym(r rune) uint32 {
	switch {
	case r == '\t':
		return 0xff09
	case r == '\n' || r == '\r':
		return 0xff0d
	case r < 0x20 || (r >= 0x7f && r < 0xa0) || r > utf8.MaxRune || (r >= 0xd800 && r < 0xe000):
		return 0
	case r < 0x100:
		return uint32(r)
	}
	return 0x01000000 + uint32(r)
}

// KeysymName returns the name of ks in an XKB keymap: the X name of a
// named key, or "U" and the code point in hex for a character.
func KeysymName(ks uint32) string {
	if n, ok := canonical[ks]; ok {
		return n
	}
	if ks >= 0x01000000 {
		return fmt.Sprintf("U%04X", ks-0x01000000)
	}
	return fmt.Sprintf("U%04X", ks)
}
