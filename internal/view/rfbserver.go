package view

import (
	"bufio"
	"encoding/binary"
	"io"
)

// Server-to-client RFB message types (RFC 6143 §7.6).
const (
	msgFramebufferUpdate          = 0
	msgSetColourMapEntries        = 1
	msgBell                       = 2
	msgServerCutText              = 3
	securityResultOK       uint32 = 0
)

// Encodings a view-mode viewer may ask for: the ones serverFilter can
// frame. Everything else a client offers is struck from its SetEncodings,
// so the server never uses it.
const (
	encRaw                 = 0
	encCopyRect            = 1
	encTight               = 7
	encDesktopSize         = -223
	encLastRect            = -224
	encCursor              = -239
	encExtendedDesktopSize = -308
)

// viewEncoding reports whether a view-mode viewer may ask for enc: the
// pixel encodings serverFilter frames, Tight's quality and compression
// levels, and the pseudo-encodings that carry no clipboard.
func viewEncoding(enc int32) bool {
	switch {
	case enc == encRaw, enc == encCopyRect, enc == encTight,
		enc == encDesktopSize, enc == encLastRect, enc == encCursor, enc == encExtendedDesktopSize:
		return true
	case enc >= -32 && enc <= -23: // JPEG quality levels
		return true
	case enc >= -256 && enc <= -247: // compression levels
		return true
	}
	return false
}

// viewPixelFormat reports whether a pixel format (16 bytes, RFC 6143
// §7.4) is one serverFilter frames: 32 bits a pixel, true colour, depth
// 24 with 8 bits a channel, so that Tight's pixels are 3 bytes.
func viewPixelFormat(pf []byte) bool {
	return pf[0] == 32 && pf[1] == 24 && pf[3] != 0 &&
		binary.BigEndian.Uint16(pf[4:]) == 255 && binary.BigEndian.Uint16(pf[6:]) == 255 && binary.BigEndian.Uint16(pf[8:]) == 255
}

// Limits on the server's variable-length fields that serverFilter reads
// into memory or discards.
const (
	maxReason     = 1 << 16
	maxServerName = 1 << 16
)

// handshakeChoice is what the client filter saw the viewer choose: the
// server's half of the handshake depends on it.
type handshakeChoice struct {
	minor    byte // '7' or '8': RFB 3.7 or 3.8
	security byte
}

// serverFilter copies the server half of an RFB stream to a view-mode
// viewer message by message, and drops ServerCutText: the desktop's
// clipboard is for control viewers only. It streams payloads (no update is
// held in memory) and stops at anything it cannot frame, since a byte
// passed unframed could be a clipboard.
type serverFilter struct {
	r      *bufio.Reader
	w      *bufio.Writer
	chosen <-chan handshakeChoice
	hdr    [24]byte
}

// newServerFilter returns a filter of the server stream r to w; chosen
// gives the viewer's handshake choice, or is closed if there is none.
func newServerFilter(r io.Reader, w io.Writer, chosen <-chan handshakeChoice) *serverFilter {
	return &serverFilter{r: bufio.NewReaderSize(r, 64<<10), w: bufio.NewWriterSize(w, downBufSize), chosen: chosen}
}

// run filters until r ends, a write fails, or the server sends what
// cannot be framed (an errProtocol error). What it passed is flushed.
func (s *serverFilter) run() error {
	err := s.handshake()
	for err == nil {
		err = s.message()
		if err == nil && s.r.Buffered() == 0 {
			err = s.w.Flush()
		}
	}
	if ferr := s.w.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

// handshake passes ProtocolVersion, the security handshake the viewer
// chose and ServerInit.
func (s *serverFilter) handshake() error {
	// Each step waits for the viewer's answer: flush it.
	if err := s.pass(12); err != nil { // ProtocolVersion
		return err
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	n, err := s.byte()
	if err != nil {
		return err
	}
	if err := s.forward([]byte{n}); err != nil {
		return err
	}
	if n == 0 { // refused: a reason, then the server closes
		if err := s.reason(); err != nil {
			return err
		}
		return protocolErrorf("desktop refused the connection")
	}
	if err := s.pass(int64(n)); err != nil {
		return err
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	c, ok := <-s.chosen
	if !ok {
		return io.EOF // the viewer went before choosing
	}
	if c.security == securityVNCAuth {
		if err := s.pass(16); err != nil { // challenge
			return err
		}
		if err := s.w.Flush(); err != nil { // the viewer answers it
			return err
		}
	}
	// RFB 3.7 has no SecurityResult after security type None.
	if c.security != securityNone || c.minor == '8' {
		res := s.hdr[:4]
		if err := s.read(res); err != nil {
			return err
		}
		if err := s.forward(res); err != nil {
			return err
		}
		if binary.BigEndian.Uint32(res) != securityResultOK {
			if c.minor == '8' {
				if err := s.reason(); err != nil {
					return err
				}
			}
			return protocolErrorf("desktop refused the security handshake")
		}
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	init := s.hdr[:24]
	if err := s.read(init); err != nil {
		return err
	}
	if !viewPixelFormat(init[4:20]) {
		return protocolErrorf("desktop pixel format %x: want 32 bpp, depth 24, true colour", init[4:20])
	}
	name := int64(binary.BigEndian.Uint32(init[20:24]))
	if name > maxServerName {
		return protocolErrorf("desktop name of %d bytes: at most %d", name, maxServerName)
	}
	if err := s.forward(init); err != nil {
		return err
	}
	if err := s.pass(name); err != nil {
		return err
	}
	return s.w.Flush()
}

// reason passes a length-prefixed failure reason.
func (s *serverFilter) reason() error {
	l := s.hdr[:4]
	if err := s.read(l); err != nil {
		return err
	}
	n := int64(binary.BigEndian.Uint32(l))
	if n > maxReason {
		return protocolErrorf("reason of %d bytes: at most %d", n, maxReason)
	}
	if err := s.forward(l); err != nil {
		return err
	}
	return s.pass(n)
}

// message passes or drops one server message.
func (s *serverFilter) message() error {
	t, err := s.r.ReadByte()
	if err != nil {
		return err
	}
	switch t {
	case msgFramebufferUpdate:
		h := s.hdr[:4]
		h[0] = t
		if err := s.read(h[1:]); err != nil {
			return err
		}
		if err := s.forward(h); err != nil {
			return err
		}
		for n := binary.BigEndian.Uint16(h[2:]); n > 0; n-- {
			last, err := s.rect()
			if err != nil || last {
				return err
			}
		}
		return nil
	case msgSetColourMapEntries:
		h := s.hdr[:6]
		h[0] = t
		if err := s.read(h[1:]); err != nil {
			return err
		}
		if err := s.forward(h); err != nil {
			return err
		}
		return s.pass(6 * int64(binary.BigEndian.Uint16(h[4:])))
	case msgBell:
		return s.forward([]byte{t})
	case msgServerCutText:
		h := s.hdr[:7]
		if err := s.read(h); err != nil {
			return err
		}
		l, err := cutTextLen(h[3:], "desktop clipboard")
		if err != nil {
			return err
		}
		return s.copy(l, io.Discard)
	}
	return protocolErrorf("unknown server message type %d", t)
}

// rect passes one rectangle of a FramebufferUpdate; last reports a
// LastRect, which ends the update.
func (s *serverFilter) rect() (last bool, err error) {
	h := s.hdr[:12]
	if err := s.read(h); err != nil {
		return false, err
	}
	if err := s.forward(h); err != nil {
		return false, err
	}
	w, ht := int64(binary.BigEndian.Uint16(h[4:])), int64(binary.BigEndian.Uint16(h[6:]))
	switch enc := int32(binary.BigEndian.Uint32(h[8:])); enc {
	case encRaw:
		return false, s.pass(w * ht * 4)
	case encCopyRect:
		return false, s.pass(4)
	case encTight:
		return false, s.tight(w, ht)
	case encCursor:
		return false, s.pass(w*ht*4 + (w+7)/8*ht)
	case encExtendedDesktopSize:
		n := s.hdr[:4]
		if err := s.read(n); err != nil {
			return false, err
		}
		if err := s.forward(n); err != nil {
			return false, err
		}
		return false, s.pass(16 * int64(n[0]))
	case encDesktopSize:
		return false, nil
	case encLastRect:
		return true, nil
	default:
		return false, protocolErrorf("rectangle encoding %d was not asked for", enc)
	}
}

// tpixel is the size of a Tight pixel in the one pixel format a view-mode
// viewer may use (viewPixelFormat): 32 bits at depth 24 are sent as 3
// bytes.
const tpixel = 3

// Tight's compression control (the high nibble of its first byte).
const (
	tightFill        = 0x8
	tightJPEG        = 0x9
	tightExplicit    = 0x4 // basic compression with a filter id
	tightFilterCopy  = 0
	tightFilterPal   = 1
	tightFilterGrad  = 2
	tightMinCompress = 12 // shorter data is sent as is, without a length
)

// tight passes one Tight-encoded rectangle of w×h pixels.
func (s *serverFilter) tight(w, h int64) error {
	ctl, err := s.byte()
	if err != nil {
		return err
	}
	if err := s.forward([]byte{ctl}); err != nil {
		return err
	}
	switch op := ctl >> 4; {
	case op == tightFill:
		return s.pass(tpixel)
	case op == tightJPEG:
		n, err := s.compactLen()
		if err != nil {
			return err
		}
		return s.pass(n)
	case op > tightJPEG:
		return protocolErrorf("tight compression %#x was not asked for", ctl)
	}
	size := w * h * tpixel
	if ctl>>4&tightExplicit != 0 {
		f, err := s.byte()
		if err != nil {
			return err
		}
		if err := s.forward([]byte{f}); err != nil {
			return err
		}
		switch f {
		case tightFilterCopy, tightFilterGrad:
		case tightFilterPal:
			n, err := s.byte()
			if err != nil {
				return err
			}
			if err := s.forward([]byte{n}); err != nil {
				return err
			}
			colours := int64(n) + 1
			if err := s.pass(colours * tpixel); err != nil {
				return err
			}
			size = w * h // a byte an index
			if colours <= 2 {
				size = (w + 7) / 8 * h // a bit an index
			}
		default:
			return protocolErrorf("tight filter %d unknown", f)
		}
	}
	if size < tightMinCompress {
		return s.pass(size)
	}
	n, err := s.compactLen()
	if err != nil {
		return err
	}
	return s.pass(n)
}

// compactLen passes Tight's 1 to 3 byte length and returns it.
func (s *serverFilter) compactLen() (int64, error) {
	var n int64
	for i := range 3 {
		b, err := s.byte()
		if err != nil {
			return 0, err
		}
		if err := s.forward([]byte{b}); err != nil {
			return 0, err
		}
		if i == 2 {
			return n | int64(b)<<14, nil
		}
		n |= int64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			break
		}
	}
	return n, nil
}

func (s *serverFilter) byte() (byte, error) {
	b, err := s.r.ReadByte()
	if err == io.EOF {
		// Only a stream ending between messages ends cleanly.
		err = io.ErrUnexpectedEOF
	}
	return b, err
}

func (s *serverFilter) read(b []byte) error {
	_, err := io.ReadFull(s.r, b)
	return err
}

func (s *serverFilter) forward(b []byte) error {
	_, err := s.w.Write(b)
	return err
}

// pass copies the next n bytes of the server to the viewer.
func (s *serverFilter) pass(n int64) error { return s.copy(n, s.w) }

func (s *serverFilter) copy(n int64, dst io.Writer) error {
	if n == 0 {
		return nil
	}
	m, err := io.CopyN(dst, s.r, n)
	if err == io.EOF && m < n {
		return io.ErrUnexpectedEOF
	}
	return err
}
