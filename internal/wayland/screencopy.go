package wayland

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"sync"

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

	events := make(chan frameEvent, 16)
	frame := d.NewObject(func(e *Event) {
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
		case events <- fe:
		default: // more events than a frame ever sends: drop, the waiter has what it needs
		}
	})
	var m *Message
	if r.Empty() {
		m = NewMessage(d.screencopy, 0).Uint(frame).Int(0).Uint(d.output)
	} else {
		m = NewMessage(d.screencopy, 1).Uint(frame).Int(0).Uint(d.output).
			Int(int32(r.Min.X)).Int(int32(r.Min.Y)).Int(int32(r.Dx())).Int(int32(r.Dy()))
	}
	if err := d.Send(m); err != nil {
		return fmt.Errorf("capture output: %w", err)
	}
	defer d.Send(NewMessage(frame, 1)) // destroy the frame, used or not

	var shm frameEvent
	var f Frame
	for {
		var ev frameEvent
		select {
		case ev = <-events:
		case <-ctx.Done():
			return ctx.Err()
		case <-d.Done():
			return d.closedErr()
		}
		switch ev.opcode {
		case 0:
			shm = ev
			if d.screencopyVersion >= 3 {
				continue // wait for buffer_done
			}
			fallthrough
		case 6:
			if shm.w == 0 {
				return errors.New("compositor offers no shm buffer for screencopy")
			}
			if err := c.ensure(d, shm); err != nil {
				return err
			}
			if err := d.Send(NewMessage(frame, 0).Uint(c.buffer)); err != nil {
				return fmt.Errorf("copy frame: %w", err)
			}
		case 1:
			f.YInvert = ev.flags&1 != 0
		case 3:
			return errors.New("compositor failed to copy the frame")
		case 2:
			f.Width, f.Height, f.Stride, f.Format = c.w, c.h, c.stride, c.format
			f.Pix = c.mem[:c.stride*c.h]
			return fn(&f)
		}
	}
}

// ensure makes the shm buffer match the frame's geometry, reusing the
// current one when it does.
func (c *capturer) ensure(d *Display, ev frameEvent) error {
	w, h, stride := int(ev.w), int(ev.h), int(ev.stride)
	if c.buffer != 0 && c.w == w && c.h == h && c.stride == stride && c.format == ev.format {
		return nil
	}
	c.release(d)
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
	c.pool = d.NewObject(nil)
	if err := d.Send(NewMessage(d.shm, 0).Uint(c.pool).FD(int(f.Fd())).Int(int32(size))); err != nil {
		return fmt.Errorf("create shm pool: %w", err)
	}
	c.buffer = d.NewObject(nil)
	m := NewMessage(c.pool, 0).Uint(c.buffer).Int(0).Int(int32(w)).Int(int32(h)).Int(int32(stride)).Uint(ev.format)
	if err := d.Send(m); err != nil {
		return fmt.Errorf("create shm buffer: %w", err)
	}
	c.w, c.h, c.stride, c.format = w, h, stride, ev.format
	return nil
}

// release destroys the shm buffer and pool, if any.
func (c *capturer) release(d *Display) {
	if c.buffer != 0 {
		d.Send(NewMessage(c.buffer, 0))
		d.Send(NewMessage(c.pool, 1))
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
	d.capture.release(d)
	d.capture.mu.Unlock()
	return err
}
