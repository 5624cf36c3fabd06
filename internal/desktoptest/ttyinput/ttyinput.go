// Package ttyinput decodes what a terminal sends to the program in it, in
// raw mode with xterm SGR mouse reporting on: text, keys (control bytes,
// CSI and SS3 sequences, Alt as an ESC prefix) and mouse events. The test
// probe logs these events; desktop tests read them back.
package ttyinput

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Event kinds.
const (
	KindText   = "text"   // printable characters
	KindKey    = "key"    // a key that is not plain text
	KindMouse  = "mouse"  // an SGR mouse report
	KindReady  = "ready"  // the probe is listening (logged by the probe)
	KindResize = "resize" // the terminal changed size (logged by the probe)
)

// Event is one decoded input event, one JSON line in the probe's log.
type Event struct {
	Time  time.Time `json:"time"`
	Kind  string    `json:"kind"`
	Raw   string    `json:"raw,omitempty"` // the bytes received (JSON mangles invalid UTF-8: see Hex)
	Hex   string    `json:"hex,omitempty"`
	Text  string    `json:"text,omitempty"`
	Key   string    `json:"key,omitempty"` // xdotool style: "Return", "ctrl+a", "alt+x", "shift+F5"
	Mouse *Mouse    `json:"mouse,omitempty"`
	Size  *Size     `json:"size,omitempty"`
}

// Mouse is an SGR mouse report.
type Mouse struct {
	// Button: 1 left, 2 middle, 3 right, 4 wheel up, 5 wheel down, 6 wheel
	// left, 7 wheel right, 8-11 extra buttons, 0 none (motion only).
	Button int  `json:"button"`
	Press  bool `json:"press"` // false for a release
	Motion bool `json:"motion,omitempty"`
	Shift  bool `json:"shift,omitempty"`
	Alt    bool `json:"alt,omitempty"`
	Ctrl   bool `json:"ctrl,omitempty"`
	Col    int  `json:"col"` // 1-based
	Row    int  `json:"row"` // 1-based
}

// Size is the terminal's size in cells and pixels.
type Size struct {
	Rows   int `json:"rows"`
	Cols   int `json:"cols"`
	Width  int `json:"width"`  // pixels, 0 if the terminal does not say
	Height int `json:"height"` // pixels
}

// maxSeq bounds an escape sequence; a longer unfinished one is given up as text.
const maxSeq = 64

// Decode splits b into events. rest is an unfinished sequence at the end of
// b, to be prefixed to the next read; a lone trailing ESC is the Escape key.
// The Raw of the events followed by rest is exactly b.
func Decode(b []byte) (events []Event, rest []byte) {
	var text []byte
	flush := func() {
		if len(text) > 0 {
			events = append(events, newEvent(KindText, text, func(e *Event) { e.Text = string(text) }))
			text = nil
		}
	}
	for len(b) > 0 {
		c := b[0]
		switch {
		case c == 0x1b:
			ev, n, complete := decodeEscape(b)
			if !complete {
				flush()
				return events, b
			}
			flush()
			events = append(events, ev)
			b = b[n:]
		case c < 0x20 || c == 0x7f:
			flush()
			events = append(events, keyEvent(b[:1], controlName(c)))
			b = b[1:]
		default:
			r, n := utf8.DecodeRune(b)
			if r == utf8.RuneError && n <= 1 && !utf8.FullRune(b) {
				flush()
				return events, b
			}
			text = append(text, b[:n]...)
			b = b[n:]
		}
	}
	flush()
	return events, nil
}

func newEvent(kind string, raw []byte, fill func(*Event)) Event {
	e := Event{Kind: kind, Raw: string(raw), Hex: hex.EncodeToString(raw)}
	fill(&e)
	return e
}

func keyEvent(raw []byte, name string) Event {
	return newEvent(KindKey, raw, func(e *Event) { e.Key = name })
}

// controlName names a C0 control byte or DEL as the key that sends it.
func controlName(c byte) string {
	switch c {
	case 0x0d:
		return "Return"
	case 0x09:
		return "Tab"
	case 0x7f:
		return "BackSpace"
	case 0x08:
		return "ctrl+BackSpace"
	case 0x00:
		return "ctrl+space"
	case 0x1b:
		return "Escape"
	}
	if c <= 0x1a {
		return "ctrl+" + string(rune('a'+c-1))
	}
	return "ctrl+" + string(rune('@'+c)) // 0x1c-0x1f: ctrl+\ ] ^ _
}

// decodeEscape decodes the sequence starting with ESC at b[0]. complete is
// false when b ends inside the sequence.
func decodeEscape(b []byte) (ev Event, n int, complete bool) {
	if len(b) == 1 {
		return keyEvent(b, "Escape"), 1, true
	}
	switch b[1] {
	case '[':
		return decodeCSI(b)
	case 'O':
		if len(b) < 3 {
			return Event{}, 0, false
		}
		if name, ok := ss3Names[b[2]]; ok {
			return keyEvent(b[:3], name), 3, true
		}
		return keyEvent(b[:2], "alt+O"), 2, true
	}
	// Alt sends ESC before the key's own bytes.
	inner, rest := Decode(b[1:])
	if len(inner) == 0 {
		if len(rest) > 0 && len(b) < maxSeq {
			return Event{}, 0, false
		}
		return keyEvent(b[:1], "Escape"), 1, true
	}
	first := inner[0]
	if first.RawBytes()[0] == 0x1b {
		// Escape, then a sequence of its own: terminals report Alt with a
		// sequence as a modifier parameter, not with an ESC prefix.
		return keyEvent(b[:1], "Escape"), 1, true
	}
	size := 1 + len(first.RawBytes())
	name := first.Key
	if first.Kind == KindText {
		r, rn := utf8.DecodeRuneInString(first.Text)
		name = string(r)
		size = 1 + rn
	} else if first.Kind != KindKey {
		return keyEvent(b[:1], "Escape"), 1, true
	}
	return keyEvent(b[:size], "alt+"+name), size, true
}

var ss3Names = map[byte]string{
	'P': "F1", 'Q': "F2", 'R': "F3", 'S': "F4",
	'A': "Up", 'B': "Down", 'C': "Right", 'D': "Left", 'H': "Home", 'F': "End",
}

var csiLetters = map[byte]string{
	'A': "Up", 'B': "Down", 'C': "Right", 'D': "Left", 'H': "Home", 'F': "End",
	'P': "F1", 'Q': "F2", 'R': "F3", 'S': "F4", 'E': "KP_Begin",
}

var csiTilde = map[int]string{
	1: "Home", 2: "Insert", 3: "Delete", 4: "End", 5: "Prior", 6: "Next",
	11: "F1", 12: "F2", 13: "F3", 14: "F4",
	15: "F5", 17: "F6", 18: "F7", 19: "F8", 20: "F9", 21: "F10", 23: "F11", 24: "F12",
}

// decodeCSI decodes ESC [ params final.
func decodeCSI(b []byte) (Event, int, bool) {
	end := -1
	for i := 2; i < len(b) && i < maxSeq; i++ {
		if b[i] >= 0x40 && b[i] <= 0x7e {
			end = i
			break
		}
		if b[i] < 0x20 {
			// Not a CSI after all: Alt+[ followed by a control byte.
			return keyEvent(b[:2], "alt+["), 2, true
		}
	}
	if end < 0 {
		if len(b) >= maxSeq {
			return keyEvent(b[:2], "alt+["), 2, true
		}
		return Event{}, 0, false
	}
	raw := b[:end+1]
	params := string(b[2:end])
	final := b[end]
	if strings.HasPrefix(params, "<") && (final == 'M' || final == 'm') {
		if m, ok := parseSGRMouse(params[1:], final == 'M'); ok {
			return newEvent(KindMouse, raw, func(e *Event) { e.Mouse = m }), len(raw), true
		}
	}
	fields := strings.Split(params, ";")
	mods := ""
	if len(fields) == 2 {
		if m, err := strconv.Atoi(fields[1]); err == nil && m >= 1 {
			mods = modifierPrefix(m - 1)
		}
	}
	name := ""
	switch {
	case final == 'Z':
		name = "shift+Tab"
	case final == '~':
		if k, err := strconv.Atoi(fields[0]); err == nil {
			name = csiTilde[k]
		}
	default:
		name = csiLetters[final]
	}
	if name == "" {
		name = "CSI " + params + string(final)
	} else {
		name = mods + name
	}
	return keyEvent(raw, name), len(raw), true
}

// modifierPrefix turns xterm's modifier bits (value-1 of the ";m" parameter)
// into "shift+alt+ctrl+super+".
func modifierPrefix(bits int) string {
	var s strings.Builder
	for i, name := range []string{"shift", "alt", "ctrl", "super"} {
		if bits&(1<<i) != 0 {
			s.WriteString(name + "+")
		}
	}
	return s.String()
}

// parseSGRMouse parses "Cb;Cx;Cy" of ESC [ < Cb ; Cx ; Cy M|m.
func parseSGRMouse(params string, press bool) (*Mouse, bool) {
	var v [3]int
	parts := strings.Split(params, ";")
	if len(parts) != 3 {
		return nil, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, false
		}
		v[i] = n
	}
	cb := v[0]
	m := &Mouse{
		Press: press, Col: v[1], Row: v[2],
		Shift: cb&4 != 0, Alt: cb&8 != 0, Ctrl: cb&16 != 0, Motion: cb&32 != 0,
	}
	low := cb & 3
	switch {
	case cb&128 != 0:
		m.Button = 8 + low
	case cb&64 != 0:
		m.Button = 4 + low
	case low == 3:
		m.Button = 0
	default:
		m.Button = []int{1, 2, 3}[low]
	}
	return m, true
}

// RawBytes returns the bytes an event was decoded from (exact, unlike the Raw
// field after a JSON round trip).
func (e Event) RawBytes() []byte {
	b, err := hex.DecodeString(e.Hex)
	if err != nil {
		return []byte(e.Raw)
	}
	return b
}

// Concat returns the bytes of events, in order.
func Concat(events []Event) []byte {
	var buf bytes.Buffer
	for _, e := range events {
		buf.Write(e.RawBytes())
	}
	return buf.Bytes()
}
