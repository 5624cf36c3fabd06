package wayland

import (
	"context"
	"fmt"
	"maps"
	"sync"
)

// Interface names of the globals the agent binds.
const (
	ifaceOutput      = "wl_output"
	ifaceSeat        = "wl_seat"
	ifaceShm         = "wl_shm"
	ifaceScreencopy  = "zwlr_screencopy_manager_v1"
	ifaceVirtualKbd  = "zwp_virtual_keyboard_manager_v1"
	ifaceVirtualPtr  = "zwlr_virtual_pointer_manager_v1"
	keymapFormatXKB1 = 1 // wl_keyboard.keymap_format.xkb_v1
)

// Display is a connection with the globals the agent needs bound: the first
// output, the seat, shm, screencopy, and the virtual input managers.
type Display struct {
	*Conn

	output, seat, shm      uint32
	screencopy, vkbd, vptr uint32
	screencopyVersion      uint32
	dataControl            uint32     // 0 if the compositor lacks it
	clip                   *clipboard // nil without dataControl

	path string // the compositor's socket, for the mirror's own connection

	mu            sync.Mutex
	width, height int // current mode of the output
	scale         int // buffer pixels per logical pixel: regions are logical
	pendW, pendH  int // mode announced, applied on wl_output.done
	pendScale     int

	capture capturer
	damage  damageWatch
	mirror  mirror
	// settleMu serializes WaitStill; settled is the damage counter when the
	// last one ended.
	settleMu sync.Mutex
	settled  uint64
}

type global struct {
	name    uint32
	version uint32
}

// Dial connects to the compositor at socketPath and binds the globals the
// agent needs. It fails with a clear error when one is missing.
func Dial(ctx context.Context, socketPath string) (*Display, error) {
	c, err := Connect(socketPath)
	if err != nil {
		return nil, err
	}
	d := &Display{Conn: c, path: socketPath}
	d.mirror.d = d
	if err := d.bindAll(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return d, nil
}

// listGlobals asks c's registry for the compositor's globals and returns
// the registry's id and, per interface, the first global offered.
func listGlobals(ctx context.Context, c *Conn) (registry uint32, globals map[string]global, err error) {
	var mu sync.Mutex
	seen := map[string]global{}
	registry, err = c.Create(func(e *Event) {
		if e.Opcode != 0 { // only global; removals do not concern the first output here
			return
		}
		name, iface, version := e.Uint(), e.String(), e.Uint()
		mu.Lock()
		if _, ok := seen[iface]; !ok {
			seen[iface] = global{name, version}
		}
		mu.Unlock()
	}, func(id uint32) *Message { return NewMessage(displayID, 1).Uint(id) })
	if err != nil {
		return 0, nil, err
	}
	if err := c.Roundtrip(ctx); err != nil {
		return 0, nil, fmt.Errorf("list wayland globals: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return registry, maps.Clone(seen), nil
}

func (d *Display) bindAll(ctx context.Context) error {
	registry, globals, err := listGlobals(ctx, d.Conn)
	if err != nil {
		return err
	}
	bind := func(iface string, maxVersion uint32, h func(*Event)) (uint32, uint32, error) {
		g, ok := globals[iface]
		if !ok {
			return 0, 0, fmt.Errorf("compositor does not offer %s", iface)
		}
		v := min(g.version, maxVersion)
		id, err := d.Create(h, func(id uint32) *Message {
			return NewMessage(registry, 0).Uint(g.name).String(iface).Uint(v).Uint(id)
		})
		return id, v, err
	}
	if d.output, _, err = bind(ifaceOutput, 2, d.outputEvent); err != nil {
		return err
	}
	if d.seat, _, err = bind(ifaceSeat, 1, nil); err != nil {
		return err
	}
	if d.shm, _, err = bind(ifaceShm, 1, nil); err != nil {
		return err
	}
	if d.screencopy, d.screencopyVersion, err = bind(ifaceScreencopy, 3, nil); err != nil {
		return err
	}
	if d.vkbd, _, err = bind(ifaceVirtualKbd, 1, nil); err != nil {
		return err
	}
	if d.vptr, _, err = bind(ifaceVirtualPtr, 1, nil); err != nil {
		return err
	}
	// The clipboard is optional: without it the other verbs still work.
	if _, ok := globals[ifaceDataControl]; ok {
		dc, _, err := bind(ifaceDataControl, 2, nil)
		if err != nil {
			return err
		}
		if err := d.startClipboard(dc); err != nil {
			return err
		}
	}
	// The output announces its mode in response to the bind.
	if err := d.Roundtrip(ctx); err != nil {
		return fmt.Errorf("read output mode: %w", err)
	}
	if w, h := d.OutputSize(); w <= 0 || h <= 0 {
		return fmt.Errorf("output announced no current mode")
	}
	return nil
}

// outputEvent tracks the output's current mode. Sizes are applied on done,
// so a reader never sees half of a change.
func (d *Display) outputEvent(e *Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch e.Opcode {
	case 1: // mode: flags, width, height, refresh
		flags, w, h := e.Uint(), e.Int(), e.Int()
		if flags&1 != 0 { // current
			d.pendW, d.pendH = int(w), int(h)
		}
	case 2: // done
		d.width, d.height, d.scale = d.pendW, d.pendH, max(d.pendScale, 1)
	case 3: // scale
		d.pendScale = int(e.Int())
	}
}

// OutputSize returns the current size of the output in pixels.
func (d *Display) OutputSize() (width, height int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.width, d.height
}
