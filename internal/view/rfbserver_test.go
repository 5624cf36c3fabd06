package view

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Server messages, built by hand from RFC 6143 and the Tight encoding's
// description in the RFB community specification.
var (
	// The view pixel format: 32 bpp, depth 24, little endian, true colour.
	viewPF     = []byte{32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0}
	serverInit = cat([]byte{5, 0, 2, 0xd0}, viewPF, []byte{0, 0, 0, 4}, []byte("desk"))
	// Version, one security type (None), SecurityResult OK, ServerInit.
	serverHello = cat([]byte("RFB 003.008\n\x01\x01"), []byte{0, 0, 0, 0}, serverInit)
	choiceNone  = handshakeChoice{minor: '8', security: securityNone}

	bell      = []byte{msgBell}
	colourMap = cat([]byte{msgSetColourMapEntries, 0, 0, 0, 0, 2}, make([]byte, 12))
	cutServer = cat([]byte{msgServerCutText, 0, 0, 0, 0, 0, 0, 6}, []byte("secret"))
	// Extended clipboard: length -5.
	extCutServer = cat([]byte{msgServerCutText, 0, 0, 0, 0xff, 0xff, 0xff, 0xfb}, []byte{0, 0, 0, 1, 'x'})
)

// rectHdr is a rectangle header at 0,0.
func rectHdr(w, h uint16, enc int32) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[4:], w)
	binary.BigEndian.PutUint16(b[6:], h)
	binary.BigEndian.PutUint32(b[8:], uint32(enc))
	return b
}

// update is a FramebufferUpdate announcing n rectangles.
func update(n uint16, rects ...[]byte) []byte {
	return cat(append([][]byte{{msgFramebufferUpdate, 0, byte(n >> 8), byte(n)}}, rects...)...)
}

// compact is Tight's compact length of n followed by n bytes.
func compact(n int) []byte {
	var l []byte
	switch {
	case n < 1<<7:
		l = []byte{byte(n)}
	case n < 1<<14:
		l = []byte{byte(n) | 0x80, byte(n >> 7)}
	default:
		l = []byte{byte(n) | 0x80, byte(n>>7) | 0x80, byte(n >> 14)}
	}
	return cat(l, bytes.Repeat([]byte{0xaa}, n))
}

// Rectangles of each encoding a view may ask for.
var (
	rawRect      = cat(rectHdr(3, 2, encRaw), bytes.Repeat([]byte{1}, 3*2*4))
	copyRect     = cat(rectHdr(10, 10, encCopyRect), []byte{0, 1, 0, 2})
	cursorRect   = cat(rectHdr(9, 2, encCursor), bytes.Repeat([]byte{2}, 9*2*4), []byte{0xff, 0x80, 0xff, 0x80})
	extSizeRect  = cat(rectHdr(1280, 720, encExtendedDesktopSize), []byte{2, 0, 0, 0}, make([]byte, 32))
	sizeRect     = rectHdr(800, 600, encDesktopSize)
	lastRect     = rectHdr(0, 0, encLastRect)
	tightFillR   = cat(rectHdr(64, 64, encTight), []byte{0x80, 1, 2, 3})
	tightJPEGR   = cat(rectHdr(64, 64, encTight), []byte{0x90}, compact(300))
	tightJPEGBig = cat(rectHdr(640, 480, encTight), []byte{0x90}, compact(20000))
	tightTiny    = cat(rectHdr(2, 1, encTight), []byte{0x00}, []byte{1, 2, 3, 4, 5, 6}) // 6 bytes: no length
	tightCopy    = cat(rectHdr(64, 64, encTight), []byte{0x41, tightFilterCopy}, compact(200))
	tightMono    = cat(rectHdr(16, 5, encTight), []byte{0x52, tightFilterPal, 1, 0, 0, 0, 9, 9, 9}, bytes.Repeat([]byte{0xf0}, 10)) // 2 colours: 2*5 bytes
	tightPal     = cat(rectHdr(64, 64, encTight), []byte{0x60, tightFilterPal, 4}, make([]byte, 5*3), compact(150))
	tightGrad    = cat(rectHdr(64, 64, encTight), []byte{0x4f, tightFilterGrad}, compact(1000))
)

func runServerFilter(in []byte, c handshakeChoice) ([]byte, error) {
	var out bytes.Buffer
	chosen := make(chan handshakeChoice, 1)
	chosen <- c
	err := newServerFilter(bytes.NewReader(in), &out, chosen).run()
	return out.Bytes(), err
}

func TestServerFilterDropsClipboard(t *testing.T) {
	updates := cat(
		update(4, rawRect, copyRect, cursorRect, extSizeRect),
		update(1, sizeRect),
		update(0xffff, tightFillR, tightJPEGR, tightTiny, lastRect), // ended by LastRect
		update(6, tightCopy, tightMono, tightPal, tightGrad, tightJPEGBig, rawRect),
		colourMap, bell,
	)
	in := cat(serverHello, cutServer, update(2, rawRect, tightFillR), extCutServer, updates, cutServer, bell, extCutServer)
	want := cat(serverHello, update(2, rawRect, tightFillR), updates, bell)
	got, err := runServerFilter(in, choiceNone)
	if err != io.EOF {
		t.Errorf("run = %v, want io.EOF", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

func TestServerFilterHandshakes(t *testing.T) {
	auth := cat([]byte("RFB 003.008\n\x02\x01\x02"), bytes.Repeat([]byte{7}, 16), []byte{0, 0, 0, 0}, serverInit)
	none37 := cat([]byte("RFB 003.008\n\x01\x01"), serverInit) // 3.7: no SecurityResult for None
	refused := cat([]byte("RFB 003.008\n\x00"), []byte{0, 0, 0, 3}, []byte("bad"))
	failed := cat([]byte("RFB 003.008\n\x01\x02"), bytes.Repeat([]byte{7}, 16), []byte{0, 0, 0, 1}, []byte{0, 0, 0, 2}, []byte("no"))
	for _, tc := range []struct {
		name   string
		in     []byte
		choice handshakeChoice
		want   []byte
		err    error
	}{
		{"none", cat(serverHello, cutServer, bell), choiceNone, cat(serverHello, bell), io.EOF},
		{"vnc auth", cat(auth, cutServer, bell), handshakeChoice{'8', securityVNCAuth}, cat(auth, bell), io.EOF},
		{"3.7 none", cat(none37, cutServer, bell), handshakeChoice{'7', securityNone}, cat(none37, bell), io.EOF},
		{"refused", refused, choiceNone, refused, errProtocol},
		{"security failed", failed, handshakeChoice{'8', securityVNCAuth}, failed, errProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := runServerFilter(tc.in, tc.choice)
			if !errors.Is(err, tc.err) {
				t.Errorf("run = %v, want %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServerFilterRefuses: what the filter cannot frame stops it, with
// nothing passed beyond the byte that could not be framed.
func TestServerFilterRefuses(t *testing.T) {
	pf16 := cat([]byte{5, 0, 2, 0xd0}, []byte{16, 16, 0, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0}, []byte{0, 0, 0, 0})
	bigCut := []byte{msgServerCutText, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff}
	for _, tc := range []struct {
		name string
		in   []byte
		want []byte
	}{
		{"unknown message", cat(serverHello, bell, []byte{150, 0, 0, 0}), cat(serverHello, bell)},
		{"server fence", cat(serverHello, []byte{248, 0, 0, 0, 0, 0, 0, 0, 0}), serverHello},
		{"16 bpp server", cat([]byte("RFB 003.008\n\x01\x01"), []byte{0, 0, 0, 0}, pf16), []byte("RFB 003.008\n\x01\x01\x00\x00\x00\x00")},
		{"ZRLE rectangle", cat(serverHello, update(1, rectHdr(4, 4, 16)), bell), cat(serverHello, update(1), rectHdr(4, 4, 16))},
		{"tight PNG", cat(serverHello, update(1, rectHdr(4, 4, encTight), []byte{0xa0}, compact(3))), cat(serverHello, update(1), rectHdr(4, 4, encTight), []byte{0xa0})},
		{"tight filter", cat(serverHello, update(1, rectHdr(4, 4, encTight), []byte{0x40, 3})), cat(serverHello, update(1), rectHdr(4, 4, encTight), []byte{0x40, 3})},
		{"huge clipboard", cat(serverHello, bigCut, []byte("x")), serverHello},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := runServerFilter(tc.in, choiceNone)
			if !errors.Is(err, errProtocol) {
				t.Errorf("run = %v, want a protocol error", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServerFilterViewerLeaves: a viewer gone before choosing a security
// type (its channel closed) ends the filter after the offer.
func TestServerFilterViewerLeaves(t *testing.T) {
	var out bytes.Buffer
	chosen := make(chan handshakeChoice)
	close(chosen)
	err := newServerFilter(bytes.NewReader(serverHello), &out, chosen).run()
	if err != io.EOF || out.String() != "RFB 003.008\n\x01\x01" {
		t.Errorf("run = %v, passed %q; want io.EOF after the security types", err, out.String())
	}
}

// FuzzServerFilter holds the server filter's contract on any desktop
// stream: it never panics; it passes only what it framed, so filtering
// its output again changes nothing; and that output never holds a
// ServerCutText, which a second filter, dropping them, would show.
func FuzzServerFilter(f *testing.F) {
	f.Add(cat(serverHello, cutServer, update(3, rawRect, tightPal, cursorRect), extCutServer, bell), byte('8'), byte(securityNone))
	f.Add(cat(serverHello, update(0xffff, tightMono, tightGrad, lastRect), colourMap), byte('8'), byte(securityNone))
	f.Add(cat([]byte("RFB 003.008\n\x02\x01\x02"), bytes.Repeat([]byte{7}, 16), []byte{0, 0, 0, 0}, serverInit, cutServer), byte('7'), byte(securityVNCAuth))
	f.Fuzz(func(t *testing.T, in []byte, minor, security byte) {
		c := handshakeChoice{minor: minor, security: security}
		out, _ := runServerFilter(in, c)
		if len(out) > len(in) {
			t.Fatalf("output longer than input:\n in  %x\n out %x", in, out)
		}
		again, _ := runServerFilter(out, c)
		if !bytes.Equal(again, out) {
			t.Fatalf("output changes when filtered again:\n in    %x\n out   %x\n again %x", in, out, again)
		}
	})
}

// TestViewEncodings: a view-mode SetEncodings keeps, in order and once
// each, only the encodings the server filter frames; control passes it.
func TestViewEncodings(t *testing.T) {
	encs := func(es ...int32) []byte {
		b := []byte{msgSetEncodings, 0, 0, byte(len(es))}
		for _, e := range es {
			b = binary.BigEndian.AppendUint32(b, uint32(e))
		}
		return b
	}
	// What noVNC 1.3 offers, then a repeat.
	novnc := encs(encCopyRect, encTight, -260, 5, 2, encRaw, -23, -247, encDesktopSize, encLastRect, -258, encExtendedDesktopSize,
		-309, -312, -313, -307, -1063131698, encCursor, 0x574d5664, encTight)
	view := encs(encCopyRect, encTight, encRaw, -23, -247, encDesktopSize, encLastRect, encExtendedDesktopSize, encCursor)
	for _, m := range []struct {
		mode Mode
		want []byte
	}{{ModeView, cat(greeting, view)}, {ModeControl, cat(greeting, novnc)}} {
		got, err := runFilter(cat(greeting, novnc), m.mode)
		if err != io.EOF {
			t.Errorf("%s: run = %v, want io.EOF", m.mode, err)
		}
		if diff := cmp.Diff(m.want, got); diff != "" {
			t.Errorf("%s: output mismatch (-want +got):\n%s", m.mode, diff)
		}
	}
}

// TestViewPixelFormat: a view-mode viewer may only ask for the pixel
// format the server filter frames.
func TestViewPixelFormat(t *testing.T) {
	good := cat([]byte{msgSetPixelFormat, 0, 0, 0}, viewPF)
	bpp16 := cat([]byte{msgSetPixelFormat, 0, 0, 0}, []byte{16, 16, 0, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0})
	colourMapped := cat([]byte{msgSetPixelFormat, 0, 0, 0}, []byte{32, 24, 0, 0, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0})
	if got, err := runFilter(cat(greeting, good), ModeView); err != io.EOF || !bytes.Equal(got, cat(greeting, good)) {
		t.Errorf("32 bpp: run = %v, output %x", err, got)
	}
	for _, pf := range [][]byte{bpp16, colourMapped} {
		got, err := runFilter(cat(greeting, pf, fbRequest), ModeView)
		if !errors.Is(err, errProtocol) || !bytes.Equal(got, greeting) {
			t.Errorf("pixel format %x: run = %v, output %x; want a protocol error after the greeting", pf, err, got)
		}
		if got, err := runFilter(cat(greeting, pf), ModeControl); err != io.EOF || !bytes.Equal(got, cat(greeting, pf)) {
			t.Errorf("control, pixel format %x: run = %v, output %x", pf, err, got)
		}
	}
}

// BenchmarkServerFilter streams full-screen raw updates (1280x720, 3.7 MB)
// through the server filter, against copyDown's plain copy (reads of
// downBufSize) of the same bytes.
func BenchmarkServerFilter(b *testing.B) {
	frame := update(1, cat(rectHdr(1280, 720, encRaw), make([]byte, 1280*720*4)))
	for _, via := range []string{"copy", "filter"} {
		b.Run(via, func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			buf := make([]byte, downBufSize)
			for b.Loop() {
				r := io.MultiReader(bytes.NewReader(serverHello), bytes.NewReader(frame))
				if via == "copy" {
					// Wrapped: no WriterTo/ReaderFrom shortcut.
					io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{r}, buf)
					continue
				}
				chosen := make(chan handshakeChoice, 1)
				chosen <- choiceNone
				if err := newServerFilter(r, io.Discard, chosen).run(); err != io.EOF {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestServerFilterFlushesEachStep: wherever the desktop waits for the
// viewer's answer (after its version, its security types, a VNC-auth
// challenge, ServerInit), the viewer already has everything before it; a
// step held in the filter's buffer would hang the view.
func TestServerFilterFlushesEachStep(t *testing.T) {
	steps := [][]byte{
		[]byte("RFB 003.008\n"),
		{1, securityVNCAuth},
		bytes.Repeat([]byte{7}, 16), // challenge
		cat([]byte{0, 0, 0, 0}, serverInit),
	}
	desk, deskW := io.Pipe()
	viewer, viewerW := io.Pipe()
	defer deskW.Close()
	defer viewer.Close()
	chosen := make(chan handshakeChoice, 1)
	chosen <- handshakeChoice{minor: '8', security: securityVNCAuth}
	go newServerFilter(desk, viewerW, chosen).run()
	for i, step := range steps {
		if _, err := deskW.Write(step); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(step))
		read := make(chan error, 1)
		go func() { _, err := io.ReadFull(viewer, got); read <- err }()
		select {
		case err := <-read:
			if err != nil || !bytes.Equal(got, step) {
				t.Fatalf("step %d: the viewer read %x, %v; want %x", i, got, err, step)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("step %d: the viewer still lacks it while the desktop waits for the viewer", i)
		}
	}
}
