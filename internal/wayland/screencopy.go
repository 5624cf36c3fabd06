package wayland

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Pixel formats (wl_shm.format) a frame may come in. The names give the
// channel order of a little-endian 32-bit word, high byte first.
const (
	FormatARGB8888 uint32 = 0
	FormatXRGB8888 uint32 = 1
	FormatABGR8888 uint32 = 0x34324241
	FormatXBGR8888 uint32 = 0x34324258
)

// Frame is one captured image in compositor memory. Pix is only valid
// during the callback that receives it.
type Frame struct {
	Width, Height, Stride int
	Format                uint32
	YInvert               bool // rows are stored bottom-up
	Pix                   []byte

	// Copy numbers the mirror's copy the frame comes from, 0 for a
	// capture; see ChangedSince.
	Copy   uint64
	mirror *mirror
}

// capturer owns the shm buffer captures are copied into. It is reused while
// the frame geometry stays the same, and one capture runs at a time.
type capturer struct {
	mu     sync.Mutex
	file   *os.File
	mem    []byte
	pool   uint32
	buffer uint32
	w, h   int
	stride int
	format uint32
	idle   *time.Timer // releases the buffer once captures stop
}

// keepBuffer is how long the capture buffer outlives the last capture: a
// screenshot soon after reuses it, an idle desktop gives its memory back
// (a 1280×720 frame is 3.6 MB, shared with the compositor).
const keepBuffer = 10 * time.Second

// releaseLater releases the buffer keepBuffer from now unless a capture
// comes first. c.mu is held.
func (c *capturer) releaseLater(d *Display) {
	if c.idle != nil {
		c.idle.Reset(keepBuffer)
		return
	}
	c.idle = time.AfterFunc(keepBuffer, func() {
		c.mu.Lock()
		c.release(d.Conn)
		c.mu.Unlock()
	})
}

type frameEvent struct {
	opcode               uint16
	format, w, h, stride uint32
	flags                uint32
}

// Capture copies the output, or the region r of it when r is not empty,
// and calls fn with the pixels. Captures are serialized.
func (d *Display) Capture(ctx context.Context, r image.Rectangle, fn func(*Frame) error) error {
	c := &d.capture
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.releaseLater(d)
	f, err := d.copyFrame(ctx, c, r)
	if err != nil {
		return err
	}
	defer f.destroy()
	yInvert, err := f.ready(ctx)
	if err != nil {
		return err
	}
	fr := Frame{Width: c.w, Height: c.h, Stride: c.stride, Format: c.format, YInvert: yInvert, Pix: c.mem[:c.stride*c.h]}
	return fn(&fr)
}

// ErrNoDamage is the damage watch's error when the compositor's
// screencopy is too old (version 1) to report damage.
var ErrNoDamage = errors.New("the compositor's screencopy does not report damage (version 1)")

// frame is one screencopy frame whose copy has been asked for.
type frame struct {
	d      *Display
	id     uint32
	events chan frameEvent
}

// copyFrame asks for a frame of the output (or of its region r), waits
// for the compositor's buffer parameters, makes c's buffer match, and
// asks for the copy. c.mu is held by the caller.
func (d *Display) copyFrame(ctx context.Context, c *capturer, r image.Rectangle) (*frame, error) {
	f := &frame{d: d, events: make(chan frameEvent, 16)}
	id, err := d.Create(func(e *Event) {
		fe := frameEvent{opcode: e.Opcode}
		switch e.Opcode {
		case 0: // buffer: format, width, height, stride
			fe.format, fe.w, fe.h, fe.stride = e.Uint(), e.Uint(), e.Uint(), e.Uint()
		case 1: // flags
			fe.flags = e.Uint()
		case 2, 3, 6: // ready, failed, buffer_done
		default: // damage, linux_dmabuf: not used
			return
		}
		select {
		case f.events <- fe:
		default: // more events than a frame ever sends: drop, the waiter has what it needs
		}
	}, func(id uint32) *Message {
		if r.Empty() {
			return NewMessage(d.screencopy, 0).Uint(id).Int(0).Uint(d.output)
		}
		return NewMessage(d.screencopy, 1).Uint(id).Int(0).Uint(d.output).
			Int(int32(r.Min.X)).Int(int32(r.Min.Y)).Int(int32(r.Dx())).Int(int32(r.Dy()))
	})
	f.id = id
	if err != nil {
		return nil, fmt.Errorf("capture output: %w", err)
	}
	var shm frameEvent
	for {
		ev, err := f.next(ctx)
		if err != nil {
			f.destroy()
			return nil, err
		}
		switch ev.opcode {
		case 0:
			shm = ev
			if d.screencopyVersion >= 3 {
				continue // wait for buffer_done
			}
		case 6:
		case 3:
			f.destroy()
			return nil, errors.New("compositor failed to copy the frame")
		default:
			continue
		}
		if shm.w == 0 {
			f.destroy()
			return nil, errors.New("compositor offers no shm buffer for screencopy")
		}
		if err := c.ensure(d.Conn, d.shm, shm); err != nil {
			f.destroy()
			return nil, err
		}
		if err := d.Send(NewMessage(f.id, 0).Uint(c.buffer)); err != nil { // copy
			f.destroy()
			return nil, fmt.Errorf("copy frame: %w", err)
		}
		return f, nil
	}
}

// next returns the frame's next event.
func (f *frame) next(ctx context.Context) (frameEvent, error) {
	select {
	case ev := <-f.events:
		return ev, nil
	case <-ctx.Done():
		return frameEvent{}, ctx.Err()
	case <-f.d.Done():
		return frameEvent{}, f.d.closedErr()
	}
}

// ready waits until the copy is in the buffer and reports whether its
// rows are stored bottom-up.
func (f *frame) ready(ctx context.Context) (yInvert bool, err error) {
	for {
		var ev frameEvent
		select {
		case ev = <-f.events:
		case <-ctx.Done():
			return false, ctx.Err()
		case <-f.d.Done():
			return false, f.d.closedErr()
		}
		switch ev.opcode {
		case 1:
			yInvert = ev.flags&1 != 0
		case 2:
			return yInvert, nil
		case 3:
			return false, errors.New("compositor failed to copy the frame")
		}
	}
}

// destroy tells the compositor the frame is no longer wanted, copied or
// not.
func (f *frame) destroy() { f.d.Send(NewMessage(f.id, 1)) }

// ensure makes the shm buffer, made on the connection conn with its
// wl_shm shm, match the frame's geometry, reusing the current one when it
// does.
func (c *capturer) ensure(conn *Conn, shm uint32, ev frameEvent) error {
	w, h, stride := int(ev.w), int(ev.h), int(ev.stride)
	if c.buffer != 0 && c.w == w && c.h == h && c.stride == stride && c.format == ev.format {
		return nil
	}
	c.release(conn)
	size := stride * h
	f, err := memfd("atelier-screencopy", size)
	if err != nil {
		return err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return fmt.Errorf("map shm buffer: %w", err)
	}
	c.file, c.mem = f, mem
	c.pool, err = conn.Create(nil, func(id uint32) *Message { return NewMessage(shm, 0).Uint(id).FD(int(f.Fd())).Int(int32(size)) })
	if err != nil {
		return fmt.Errorf("create shm pool: %w", err)
	}
	c.buffer, err = conn.Create(nil, func(id uint32) *Message {
		return NewMessage(c.pool, 0).Uint(id).Int(0).Int(int32(w)).Int(int32(h)).Int(int32(stride)).Uint(ev.format)
	})
	if err != nil {
		return fmt.Errorf("create shm buffer: %w", err)
	}
	c.w, c.h, c.stride, c.format = w, h, stride, ev.format
	return nil
}

// release destroys the shm buffer and pool, if any.
func (c *capturer) release(conn *Conn) {
	if c.buffer != 0 {
		conn.Send(NewMessage(c.buffer, 0))
		conn.Send(NewMessage(c.pool, 1))
		c.buffer, c.pool = 0, 0
	}
	if c.mem != nil {
		unix.Munmap(c.mem)
		c.mem = nil
	}
	if c.file != nil {
		c.file.Close()
		c.file = nil
	}
}

// Close releases the capture buffer and ends the connection.
func (d *Display) Close() error {
	// The connection ends first, so a capture waiting on it returns and
	// gives up the buffer.
	err := d.Conn.Close()
	d.capture.mu.Lock()
	if d.capture.idle != nil {
		d.capture.idle.Stop()
	}
	d.capture.release(d.Conn)
	d.capture.mu.Unlock()
	d.damage.mu.Lock()
	d.damage.buf.release(d.Conn)
	d.damage.mu.Unlock()
	d.mirror.close()
	return err
}
