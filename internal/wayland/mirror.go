package wayland

import (
	"context"
	"fmt"
	"image"
	"sync"
	"time"
)

// mirror keeps a full-size copy of the output current while screenshots
// are being asked, so a screenshot of a changed screen only encodes: two
// full-size copy_with_damage frames are kept armed, the compositor copies
// the output into one of them at each commit that changes it, and the
// last copy is the screen as it is.
//
// It has a connection of its own: wlroots keeps one damage record per
// client and output, cleared by the first with-damage frame a commit
// answers, and the damage watch on the display's connection needs every
// change reported to it.
//
// Why the last copy can be trusted. At a commit that changes the output
// the compositor answers the first armed frame and clears the damage
// record, so a second frame armed before that commit stays armed and is
// answered by the next change. A frame counts as armed once the sync sent
// after its copy request has come back: the compositor handles requests
// between commits, in order, and sends events in order, so a frame whose
// sync came back before another frame's ready was armed at that ready's
// commit. A copy whose ready came with such a frame still armed is
// current until that frame's ready arrives; a reader makes a round trip
// first, so every ready the compositor sent before the reader asked has
// been seen. A copy with no armed frame beside it (the agent was slow to
// re-arm, a reader held the spare buffer) may have missed a later change
// in between: it is not trusted, and screenshots capture until the next
// trusted copy.
//
// Arming a frame makes sway repaint once (wlroots schedules a frame); with
// nothing damaged that repaint reports no damage and answers nothing.
type mirror struct {
	d *Display

	mu       sync.Mutex
	conn     *Conn // nil while cold
	starting bool
	closed   bool // the display is closed: never start again
	shm      uint32
	sc       uint32 // zwlr_screencopy_manager_v1
	output   uint32
	slots    [mirrorSlots]mirrorSlot
	frames   []*mirrorFrame // asked for, not yet answered
	latest   *mirrorSlot    // the last copy, or nil
	trusted  bool           // latest is the output as it is (see above)
	params   frameEvent     // the full frame's buffer, once described
	gen      uint64         // copies made, ever: the last copy's number
	lastDmg  uint64         // the number of the last copy with damage, 0 if none since the start
	log      []mirrorCopy   // the last copies, oldest first
	idle     *time.Timer    // stops the mirror once screenshots stop
	served   uint64         // screenshots taken from the mirror
}

// mirrorSlots is how many full-size buffers a running mirror holds: two
// armed frames (or one and a plain copy) and the last copy. A copy still
// being read when the next arrives keeps its buffer until it is read, and
// one frame is armed meanwhile.
const mirrorSlots = 3

// keepMirror is how long the mirror outlives the last screenshot: an idle
// desktop holds neither its buffers (3.6 MB each at 1280×720, shared with
// the compositor) nor its connection.
var keepMirror = keepBuffer

// mirrorSlot is one full-size buffer.
type mirrorSlot struct {
	buf     capturer
	conn    *Conn // the connection buf was made on
	busy    bool  // a frame copies into it
	readers int   // screenshots reading it
	yInvert bool
	gen     uint64 // the copy it holds
}

// mirrorCopy is what changed at one copy: damage is the part of the
// output that may differ from copy prev; prev is 0 when that is not known
// (a plain copy, or the first since the start).
type mirrorCopy struct {
	gen, prev uint64
	damage    image.Rectangle
}

// mirrorLog is how many copies the mirror remembers the damage of: a
// screenshot encodes again what changed since the copy its previous
// encoding came from.
const mirrorLog = 64

// mirrorFrame is one frame of the mirror, from capture_output to ready.
type mirrorFrame struct {
	id      uint32
	slot    *mirrorSlot
	plain   bool // a plain copy: answered at the next commit, changed or not
	params  frameEvent
	yInvert bool
	damage  image.Rectangle // since the previous copy with damage
	armed   bool            // its copy request is known handled (its sync came back)
}

// WarmMirror starts the mirror if it is not running, and keeps it running
// for keepMirror more. It does not wait for it.
func (d *Display) WarmMirror() {
	m := &d.mirror
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if m.idle == nil {
		m.idle = time.AfterFunc(keepMirror, m.cool)
	} else {
		m.idle.Reset(keepMirror)
	}
	if m.conn != nil || m.starting || m.d.screencopyVersion < 2 {
		return
	}
	m.starting = true
	go m.start()
}

// CaptureCurrent calls fn with the output, or its region r, from the
// mirror's last copy, with no wait for a repaint. ok is false, and fn not
// called, when the mirror cannot vouch for its copy (cold, just started,
// or a change it may have missed); the caller captures then. It warms the
// mirror.
func (d *Display) CaptureCurrent(ctx context.Context, r image.Rectangle, fn func(*Frame) error) (ok bool, err error) {
	d.WarmMirror()
	m := &d.mirror
	m.mu.Lock()
	c := m.conn
	m.mu.Unlock()
	if c == nil {
		return false, nil
	}
	// Every ready sent before this is seen after it.
	if err := c.Roundtrip(ctx); err != nil {
		if ctx.Err() != nil {
			return false, err
		}
		return false, nil // the mirror stopped: capture
	}
	w, h := d.OutputSize()
	d.mu.Lock()
	scale := d.scale
	d.mu.Unlock()
	m.mu.Lock()
	s := m.latest
	if m.conn != c || !m.trusted || s == nil || s.buf.w != w || s.buf.h != h {
		if s != nil && (s.buf.w != w || s.buf.h != h) {
			// The output was resized: frames asked for before it copy
			// the old size. Start over.
			m.stopLocked()
		}
		m.mu.Unlock()
		return false, nil
	}
	f := Frame{Width: w, Height: h, Stride: s.buf.stride, Format: s.buf.format, YInvert: s.yInvert, Pix: s.buf.mem[:s.buf.stride*h],
		Copy: s.gen, mirror: m}
	if !r.Empty() {
		if scale != 1 || !r.In(image.Rect(0, 0, w, h)) {
			m.mu.Unlock()
			return false, nil // what the compositor makes of these is its business
		}
		f = f.sub(r)
	}
	s.readers++
	m.served++
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		s.readers--
		if s.readers == 0 && s.conn != m.conn {
			s.buf.release(s.conn) // the mirror stopped while this was read
		}
		m.fill()
		m.mu.Unlock()
	}()
	return true, fn(&f)
}

// sub is the region r of a frame, in place.
func (f Frame) sub(r image.Rectangle) Frame {
	y := r.Min.Y
	if f.YInvert { // rows bottom-up: the region's last row comes first
		y = f.Height - r.Max.Y
	}
	off := y*f.Stride + 4*r.Min.X
	f.Pix = f.Pix[off : off+(r.Dy()-1)*f.Stride+4*r.Dx()]
	f.Width, f.Height = r.Dx(), r.Dy()
	return f
}

// ChangedSince returns the part of the output (in output coordinates, not
// the frame's region's) that may differ between the mirror's copy number
// since and this frame, and whether that is known: it is not for a
// capture, or a copy too old or made before the mirror last restarted.
func (f *Frame) ChangedSince(since uint64) (image.Rectangle, bool) {
	m := f.mirror
	if m == nil || since == 0 {
		return image.Rectangle{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var changed image.Rectangle
	for cur := f.Copy; cur != since; {
		i := len(m.log) - 1
		for i >= 0 && m.log[i].gen != cur {
			i--
		}
		if i < 0 || m.log[i].prev == 0 || m.log[i].prev < since {
			return image.Rectangle{}, false
		}
		changed = changed.Union(m.log[i].damage)
		cur = m.log[i].prev
	}
	return changed, true
}

// MirrorState reports how many full-size buffers the mirror holds and how
// many screenshots it has served.
func (d *Display) MirrorState() (buffers int, served uint64) {
	m := &d.mirror
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.slots {
		if m.slots[i].buf.mem != nil {
			buffers++
		}
	}
	return buffers, m.served
}

// start connects the mirror and asks for its first frames.
func (m *mirror) start() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, shm, sc, output, err := dialMirror(ctx, m.d.path, m.d.screencopyVersion)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.starting = false
	if err != nil {
		return // the next screenshot tries again
	}
	if m.closed {
		go c.Close()
		return
	}
	m.conn, m.shm, m.sc, m.output = c, shm, sc, output
	m.params = frameEvent{}
	m.fill()
}

// dialMirror opens the mirror's connection and binds what it uses: the
// first output, shm and screencopy at version scVersion (the display's,
// so both read the same events).
func dialMirror(ctx context.Context, path string, scVersion uint32) (c *Conn, shm, sc, output uint32, err error) {
	c, err = Connect(path)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	registry, globals, err := listGlobals(ctx, c)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	bind := func(iface string, version uint32) (uint32, error) {
		g, ok := globals[iface]
		if !ok || g.version < version {
			return 0, fmt.Errorf("compositor does not offer %s version %d", iface, version)
		}
		return c.Create(nil, func(id uint32) *Message {
			return NewMessage(registry, 0).Uint(g.name).String(iface).Uint(version).Uint(id)
		})
	}
	if output, err = bind(ifaceOutput, 1); err != nil {
		return nil, 0, 0, 0, err
	}
	if shm, err = bind(ifaceShm, 1); err != nil {
		return nil, 0, 0, 0, err
	}
	if sc, err = bind(ifaceScreencopy, scVersion); err != nil {
		return nil, 0, 0, 0, err
	}
	return c, shm, sc, output, nil
}

// fill asks for frames, while a buffer is free, until two with damage are
// on their way. While the last copy is not trusted, one with damage will
// do, and once it is armed fill asks for a plain copy beside it: the
// commit that answers the plain copy leaves the armed one armed, so that
// copy is trusted; without it a still screen would stay untrusted. m.mu is
// held.
func (m *mirror) fill() {
	for m.conn != nil {
		damaged, armed, plain := 0, 0, false
		for _, f := range m.frames {
			if f.plain {
				plain = true
				continue
			}
			damaged++
			if f.armed {
				armed++
			}
		}
		want := 2
		if !m.trusted {
			want = 1
		}
		asPlain := false
		switch {
		case damaged < want:
		case !m.trusted && !plain && armed > 0:
			asPlain = true
		default:
			return
		}
		s := m.freeSlot()
		if s == nil {
			return
		}
		if err := m.prepare(s, asPlain); err != nil {
			m.stopLocked()
			return
		}
	}
}

// freeSlot returns a buffer no frame copies into, no reader reads and that
// is not the last copy, or nil. m.mu is held.
func (m *mirror) freeSlot() *mirrorSlot {
	for i := range m.slots {
		s := &m.slots[i]
		if !s.busy && s.readers == 0 && s != m.latest {
			return s
		}
	}
	return nil
}

// prepare asks for a full frame that will copy into s, at the next change,
// or at the next commit if plain. m.mu is held.
func (m *mirror) prepare(s *mirrorSlot, plain bool) error {
	c := m.conn
	f := &mirrorFrame{slot: s, plain: plain}
	s.busy = true
	m.frames = append(m.frames, f)
	id, err := c.Create(func(e *Event) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.conn != c {
			return // stopped
		}
		switch e.Opcode {
		case 0: // buffer (shm): version 2 sends nothing after it
			f.params = frameEvent{format: e.Uint(), w: e.Uint(), h: e.Uint(), stride: e.Uint()}
			if m.d.screencopyVersion < 3 {
				m.copy(f)
			}
		case 6: // buffer_done
			m.copy(f)
		case 1: // flags
			f.yInvert = e.Uint()&1 != 0
		case 4: // damage: x, y, width, height
			x, y, w, h := int(e.Uint()), int(e.Uint()), int(e.Uint()), int(e.Uint())
			f.damage = image.Rect(x, y, x+w, y+h)
		case 2: // ready
			m.ready(f)
		case 3: // failed: the output went away or changed; the next screenshot starts over
			m.stopLocked()
		}
	}, func(id uint32) *Message {
		return NewMessage(m.sc, 0).Uint(id).Int(0).Uint(m.output)
	})
	f.id = id
	return err
}

// copy asks f, its buffer described, to copy the output at the next
// change, and sends the sync that tells when it is armed. m.mu is held.
func (m *mirror) copy(f *mirrorFrame) {
	c := m.conn
	if f.params.w == 0 || (m.params.w != 0 && f.params != m.params) {
		m.stopLocked() // no shm, or the output changed since the first frame
		return
	}
	m.params = f.params
	s := f.slot
	s.conn = c
	if err := s.buf.ensure(c, m.shm, f.params); err != nil {
		m.stopLocked()
		return
	}
	op := uint16(2) // copy_with_damage
	if f.plain {
		op = 0 // copy
	}
	if c.Send(NewMessage(f.id, op).Uint(s.buf.buffer)) != nil {
		return // the connection ended: its reader stops the mirror's use
	}
	c.Create(func(e *Event) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.conn == c && e.Opcode == 0 { // wl_callback.done
			f.armed = true
			m.fill()
		}
	}, func(cb uint32) *Message { return NewMessage(displayID, 0).Uint(cb) })
}

// ready takes f's copy as the last one. m.mu is held.
func (m *mirror) ready(f *mirrorFrame) {
	m.conn.Send(NewMessage(f.id, 1)) // destroy
	m.trusted = false
	kept := m.frames[:0]
	for _, g := range m.frames {
		if g == f {
			continue
		}
		kept = append(kept, g)
		if g.armed && !g.plain { // a plain frame answers this commit too
			m.trusted = true
		}
	}
	m.frames = kept
	m.gen++
	c := mirrorCopy{gen: m.gen, damage: f.damage}
	if !f.plain {
		// The damage record was cleared by the last copy with damage.
		c.prev, m.lastDmg = m.lastDmg, m.gen
	}
	if len(m.log) == mirrorLog {
		m.log = append(m.log[:0], m.log[1:]...)
	}
	m.log = append(m.log, c)
	f.slot.busy = false
	f.slot.yInvert = f.yInvert
	f.slot.gen = m.gen
	m.latest = f.slot
	m.fill()
}

// cool stops the mirror when no screenshot has warmed it for keepMirror.
func (m *mirror) cool() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.slots {
		if m.slots[i].readers > 0 { // a screenshot encodes from it: not idle
			m.idle.Reset(keepMirror)
			return
		}
	}
	m.stopLocked()
}

// stopLocked ends the mirror's connection and frees its buffers; the next
// screenshot starts it again. No reader may hold a buffer: a stop while
// one does (a failed frame, a resize) leaves that buffer mapped until the
// display closes. m.mu is held.
func (m *mirror) stopLocked() {
	c := m.conn
	if c == nil {
		return
	}
	m.conn = nil
	m.frames, m.latest, m.trusted = nil, nil, false
	m.log, m.lastDmg = nil, 0
	for i := range m.slots {
		s := &m.slots[i]
		s.busy = false
		if s.readers == 0 {
			s.buf.release(c)
		}
	}
	// Close waits for the reader goroutine, which may be waiting for m.mu.
	go c.Close()
}

// close stops the mirror for good, with the display.
func (m *mirror) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	if m.idle != nil {
		m.idle.Stop()
	}
	m.stopLocked()
}
