package view

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Client-to-server RFB message types (RFC 6143 §7.5 and the extensions
// noVNC sends).
const (
	msgSetPixelFormat          = 0
	msgSetEncodings            = 2
	msgFramebufferUpdateReq    = 3
	msgKeyEvent                = 4
	msgPointerEvent            = 5
	msgClientCutText           = 6
	msgEnableContinuousUpdates = 150
	msgFence                   = 248
	msgXVP                     = 250
	msgSetDesktopSize          = 251
	msgQEMU                    = 255

	qemuExtendedKeyEvent = 0
)

// Security types whose client side the filter can frame.
const (
	securityNone    = 1
	securityVNCAuth = 2 // 16-byte DES response
)

// Limits on variable-length messages: beyond them a message is refused
// rather than streamed to the desktop.
const (
	maxCutText   = 1 << 24
	maxFenceData = 64 // RFB fence payloads are at most 64 bytes
)

// errProtocol marks client data the filter cannot frame: the connection
// must be closed, since the rest of the stream cannot be read.
var errProtocol = errors.New("rfb")

func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errProtocol}, args...)...)
}

// cutTextLen reads a cut text's length (either direction): a negative one
// is the extended clipboard's, whose payload is its absolute value.
func cutTextLen(b []byte, what string) (int64, error) {
	l := int64(int32(binary.BigEndian.Uint32(b)))
	if l < 0 {
		l = -l
	}
	if l > maxCutText {
		return 0, protocolErrorf("%s of %d bytes: at most %d", what, l, maxCutText)
	}
	return l, nil
}

// filter copies the client half of an RFB stream from r to w message by
// message. In view mode it drops every message that acts on the desktop:
// keys, pointer, clipboard, desktop size, and power (xvp). In control mode
// with a gate, each of those passes only if the gate admits it, and is
// dropped as in view mode if not. In both modes it forces ClientInit's
// shared flag, so that no viewer can disconnect the others.
type filter struct {
	r    *bufio.Reader
	w    *bufio.Writer
	view bool
	gate gate
	// admitted holds the gate's done calls for input written to w but not
	// yet flushed.
	admitted []func()
	// Keys and pointer buttons this viewer holds down on the desktop.
	// Releasing them passes even when the gate refuses: control changing
	// hands mid-keystroke must not leave a key (a shift, a ctrl) or a
	// button down under the next holder's input.
	keysDown map[uint32]bool
	buttons  byte
	// chosen, if not nil, is told the viewer's handshake choice: the
	// server filter of a view-mode viewer frames its half by it.
	chosen chan<- handshakeChoice
	hdr    [20]byte
}

// gate admits one input message (done is called once it has reached the
// desktop) or refuses it.
type gate func() (done func(), err error)

// newFilter returns a filter for a viewer in mode; gate, if not nil,
// decides each input message of a control viewer.
func newFilter(r io.Reader, w io.Writer, mode Mode, g gate) *filter {
	return &filter{r: bufio.NewReaderSize(r, 4096), w: bufio.NewWriterSize(w, 4096), view: mode != ModeControl, gate: g}
}

// run filters until r ends (io.EOF), a write fails, or the client sends
// what cannot be framed (an errProtocol error).
func (f *filter) run() error {
	// Admitted input that never reached the desktop is over all the same.
	defer f.settle()
	if err := f.handshake(); err != nil {
		return err
	}
	for {
		if err := f.message(); err != nil {
			return err
		}
		// Flush once the client has nothing more queued: small messages
		// arriving together go out in one write.
		if f.r.Buffered() == 0 {
			if err := f.w.Flush(); err != nil {
				return err
			}
			f.settle()
		}
	}
}

// settle reports the admitted input as delivered.
func (f *filter) settle() {
	for i, done := range f.admitted {
		done()
		f.admitted[i] = nil
	}
	f.admitted = f.admitted[:0]
}

// admit asks the gate about one input message.
func (f *filter) admit() bool {
	if f.gate == nil {
		return true
	}
	done, err := f.gate()
	if err != nil {
		return false
	}
	f.admitted = append(f.admitted, done)
	return true
}

// handshake passes ProtocolVersion, the security type selection (and a VNC
// authentication response) and ClientInit.
func (f *filter) handshake() error {
	v := f.hdr[:12]
	if err := f.read(v); err != nil {
		return err
	}
	switch string(v) {
	case "RFB 003.007\n", "RFB 003.008\n":
	default:
		// 3.3 lets the server pick the security type unseen by this side.
		return protocolErrorf("protocol version %q: want RFB 003.007 or 003.008", v)
	}
	// Each step of the handshake waits for the server's answer: flush.
	if err := f.forwardFlush(v); err != nil {
		return err
	}
	sec := f.hdr[:1]
	if err := f.read(sec); err != nil {
		return err
	}
	if err := f.forwardFlush(sec); err != nil {
		return err
	}
	if f.chosen != nil {
		f.chosen <- handshakeChoice{minor: v[10], security: sec[0]}
	}
	switch sec[0] {
	case securityNone:
	case securityVNCAuth:
		if err := f.copy(16, false); err != nil {
			return err
		}
		if err := f.w.Flush(); err != nil {
			return err
		}
	default:
		return protocolErrorf("security type %d: want none (1) or VNC authentication (2)", sec[0])
	}
	shared := f.hdr[:1]
	if err := f.read(shared); err != nil {
		return err
	}
	shared[0] = 1
	return f.forwardFlush(shared)
}

// message passes or drops one client message.
func (f *filter) message() error {
	t, err := f.r.ReadByte()
	if err != nil {
		return err
	}
	f.hdr[0] = t
	var (
		n     int   // fixed length, type byte included
		extra int64 // variable payload after the fixed part
		input bool  // acts on the desktop: dropped in view mode
		// the server's answer is not framed: dropped in view mode
		unframed bool
	)
	switch t {
	case msgSetPixelFormat:
		n = 20
	case msgSetEncodings:
		n = 4
	case msgFramebufferUpdateReq, msgEnableContinuousUpdates:
		n = 10
	case msgKeyEvent:
		n, input = 8, true
	case msgPointerEvent:
		n, input = 6, true
	case msgClientCutText:
		n, input = 8, true
	case msgFence:
		n = 9
	case msgXVP:
		n, input = 4, true
	case msgSetDesktopSize:
		n, input = 8, true
	case msgQEMU:
		n = 2
	default:
		return protocolErrorf("unknown client message type %d", t)
	}
	if err := f.read(f.hdr[1:n]); err != nil {
		return err
	}
	if f.view {
		// A view-mode viewer gets only what the server filter can frame.
		switch t {
		case msgSetPixelFormat:
			if !viewPixelFormat(f.hdr[4:20]) {
				return protocolErrorf("pixel format %x: want 32 bpp, depth 24, true colour", f.hdr[4:20])
			}
		case msgSetEncodings:
			return f.viewEncodings()
		case msgEnableContinuousUpdates, msgFence:
			// Their server replies are not framed; no client sends them
			// unasked, and the encodings a view asks for never ask.
			unframed = true
		}
	}
	switch t {
	case msgSetEncodings:
		extra = 4 * int64(binary.BigEndian.Uint16(f.hdr[2:4]))
	case msgClientCutText:
		l, err := cutTextLen(f.hdr[4:8], "clipboard")
		if err != nil {
			return err
		}
		extra = l
	case msgFence:
		extra = int64(f.hdr[8])
		if extra > maxFenceData {
			return protocolErrorf("fence payload of %d bytes: at most %d", extra, maxFenceData)
		}
	case msgSetDesktopSize:
		extra = 16 * int64(f.hdr[6])
	case msgQEMU:
		if f.hdr[1] != qemuExtendedKeyEvent {
			return protocolErrorf("unknown QEMU client message %d", f.hdr[1])
		}
		if err := f.read(f.hdr[2:12]); err != nil {
			return err
		}
		n, input = 12, true
	}
	drop := unframed || input && (f.view || (!f.admit() && !f.releases(t)))
	if input && !drop && f.gate != nil {
		f.track(t)
	}
	if !drop {
		if err := f.forward(f.hdr[:n]); err != nil {
			return err
		}
	}
	return f.copy(extra, drop)
}

// viewEncodings passes a SetEncodings (its header read) with the
// encodings a view may not ask for struck out, each kept once, in the
// viewer's order of preference.
func (f *filter) viewEncodings() error {
	n := int(binary.BigEndian.Uint16(f.hdr[2:4]))
	keep := make([]byte, 0, 4*8)
	seen := map[int32]bool{}
	enc := make([]byte, 4)
	for range n {
		if err := f.read(enc); err != nil {
			return err
		}
		e := int32(binary.BigEndian.Uint32(enc))
		if viewEncoding(e) && !seen[e] {
			seen[e] = true
			keep = append(keep, enc...)
		}
	}
	binary.BigEndian.PutUint16(f.hdr[2:4], uint16(len(keep)/4))
	if err := f.forward(f.hdr[:4]); err != nil {
		return err
	}
	return f.forward(keep)
}

// key returns a key message's keysym and whether it presses (RFB's
// KeyEvent or QEMU's extended one).
func (f *filter) key(t byte) (keysym uint32, down bool) {
	if t == msgQEMU {
		return binary.BigEndian.Uint32(f.hdr[4:8]), binary.BigEndian.Uint16(f.hdr[2:4]) != 0
	}
	return binary.BigEndian.Uint32(f.hdr[4:8]), f.hdr[1] != 0
}

// releases reports whether a refused input message only lets go of what
// this viewer holds down: the release of a key it pressed, or a pointer
// event that releases buttons and presses none.
func (f *filter) releases(t byte) bool {
	switch t {
	case msgKeyEvent, msgQEMU:
		sym, down := f.key(t)
		return !down && f.keysDown[sym]
	case msgPointerEvent:
		mask := f.hdr[1]
		return mask&^f.buttons == 0 && mask != f.buttons
	}
	return false
}

// track notes what a forwarded input message presses or releases.
func (f *filter) track(t byte) {
	switch t {
	case msgKeyEvent, msgQEMU:
		sym, down := f.key(t)
		if !down {
			delete(f.keysDown, sym)
			return
		}
		if f.keysDown == nil {
			f.keysDown = map[uint32]bool{}
		}
		f.keysDown[sym] = true
	case msgPointerEvent:
		f.buttons = f.hdr[1]
	}
}

// read fills b from the client; a stream ending inside it is
// io.ErrUnexpectedEOF.
func (f *filter) read(b []byte) error {
	_, err := io.ReadFull(f.r, b)
	return err
}

func (f *filter) forward(b []byte) error {
	_, err := f.w.Write(b)
	return err
}

func (f *filter) forwardFlush(b []byte) error {
	if err := f.forward(b); err != nil {
		return err
	}
	return f.w.Flush()
}

// copy passes (or with drop, discards) the next n bytes of the client.
func (f *filter) copy(n int64, drop bool) error {
	if n == 0 {
		return nil // most messages: no payload, and no CopyN allocation
	}
	var dst io.Writer = f.w
	if drop {
		dst = io.Discard
	}
	m, err := io.CopyN(dst, f.r, n)
	if err == io.EOF && m < n {
		return io.ErrUnexpectedEOF
	}
	return err
}
