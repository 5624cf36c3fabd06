// Package wayland is a small pure-Go Wayland client: the wire protocol over
// the compositor's unix socket, and the few interfaces the agent drives —
// wl_output, wl_shm, the wlroots screencopy protocol, and the virtual
// keyboard and virtual pointer protocols. One connection serves every
// request of the agent, so an action costs a socket write, not a process.
package wayland

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// displayID is the object id of wl_display, fixed by the protocol.
const displayID = 1

// ErrClosed is returned by requests on a connection that has ended.
var ErrClosed = errors.New("wayland connection closed")

// Conn is one client connection. Requests may be sent from any goroutine;
// events are read and dispatched by one goroutine the Conn owns, which
// Close stops.
type Conn struct {
	uc *net.UnixConn

	wmu   sync.Mutex // serializes writes, so messages never interleave
	newMu sync.Mutex // serializes Create: ids reach the compositor in the order they are allocated

	mu       sync.Mutex
	handlers map[uint32]func(*Event)
	nextID   uint32
	freeIDs  []uint32
	err      error // why the connection ended; set before done closes

	done       chan struct{}
	readerDone chan struct{}
	closeOnce  sync.Once
}

// Connect opens a connection to the compositor socket at path.
func Connect(path string) (*Conn, error) {
	uc, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("connect to wayland socket: %w", err)
	}
	c := &Conn{
		uc:         uc,
		handlers:   make(map[uint32]func(*Event)),
		nextID:     displayID + 1,
		done:       make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	c.handlers[displayID] = c.displayEvent
	go c.readLoop()
	return c, nil
}

// Done is closed when the connection has ended (Close, a protocol error,
// or the compositor going away).
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it works.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the connection and waits for its reader goroutine to stop.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	<-c.readerDone
	return nil
}

// fail ends the connection with err, keeping the first reason.
func (c *Conn) fail(err error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		c.uc.Close()
		close(c.done)
	})
}

// Create allocates an object id whose events go to h and sends req(id),
// the request that creates the object, as one step: the compositor
// refuses a new id above the next one it expects (a protocol error that
// ends the connection), so two goroutines must not allocate in one order
// and send in the other. h runs on the reader goroutine and must not
// block; it may run before Create returns.
func (c *Conn) Create(h func(*Event), req func(id uint32) *Message) (uint32, error) {
	c.newMu.Lock()
	defer c.newMu.Unlock()
	id := c.newObject(h)
	return id, c.Send(req(id))
}

// newObject allocates an object id whose events go to h.
func (c *Conn) newObject(h func(*Event)) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var id uint32
	if n := len(c.freeIDs); n > 0 {
		id, c.freeIDs = c.freeIDs[n-1], c.freeIDs[:n-1]
	} else {
		id = c.nextID
		c.nextID++
	}
	if h == nil {
		h = func(*Event) {}
	}
	c.handlers[id] = h
	return id
}

// serverIDs is where the ids of objects the compositor creates begin.
const serverIDs = 0xff000000

// setHandler sends id's events to h. A nil h forgets a compositor's
// object, and silences one of this client until delete_id frees its id.
func (c *Conn) setHandler(id uint32, h func(*Event)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case h != nil:
		c.handlers[id] = h
	case id >= serverIDs:
		delete(c.handlers, id)
	default:
		c.handlers[id] = func(*Event) {}
	}
}

// Send writes one request, with its file descriptors.
func (c *Conn) Send(m *Message) error {
	b, err := m.bytes()
	if err != nil {
		return err
	}
	var oob []byte
	if len(m.fds) > 0 {
		oob = unix.UnixRights(m.fds...)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	select {
	case <-c.done:
		return c.closedErr()
	default:
	}
	if _, _, err := c.uc.WriteMsgUnix(b, oob, nil); err != nil {
		c.fail(fmt.Errorf("write to compositor: %w", err))
		return c.closedErr()
	}
	return nil
}

func (c *Conn) closedErr() error {
	if err := c.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// Roundtrip returns once the compositor has processed every request sent
// before it (wl_display.sync), or ctx ends, or the connection does.
func (c *Conn) Roundtrip(ctx context.Context) error {
	done := make(chan struct{})
	_, err := c.Create(func(e *Event) {
		if e.Opcode == 0 { // wl_callback.done
			close(done)
		}
	}, func(cb uint32) *Message { return NewMessage(displayID, 0).Uint(cb) })
	if err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return c.closedErr()
	}
}

// ProtocolError is a fatal error the compositor reported about a request.
type ProtocolError struct {
	Object  uint32
	Code    uint32
	Message string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("wayland protocol error on object %d, code %d: %s", e.Object, e.Code, e.Message)
}

func (c *Conn) displayEvent(e *Event) {
	switch e.Opcode {
	case 0: // error
		pe := &ProtocolError{Object: e.Uint(), Code: e.Uint(), Message: e.String()}
		c.fail(pe)
	case 1: // delete_id: the id may be reused
		id := e.Uint()
		c.mu.Lock()
		if _, ok := c.handlers[id]; ok && id != displayID {
			delete(c.handlers, id)
			c.freeIDs = append(c.freeIDs, id)
		}
		c.mu.Unlock()
	}
}

// readLoop reads and dispatches events until the connection ends.
func (c *Conn) readLoop() {
	defer close(c.readerDone)
	buf := make([]byte, 0, 64<<10)
	chunk := make([]byte, 32<<10)
	oob := make([]byte, unix.CmsgSpace(28*4))
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for {
		n, oobn, _, _, err := c.uc.ReadMsgUnix(chunk, oob)
		if oobn > 0 {
			fds = append(fds, parseRights(oob[:oobn])...)
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				c.fail(ErrClosed)
			} else {
				c.fail(fmt.Errorf("read from compositor: %w", err))
			}
			return
		}
		if n == 0 {
			c.fail(fmt.Errorf("compositor closed the connection"))
			return
		}
		buf = append(buf, chunk[:n]...)
		off := 0
		for {
			sender, opcode, size, ok, err := parseHeader(buf[off:])
			if err != nil {
				c.fail(err)
				return
			}
			if !ok {
				break
			}
			e := &Event{Sender: sender, Opcode: opcode, body: buf[off+headerSize : off+size], fds: &fds}
			c.mu.Lock()
			h := c.handlers[sender]
			c.mu.Unlock()
			if h != nil {
				h(e)
			}
			if e.Err != nil {
				c.fail(fmt.Errorf("event %d of object %d: %w", opcode, sender, e.Err))
				return
			}
			off += size
		}
		// Keep the unread tail at the start, so buf does not grow forever.
		buf = buf[:copy(buf, buf[off:])]
	}
}

func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if r, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, r...)
		}
	}
	return fds
}

// memfd returns an anonymous shared-memory file of size bytes.
func memfd(name string, size int) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return nil, fmt.Errorf("size memfd: %w", err)
	}
	return f, nil
}
