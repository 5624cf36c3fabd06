package wayland

import (
	"fmt"
	"time"
)

// Key and button states of wl_keyboard.key_state and wl_pointer.button_state.
const (
	Released uint32 = 0
	Pressed  uint32 = 1
)

// Pointer axes (wl_pointer.axis) and the wheel axis source.
const (
	AxisVertical    uint32 = 0
	AxisHorizontal  uint32 = 1
	axisSourceWheel        = 0
)

// Mouse buttons, as Linux input event codes.
const (
	ButtonLeft   uint32 = 0x110
	ButtonRight  uint32 = 0x111
	ButtonMiddle uint32 = 0x112
)

// start is the base of the millisecond timestamps input events carry; the
// protocol leaves the base undefined but asks for one clock per device.
var start = time.Now()

func now() uint32 { return uint32(time.Since(start).Milliseconds()) }

// Keyboard is a zwp_virtual_keyboard_v1: key events with keycodes of the
// keymap it uploaded.
type Keyboard struct {
	d  *Display
	id uint32
}

// NewKeyboard creates a virtual keyboard on the seat. It needs a keymap
// (SetKeymap) before its first key.
func (d *Display) NewKeyboard() (*Keyboard, error) {
	id, err := d.Create(nil, func(id uint32) *Message { return NewMessage(d.vkbd, 0).Uint(d.seat).Uint(id) })
	if err != nil {
		return nil, fmt.Errorf("create virtual keyboard: %w", err)
	}
	return &Keyboard{d, id}, nil
}

// SetKeymap uploads an XKB v1 text keymap. Keys sent after it use it.
func (k *Keyboard) SetKeymap(keymap string) error {
	f, err := memfd("atelier-keymap", len(keymap)+1)
	if err != nil {
		return err
	}
	defer f.Close() // the compositor holds its own copy once the message is sent
	if _, err := f.WriteAt(append([]byte(keymap), 0), 0); err != nil {
		return fmt.Errorf("write keymap: %w", err)
	}
	m := NewMessage(k.id, 0).Uint(keymapFormatXKB1).FD(int(f.Fd())).Uint(uint32(len(keymap) + 1))
	if err := k.d.Send(m); err != nil {
		return fmt.Errorf("upload keymap: %w", err)
	}
	return nil
}

// Key presses or releases the key with the given Linux input event code
// (the XKB keycode minus 8).
func (k *Keyboard) Key(code, state uint32) error {
	return k.d.Send(NewMessage(k.id, 1).Uint(now()).Uint(code).Uint(state))
}

// Modifiers sets the modifier state the compositor reports.
func (k *Keyboard) Modifiers(depressed, latched, locked, group uint32) error {
	return k.d.Send(NewMessage(k.id, 2).Uint(depressed).Uint(latched).Uint(locked).Uint(group))
}

// Pointer is a zwlr_virtual_pointer_v1. Its requests accumulate until Frame.
type Pointer struct {
	d  *Display
	id uint32
}

// NewPointer creates a virtual pointer on the seat.
func (d *Display) NewPointer() (*Pointer, error) {
	id, err := d.Create(nil, func(id uint32) *Message { return NewMessage(d.vptr, 0).Uint(d.seat).Uint(id) })
	if err != nil {
		return nil, fmt.Errorf("create virtual pointer: %w", err)
	}
	return &Pointer{d, id}, nil
}

// MoveAbsolute moves the pointer to (x, y) within an extent of
// width×height, which the compositor maps onto its layout.
func (p *Pointer) MoveAbsolute(x, y, width, height int) error {
	return p.d.Send(NewMessage(p.id, 1).Uint(now()).Uint(uint32(x)).Uint(uint32(y)).Uint(uint32(width)).Uint(uint32(height)))
}

// Button presses or releases a button (ButtonLeft…).
func (p *Pointer) Button(button, state uint32) error {
	return p.d.Send(NewMessage(p.id, 2).Uint(now()).Uint(button).Uint(state))
}

// Wheel sends one scroll of steps wheel clicks on axis (negative is up or
// left), as a mouse wheel does: source, discrete steps with their
// conventional 15-unit value, and a frame.
func (p *Pointer) Wheel(axis uint32, steps int) error {
	if err := p.d.Send(NewMessage(p.id, 5).Uint(axisSourceWheel)); err != nil {
		return err
	}
	m := NewMessage(p.id, 7).Uint(now()).Uint(axis).Int(Fixed(15 * float64(steps))).Int(int32(steps))
	if err := p.d.Send(m); err != nil {
		return err
	}
	return p.Frame()
}

// Frame ends a group of pointer events that belong together.
func (p *Pointer) Frame() error { return p.d.Send(NewMessage(p.id, 4)) }
