package wayland

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// headerSize is the size of a message header: the object id, then the
// message size (header included) in the high 16 bits and the opcode in the
// low 16 bits of the second word.
const headerSize = 8

// maxMessageSize is the protocol's limit on one message (the size field is
// 16 bits); libwayland itself caps messages at 4096 bytes.
const maxMessageSize = 4096

// Fixed converts f to the protocol's 24.8 signed fixed-point number.
func Fixed(f float64) int32 { return int32(math.Round(f * 256)) }

// FixedFloat converts a 24.8 fixed-point number to a float64.
func FixedFloat(v int32) float64 { return float64(v) / 256 }

// Message is one request being encoded: a header followed by arguments, and
// the file descriptors that travel beside it.
type Message struct {
	buf []byte
	fds []int
}

// NewMessage starts a request with the given opcode to object id.
func NewMessage(id uint32, opcode uint16) *Message {
	m := &Message{buf: make([]byte, headerSize, 64)}
	binary.LittleEndian.PutUint32(m.buf, id)
	binary.LittleEndian.PutUint16(m.buf[4:], opcode)
	return m
}

// Uint appends an unsigned 32-bit argument (also object and new_id).
func (m *Message) Uint(v uint32) *Message {
	m.buf = binary.LittleEndian.AppendUint32(m.buf, v)
	return m
}

// Int appends a signed 32-bit argument (also fixed).
func (m *Message) Int(v int32) *Message { return m.Uint(uint32(v)) }

// String appends a string argument: its length with the NUL, the bytes, the
// NUL, padding to 4 bytes.
func (m *Message) String(s string) *Message {
	m.Uint(uint32(len(s) + 1))
	m.buf = append(m.buf, s...)
	m.buf = append(m.buf, 0)
	return m.pad()
}

// Array appends an array argument: its byte length, the bytes, padding.
func (m *Message) Array(b []byte) *Message {
	m.Uint(uint32(len(b)))
	m.buf = append(m.buf, b...)
	return m.pad()
}

// FD attaches a file descriptor; it takes no room in the message body.
func (m *Message) FD(fd int) *Message {
	m.fds = append(m.fds, fd)
	return m
}

func (m *Message) pad() *Message {
	for len(m.buf)%4 != 0 {
		m.buf = append(m.buf, 0)
	}
	return m
}

// bytes finishes the header's size field and returns the encoded message.
func (m *Message) bytes() ([]byte, error) {
	if len(m.buf) > maxMessageSize {
		return nil, fmt.Errorf("message of %d bytes is over the %d limit", len(m.buf), maxMessageSize)
	}
	binary.LittleEndian.PutUint16(m.buf[6:], uint16(len(m.buf)))
	return m.buf, nil
}

// Event is one decoded message from the compositor. Its argument readers
// consume the body in order; a malformed body sets Err and yields zeros.
type Event struct {
	Sender uint32
	Opcode uint16
	body   []byte
	fds    *[]int
	Err    error
}

// errShort reports an event whose body ends before its arguments do.
var errShort = errors.New("event body too short")

// Uint reads an unsigned 32-bit argument.
func (e *Event) Uint() uint32 {
	if len(e.body) < 4 {
		e.Err = errShort
		return 0
	}
	v := binary.LittleEndian.Uint32(e.body)
	e.body = e.body[4:]
	return v
}

// Int reads a signed 32-bit argument.
func (e *Event) Int() int32 { return int32(e.Uint()) }

// String reads a string argument.
func (e *Event) String() string {
	b := e.Array()
	if len(b) == 0 {
		return ""
	}
	if b[len(b)-1] != 0 {
		e.Err = errors.New("string argument without its NUL")
		return ""
	}
	return string(b[:len(b)-1])
}

// Array reads an array argument.
func (e *Event) Array() []byte {
	n := int(e.Uint())
	padded := (n + 3) &^ 3
	if e.Err != nil || n < 0 || padded > len(e.body) {
		e.Err = errShort
		return nil
	}
	b := e.body[:n]
	e.body = e.body[padded:]
	return b
}

// FD takes the next file descriptor that came with the event; the caller
// owns it.
func (e *Event) FD() int {
	if e.fds == nil || len(*e.fds) == 0 {
		e.Err = errors.New("event expects a file descriptor that did not arrive")
		return -1
	}
	fd := (*e.fds)[0]
	*e.fds = (*e.fds)[1:]
	return fd
}

// parseHeader splits the first message off b. It returns ok=false when b
// holds less than one whole message.
func parseHeader(b []byte) (sender uint32, opcode uint16, size int, ok bool, err error) {
	if len(b) < headerSize {
		return 0, 0, 0, false, nil
	}
	sender = binary.LittleEndian.Uint32(b)
	word := binary.LittleEndian.Uint32(b[4:])
	size, opcode = int(word>>16), uint16(word)
	if size < headerSize || size%4 != 0 {
		return 0, 0, 0, false, fmt.Errorf("message of object %d has a bad size %d", sender, size)
	}
	return sender, opcode, size, len(b) >= size, nil
}
