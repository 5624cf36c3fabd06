package agent

import (
	"context"
	"fmt"
	"time"

	"atelier/internal/agent/keys"
	"atelier/internal/agentapi"
	"atelier/internal/wayland"
)

// Timing of synthetic input, chosen to look like a quick human to clients.
const (
	// clickGap separates the clicks of a double or triple click: well
	// inside the usual 400 ms double-click time, but not zero, since some
	// toolkits ignore a press that comes in the same millisecond as the
	// release before it.
	clickGap = 15 * time.Millisecond
	// dragSteps is how many motions a drag makes between press and release.
	dragSteps = 8
	// dragStepGap lets a toolkit see the press before motion starts a drag.
	dragStepGap = 5 * time.Millisecond
	// DefaultScrollAmount is the number of wheel steps of a scroll without
	// scroll_amount: three, as a mouse wheel notch scrolls three lines in
	// most desktops.
	DefaultScrollAmount = 3
)

// seat is the agent's input devices on one Wayland connection: a virtual
// keyboard with its keymap and a virtual pointer. Its methods are called
// with the server's input lock held.
type seat struct {
	d        *wayland.Display
	kbd      *wayland.Keyboard
	ptr      *wayland.Pointer
	keymap   *keys.Keymap
	uploaded string // the keymap text the compositor has
	mods     uint32 // modifier mask of the modifier keys held
}

// modMask is the XKB real-modifier bit each modifier key sets in our
// keymap (Shift, Control, Mod1, Mod4). The compositor does not derive
// modifiers from a virtual keyboard's keys: the client reports them.
var modMask = map[uint32]uint32{
	keys.Shift.Keysym(): 1 << 0,
	keys.Ctrl.Keysym():  1 << 2,
	keys.Alt.Keysym():   1 << 3,
	keys.Super.Keysym(): 1 << 6,
}

func newSeat(d *wayland.Display) (*seat, error) {
	kbd, err := d.NewKeyboard()
	if err != nil {
		return nil, err
	}
	ptr, err := d.NewPointer()
	if err != nil {
		return nil, err
	}
	s := &seat{d: d, kbd: kbd, ptr: ptr, keymap: keys.NewKeymap()}
	if err := s.syncKeymap(); err != nil {
		return nil, err
	}
	return s, nil
}

// forgetKeymap makes the next keyboard use upload the keymap again, for when
// the compositor replaced it (see Server.KeymapReset).
func (s *seat) forgetKeymap() { s.uploaded = "" }

// syncKeymap uploads the keymap if it changed since the last upload.
// Requests on one connection are handled in order, so keys sent after it
// use the new keymap.
func (s *seat) syncKeymap() error {
	text := s.keymap.String()
	if text == s.uploaded {
		return nil
	}
	if err := s.kbd.SetKeymap(text); err != nil {
		return err
	}
	s.uploaded = text
	return nil
}

// tap presses and releases each keysym in turn, extending the keymap for
// keysyms outside it (uploading once per batch that fits).
func (s *seat) tap(syms []uint32) error {
	var batch []uint32
	flush := func() error {
		if err := s.syncKeymap(); err != nil {
			return err
		}
		for _, ks := range batch {
			code, _ := s.keymap.Code(ks)
			if err := s.kbd.Key(code, wayland.Pressed); err != nil {
				return err
			}
			if err := s.kbd.Key(code, wayland.Released); err != nil {
				return err
			}
		}
		batch = batch[:0]
		return nil
	}
	for _, ks := range syms {
		if _, ok := s.keymap.Add(ks); !ok {
			// The extension is full: type what fits, then start afresh.
			if err := flush(); err != nil {
				return err
			}
			s.keymap.ResetExtension()
			s.keymap.Add(ks)
		}
		batch = append(batch, ks)
	}
	return flush()
}

// press presses (down) or releases the keys of keysyms, adding them to the
// keymap if needed.
func (s *seat) press(syms []uint32, down bool) error {
	codes := make([]uint32, len(syms))
	for i, ks := range syms {
		c, ok := s.keymap.Add(ks)
		if !ok {
			s.keymap.ResetExtension()
			c, _ = s.keymap.Add(ks)
		}
		codes[i] = c
	}
	if err := s.syncKeymap(); err != nil {
		return err
	}
	state := wayland.Released
	if down {
		state = wayland.Pressed
	}
	mods := s.mods
	for i, c := range codes {
		if err := s.kbd.Key(c, state); err != nil {
			return err
		}
		if down {
			mods |= modMask[syms[i]]
		} else {
			mods &^= modMask[syms[i]]
		}
	}
	if mods != s.mods {
		s.mods = mods
		return s.kbd.Modifiers(mods, 0, 0, 0)
	}
	return nil
}

// modSyms returns the modifier keysyms of m in press order.
func modSyms(m keys.Mod) []uint32 {
	var syms []uint32
	for _, one := range keys.Mods {
		if m&one != 0 {
			syms = append(syms, one.Keysym())
		}
	}
	return syms
}

func reversed(s []uint32) []uint32 {
	r := make([]uint32, len(s))
	for i, v := range s {
		r[len(s)-1-i] = v
	}
	return r
}

// combo types one key combo: modifiers down, key down and up, modifiers up.
func (s *seat) combo(c keys.Combo) error {
	mods := modSyms(c.Mods)
	if err := s.press(mods, true); err != nil {
		return err
	}
	err := s.press([]uint32{c.Keysym}, true)
	if err == nil {
		err = s.press([]uint32{c.Keysym}, false)
	}
	if rerr := s.press(reversed(mods), false); err == nil {
		err = rerr
	}
	return err
}

// withMods runs fn with the modifiers m held.
func (s *seat) withMods(m keys.Mod, fn func() error) error {
	mods := modSyms(m)
	if len(mods) == 0 {
		return fn()
	}
	if err := s.press(mods, true); err != nil {
		return err
	}
	err := fn()
	if rerr := s.press(reversed(mods), false); err == nil {
		err = rerr
	}
	return err
}

// move puts the pointer at p.
func (s *seat) move(p agentapi.Point) error {
	w, h := s.d.OutputSize()
	if err := s.ptr.MoveAbsolute(p.X, p.Y, w, h); err != nil {
		return err
	}
	return s.ptr.Frame()
}

// button presses or releases a button.
func (s *seat) button(b uint32, down bool) error {
	state := wayland.Released
	if down {
		state = wayland.Pressed
	}
	if err := s.ptr.Button(b, state); err != nil {
		return err
	}
	return s.ptr.Frame()
}

// click clicks b n times.
func (s *seat) click(ctx context.Context, b uint32, n int) error {
	for i := range n {
		if i > 0 {
			if err := s.d.Roundtrip(ctx); err != nil {
				return err
			}
			if err := sleep(ctx, clickGap); err != nil {
				return err
			}
		}
		if err := s.button(b, true); err != nil {
			return err
		}
		if err := s.button(b, false); err != nil {
			return err
		}
	}
	return nil
}

// drag presses the left button at from, moves to to in steps, releases.
func (s *seat) drag(ctx context.Context, from, to agentapi.Point) error {
	if err := s.move(from); err != nil {
		return err
	}
	if err := s.button(wayland.ButtonLeft, true); err != nil {
		return err
	}
	// Release even if a step fails, so the button is never left down.
	err := func() error {
		for i := 1; i <= dragSteps; i++ {
			if err := s.d.Roundtrip(ctx); err != nil {
				return err
			}
			if err := sleep(ctx, dragStepGap); err != nil {
				return err
			}
			p := agentapi.Point{
				X: from.X + (to.X-from.X)*i/dragSteps,
				Y: from.Y + (to.Y-from.Y)*i/dragSteps,
			}
			if err := s.move(p); err != nil {
				return err
			}
		}
		return s.d.Roundtrip(ctx)
	}()
	if rerr := s.button(wayland.ButtonLeft, false); err == nil {
		err = rerr
	}
	return err
}

// scroll turns the wheel amount steps in direction, one step per frame.
func (s *seat) scroll(direction string, amount int) error {
	axis, sign := wayland.AxisVertical, 1
	switch direction {
	case "up":
		sign = -1
	case "left":
		axis, sign = wayland.AxisHorizontal, -1
	case "right":
		axis = wayland.AxisHorizontal
	case "down":
	default:
		return fmt.Errorf("scroll direction %q", direction)
	}
	for range amount {
		if err := s.ptr.Wheel(axis, sign); err != nil {
			return err
		}
	}
	return nil
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
