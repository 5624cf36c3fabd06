package keys

import (
	"fmt"
	"strings"
)

// Keycodes of a keymap: XKB keycodes are Linux input event codes plus 8,
// and XKB allows 8 to 255. Code 0 (KEY_RESERVED) is left out, so the
// keymap uses event codes 1 to 247.
const (
	firstCode = 1
	lastCode  = 255 - 8
	xkbOffset = 8
)

// Keymap assigns one keycode to each keysym it holds. Its base holds the
// modifiers, the named keys and printable ASCII; characters outside it are
// added to an extension as text needs them, and the extension is reset when
// the keycodes run out. One keysym per keycode means no character needs
// Shift, while lowercase letters keep their uppercase second level so that
// shift+a still gives "A".
type Keymap struct {
	syms  []uint32          // keysym of event code firstCode+i
	codes map[uint32]uint32 // keysym → event code
	base  int               // len(syms) of the base
	text  string            // cached XKB text; "" when stale
}

// NewKeymap returns the base keymap.
func NewKeymap() *Keymap {
	k := &Keymap{codes: map[uint32]uint32{}}
	for _, m := range Mods {
		k.add(m.Keysym())
	}
	for _, n := range named {
		k.add(n.keysym)
	}
	for ks := range canonical {
		k.add(ks)
	}
	for c := uint32(0x20); c < 0x7f; c++ {
		k.add(c)
	}
	k.base = len(k.syms)
	return k
}

func (k *Keymap) add(ks uint32) uint32 {
	if c, ok := k.codes[ks]; ok {
		return c
	}
	c := uint32(firstCode + len(k.syms))
	k.syms = append(k.syms, ks)
	k.codes[ks] = c
	k.text = ""
	return c
}

// Code returns the event code that types ks, if the keymap holds it.
func (k *Keymap) Code(ks uint32) (uint32, bool) {
	c, ok := k.codes[ks]
	return c, ok
}

// Add puts ks in the extension and returns its code. It reports false,
// changing nothing, when no keycode is free; ResetExtension frees them.
func (k *Keymap) Add(ks uint32) (uint32, bool) {
	if c, ok := k.codes[ks]; ok {
		return c, true
	}
	if firstCode+len(k.syms) > lastCode {
		return 0, false
	}
	return k.add(ks), true
}

// Free returns how many keycodes the extension has left.
func (k *Keymap) Free() int { return lastCode + 1 - firstCode - len(k.syms) }

// ResetExtension drops every keysym added beyond the base.
func (k *Keymap) ResetExtension() {
	if len(k.syms) == k.base {
		return
	}
	for _, ks := range k.syms[k.base:] {
		delete(k.codes, ks)
	}
	k.syms = k.syms[:k.base]
	k.text = ""
}

// String returns the keymap as XKB v1 text, as the virtual keyboard
// protocol uploads it.
func (k *Keymap) String() string {
	if k.text != "" {
		return k.text
	}
	var b strings.Builder
	b.WriteString("xkb_keymap {\nxkb_keycodes \"atelier\" {\n\tminimum = 8;\n\tmaximum = 255;\n")
	for i := range k.syms {
		fmt.Fprintf(&b, "\t<K%d> = %d;\n", i+firstCode, i+firstCode+xkbOffset)
	}
	b.WriteString("};\nxkb_types \"atelier\" { include \"complete\" };\n")
	b.WriteString("xkb_compat \"atelier\" { include \"complete\" };\n")
	b.WriteString("xkb_symbols \"atelier\" {\n")
	for i, ks := range k.syms {
		name := KeysymName(ks)
		if ks >= 'a' && ks <= 'z' {
			name += ", " + KeysymName(ks-'a'+'A')
		}
		fmt.Fprintf(&b, "\tkey <K%d> { [ %s ] };\n", i+firstCode, name)
	}
	// The modifier keys set their modifiers when pressed; that is how
	// bindings such as super+Return reach the compositor.
	for _, m := range []struct {
		xkb string
		m   Mod
	}{{"Shift", Shift}, {"Control", Ctrl}, {"Mod1", Alt}, {"Mod4", Super}} {
		fmt.Fprintf(&b, "\tmodifier_map %s { <K%d> };\n", m.xkb, k.codes[m.m.Keysym()])
	}
	b.WriteString("};\n};\n")
	k.text = b.String()
	return k.text
}
