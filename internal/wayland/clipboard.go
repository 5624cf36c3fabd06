package wayland

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ifaceDataControl is wlroots' data-control protocol: a client that is
// not focused reads and sets the seat's selection (the clipboard).
const ifaceDataControl = "zwlr_data_control_manager_v1"

// Clipboard MIME types the agent reads and sets.
const (
	MimeText = "text/plain;charset=utf-8"
	MimePNG  = "image/png"
)

// textMimes are the names the same UTF-8 text goes by: a source offers
// them all, so every client finds one it asks for; a reader takes the
// first the selection offers.
var textMimes = []string{MimeText, "text/plain", "UTF8_STRING", "STRING", "TEXT"}

// ErrNoClipboard: the compositor has no data-control protocol.
var ErrNoClipboard = errors.New("the compositor offers no clipboard access (zwlr_data_control_manager_v1)")

// ErrEmpty: the clipboard holds nothing in the type asked for.
var ErrEmpty = errors.New("the clipboard holds nothing of that type")

// ErrTooLarge: the clipboard holds more than the reader's limit.
var ErrTooLarge = errors.New("the clipboard's content is over the limit")

// clipboard is the seat's data-control device: the offers the compositor
// announced and the selection it holds, and the source this client set.
type clipboard struct {
	dev    uint32
	mu     sync.Mutex
	offers map[uint32][]string // offer id → its MIME types
	sel    uint32              // the selection's offer; 0: empty
	src    uint32              // the source this client set; 0: none
	data   []byte              // what src serves
}

// startClipboard gets the seat's data-control device, if the compositor
// has the protocol; Clipboard calls then work.
func (d *Display) startClipboard(manager uint32) error {
	c := &clipboard{offers: map[uint32][]string{}}
	dev, err := d.Create(func(e *Event) { d.deviceEvent(c, e) }, func(id uint32) *Message {
		return NewMessage(manager, 1).Uint(id).Uint(d.seat) // get_data_device
	})
	if err != nil {
		return err
	}
	c.dev = dev
	d.dataControl, d.clip = manager, c
	return nil
}

// deviceEvent handles zwlr_data_control_device_v1's events on the reader
// goroutine.
func (d *Display) deviceEvent(c *clipboard, e *Event) {
	switch e.Opcode {
	case 0: // data_offer: a new offer object, named by the compositor
		id := e.Uint()
		c.mu.Lock()
		c.offers[id] = nil
		c.mu.Unlock()
		d.setHandler(id, func(e *Event) {
			if e.Opcode == 0 { // offer: one MIME type
				mime := e.String()
				c.mu.Lock()
				if _, ok := c.offers[id]; ok && len(c.offers[id]) < 64 {
					c.offers[id] = append(c.offers[id], mime)
				}
				c.mu.Unlock()
			}
		})
	case 1: // selection: the clipboard's offer now (0: empty)
		id := e.Uint()
		c.mu.Lock()
		old := c.sel
		c.sel = id
		c.mu.Unlock()
		if old != 0 && old != id {
			d.dropOffer(c, old)
		}
	case 3: // primary_selection: not the clipboard; its offer is not kept
		if id := e.Uint(); id != 0 {
			d.dropOffer(c, id)
		}
	}
}

// dropOffer destroys an offer no longer needed.
func (d *Display) dropOffer(c *clipboard, id uint32) {
	c.mu.Lock()
	delete(c.offers, id)
	c.mu.Unlock()
	d.Send(NewMessage(id, 1)) // destroy
	d.setHandler(id, nil)
}

// ReadClipboard reads the clipboard's content in one of mimes (the first
// the selection offers), at most limit bytes; it returns the type read.
func (d *Display) ReadClipboard(ctx context.Context, mime string, limit int) ([]byte, string, error) {
	c := d.clip
	if c == nil {
		return nil, "", ErrNoClipboard
	}
	want := []string{mime}
	if mime == MimeText {
		want = textMimes
	}
	c.mu.Lock()
	offer, have := c.sel, c.offers[c.sel]
	c.mu.Unlock()
	got := ""
	for _, m := range want {
		if slices.Contains(have, m) {
			got = m
			break
		}
	}
	if offer == 0 || got == "" {
		return nil, "", ErrEmpty
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, "", fmt.Errorf("clipboard pipe: %w", err)
	}
	// Only the read end is non-blocking (for the deadline below): the
	// write end goes to the selection's owner as it is.
	unix.SetNonblock(p[0], true)
	r := os.NewFile(uintptr(p[0]), "clipboard")
	defer r.Close()
	err := d.Send(NewMessage(offer, 0).String(got).FD(p[1])) // receive
	unix.Close(p[1])                                         // the owner holds its copy; EOF comes when it closes it
	if err != nil {
		return nil, "", err
	}
	if dl, ok := ctx.Deadline(); ok {
		r.SetReadDeadline(dl)
	} else {
		r.SetReadDeadline(time.Now().Add(5 * time.Second))
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, "", fmt.Errorf("read the clipboard: %w", err)
	}
	if len(b) > limit {
		return nil, "", fmt.Errorf("%w of %d bytes", ErrTooLarge, limit)
	}
	return b, got, nil
}

// SetClipboard makes data the clipboard's content, of type mime (text is
// offered under its usual names too). This client serves it until another
// sets the clipboard.
func (d *Display) SetClipboard(mime string, data []byte) error {
	c := d.clip
	if c == nil {
		return ErrNoClipboard
	}
	data = slices.Clone(data)
	src, err := d.Create(func(e *Event) { d.sourceEvent(c, e.Sender, data, e) }, func(id uint32) *Message {
		return NewMessage(d.dataControl, 0).Uint(id) // create_data_source
	})
	if err != nil {
		return err
	}
	mimes := []string{mime}
	if mime == MimeText {
		mimes = textMimes
	}
	for _, m := range mimes {
		if err := d.Send(NewMessage(src, 0).String(m)); err != nil { // offer
			return err
		}
	}
	c.mu.Lock()
	old := c.src
	c.src, c.data = src, data
	c.mu.Unlock()
	if err := d.Send(NewMessage(c.dev, 0).Uint(src)); err != nil { // set_selection
		return err
	}
	if old != 0 {
		d.destroySource(old)
	}
	return nil
}

// sourceEvent serves a source this client set: send writes its data into
// the fd received (off the reader goroutine: a slow reader must not stall
// the connection); cancelled means another client owns the clipboard.
func (d *Display) sourceEvent(c *clipboard, src uint32, data []byte, e *Event) {
	switch e.Opcode {
	case 0: // send: mime, fd
		_ = e.String() // the type: this source serves one content
		fd := e.FD()
		if fd < 0 {
			return
		}
		unix.SetNonblock(fd, true) // so that the deadline below holds
		go func() {
			f := os.NewFile(uintptr(fd), "clipboard-send")
			defer f.Close()
			f.SetWriteDeadline(time.Now().Add(10 * time.Second))
			f.Write(data) // a reader that leaves early is its own business
		}()
	case 1: // cancelled
		c.mu.Lock()
		if c.src == src {
			c.src, c.data = 0, nil
		}
		c.mu.Unlock()
		d.destroySource(src)
	}
}

func (d *Display) destroySource(src uint32) {
	d.Send(NewMessage(src, 1))
	d.setHandler(src, nil)
}
