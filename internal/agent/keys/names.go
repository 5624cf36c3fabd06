package keys

import (
	"fmt"
	"strings"
)

// named lists the keys with X keysym names: the canonical name first, then
// the aliases models send. Lookups ignore case.
var named = []struct {
	keysym uint32
	names  []string
}{
	{0xff0d, []string{"Return", "Enter", "Ret"}},
	{0xff09, []string{"Tab"}},
	{0xff08, []string{"BackSpace", "Back"}},
	{0xff1b, []string{"Escape", "Esc"}},
	{0xffff, []string{"Delete", "Del"}},
	{0xff63, []string{"Insert", "Ins"}},
	{0xff50, []string{"Home"}},
	{0xff57, []string{"End"}},
	{0xff51, []string{"Left", "ArrowLeft", "Arrow_Left"}},
	{0xff52, []string{"Up", "ArrowUp", "Arrow_Up"}},
	{0xff53, []string{"Right", "ArrowRight", "Arrow_Right"}},
	{0xff54, []string{"Down", "ArrowDown", "Arrow_Down"}},
	{0xff55, []string{"Prior", "Page_Up", "PageUp", "PgUp"}},
	{0xff56, []string{"Next", "Page_Down", "PageDown", "PgDn", "PgDown"}},
	{0xff67, []string{"Menu", "ContextMenu", "Apps"}},
	{0xff61, []string{"Print", "PrintScreen", "Print_Screen", "PrtSc"}},
	{0xff13, []string{"Pause", "Break"}},
	{0xff14, []string{"Scroll_Lock", "ScrollLock"}},
	{0xff15, []string{"Sys_Req", "SysRq"}},
	{0xffe5, []string{"Caps_Lock", "CapsLock"}},
	{0xff7f, []string{"Num_Lock", "NumLock"}},
	{0x0020, []string{"space", "Spacebar"}},
	{0xffe1, []string{"Shift_L"}},
	{0xffe2, []string{"Shift_R"}},
	{0xffe3, []string{"Control_L", "Ctrl_L"}},
	{0xffe4, []string{"Control_R", "Ctrl_R"}},
	{0xffe9, []string{"Alt_L"}},
	{0xffea, []string{"Alt_R"}},
	{0xffeb, []string{"Super_L", "Win_L", "Meta_L"}},
	{0xffec, []string{"Super_R", "Win_R", "Meta_R"}},
	{0xff8d, []string{"KP_Enter"}},
	{0xff80, []string{"KP_Space"}},
	{0xff89, []string{"KP_Tab"}},
	{0xff95, []string{"KP_Home"}},
	{0xff96, []string{"KP_Left"}},
	{0xff97, []string{"KP_Up"}},
	{0xff98, []string{"KP_Right"}},
	{0xff99, []string{"KP_Down"}},
	{0xff9a, []string{"KP_Prior", "KP_Page_Up"}},
	{0xff9b, []string{"KP_Next", "KP_Page_Down"}},
	{0xff9c, []string{"KP_End"}},
	{0xff9d, []string{"KP_Begin"}},
	{0xff9e, []string{"KP_Insert"}},
	{0xff9f, []string{"KP_Delete"}},
	{0xffbd, []string{"KP_Equal"}},
	{0xffaa, []string{"KP_Multiply"}},
	{0xffab, []string{"KP_Add"}},
	{0xffac, []string{"KP_Separator"}},
	{0xffad, []string{"KP_Subtract"}},
	{0xffae, []string{"KP_Decimal"}},
	{0xffaf, []string{"KP_Divide"}},
	{0x1008ff13, []string{"XF86AudioRaiseVolume", "VolumeUp"}},
	{0x1008ff11, []string{"XF86AudioLowerVolume", "VolumeDown"}},
	{0x1008ff12, []string{"XF86AudioMute", "VolumeMute", "Mute"}},
	{0x1008ff14, []string{"XF86AudioPlay", "MediaPlayPause"}},
	{0x1008ff15, []string{"XF86AudioStop", "MediaStop"}},
	{0x1008ff16, []string{"XF86AudioPrev", "MediaPrevious"}},
	{0x1008ff17, []string{"XF86AudioNext", "MediaNext"}},
	{0x1008ff02, []string{"XF86MonBrightnessUp"}},
	{0x1008ff03, []string{"XF86MonBrightnessDown"}},
	// X names of the ASCII punctuation, as xdotool accepts them.
	{'!', []string{"exclam"}},
	{'"', []string{"quotedbl"}},
	{'#', []string{"numbersign"}},
	{'$', []string{"dollar"}},
	{'%', []string{"percent"}},
	{'&', []string{"ampersand"}},
	{'\'', []string{"apostrophe", "quoteright"}},
	{'(', []string{"parenleft"}},
	{')', []string{"parenright"}},
	{'*', []string{"asterisk"}},
	{'+', []string{"plus"}},
	{',', []string{"comma"}},
	{'-', []string{"minus"}},
	{'.', []string{"period"}},
	{'/', []string{"slash"}},
	{':', []string{"colon"}},
	{';', []string{"semicolon"}},
	{'<', []string{"less"}},
	{'=', []string{"equal"}},
	{'>', []string{"greater"}},
	{'?', []string{"question"}},
	{'@', []string{"at"}},
	{'[', []string{"bracketleft"}},
	{'\\', []string{"backslash"}},
	{']', []string{"bracketright"}},
	{'^', []string{"asciicircum"}},
	{'_', []string{"underscore"}},
	{'`', []string{"grave", "quoteleft"}},
	{'{', []string{"braceleft"}},
	{'|', []string{"bar"}},
	{'}', []string{"braceright"}},
	{'~', []string{"asciitilde"}},
}

// byName maps lowercased names and aliases to keysyms; canonical maps the
// named keysyms (not plain characters) to their X names.
var byName, canonical = func() (map[string]uint32, map[uint32]string) {
	by, canon := map[string]uint32{}, map[uint32]string{}
	add := func(name string, ks uint32) {
		k := strings.ToLower(name)
		if _, dup := by[k]; dup {
			panic(fmt.Sprintf("keys: name %q listed twice", name))
		}
		by[k] = ks
	}
	for _, n := range named {
		for _, name := range n.names {
			add(name, n.keysym)
		}
		if n.keysym > 0xff {
			canon[n.keysym] = n.names[0]
		}
	}
	for i := 1; i <= 24; i++ {
		add(fmt.Sprintf("F%d", i), 0xffbe+uint32(i-1))
		canon[0xffbe+uint32(i-1)] = fmt.Sprintf("F%d", i)
	}
	for i := range 10 {
		add(fmt.Sprintf("KP_%d", i), 0xffb0+uint32(i))
		canon[0xffb0+uint32(i)] = fmt.Sprintf("KP_%d", i)
	}
	// A modifier named alone is its left-hand key: "super" opens the launcher.
	for name, m := range modNames {
		add(name, m.Keysym())
	}
	return by, canon
}()
