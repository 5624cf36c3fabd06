package view

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"

	"atelier/internal/control"
)

// Client messages, built by hand from RFC 6143.
var (
	greeting    = []byte("RFB 003.008\n\x01\x01") // version, security None, ClientInit(shared)
	exclusive   = []byte("RFB 003.008\n\x01\x00") // ClientInit asking for exclusive access
	pixelFormat = append([]byte{msgSetPixelFormat, 0, 0, 0}, viewPF...)
	encodings   = []byte{msgSetEncodings, 0, 0, 2, 0, 0, 0, 7, 0xff, 0xff, 0xfe, 0xcc}
	fbRequest   = []byte{msgFramebufferUpdateReq, 1, 0, 0, 0, 0, 5, 0, 2, 0xd0}
	keyDown     = []byte{msgKeyEvent, 1, 0, 0, 0, 0, 0, 0x61}
	pointer     = []byte{msgPointerEvent, 1, 0, 10, 0, 20}
	cutText     = append([]byte{msgClientCutText, 0, 0, 0, 0, 0, 0, 5}, "hello"...)
	extCutText  = []byte{msgClientCutText, 0, 0, 0, 0xff, 0xff, 0xff, 0xfc, 1, 2, 3, 4} // length -4
	contUpdates = []byte{msgEnableContinuousUpdates, 1, 0, 0, 0, 0, 5, 0, 2, 0xd0}
	fence       = []byte{msgFence, 0, 0, 0, 0x80, 0, 0, 0, 3, 'a', 'b', 'c'}
	xvp         = []byte{msgXVP, 0, 1, 2}
	desktopSize = append([]byte{msgSetDesktopSize, 0, 5, 0, 2, 0xd0, 1, 0}, make([]byte, 16)...)
	qemuKey     = []byte{msgQEMU, qemuExtendedKeyEvent, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 0x1e}
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func runFilter(in []byte, mode Mode) ([]byte, error) {
	var out bytes.Buffer
	err := newFilter(bytes.NewReader(in), &out, mode, nil).run()
	return out.Bytes(), err
}

func TestFilterModes(t *testing.T) {
	rest := cat(pixelFormat, encodings, fbRequest, contUpdates, fence)
	input := cat(keyDown, pointer, cutText, extCutText, xvp, desktopSize, qemuKey)
	mixed := cat(greeting, encodings, keyDown, fbRequest, pointer, cutText, fence, xvp, qemuKey, desktopSize, extCutText, pixelFormat, contUpdates)
	for _, tc := range []struct {
		name       string
		in         []byte
		view, ctrl []byte
	}{
		{"handshake only", greeting, greeting, greeting},
		{"exclusive access is made shared", exclusive, greeting, greeting},
		{"VNC authentication response", cat([]byte("RFB 003.007\n\x02"), bytes.Repeat([]byte{9}, 16), []byte{1}),
			cat([]byte("RFB 003.007\n\x02"), bytes.Repeat([]byte{9}, 16), []byte{1}),
			cat([]byte("RFB 003.007\n\x02"), bytes.Repeat([]byte{9}, 16), []byte{1})},
		{"non-input passes in both modes, but for unframed extensions in view", cat(greeting, rest),
			cat(greeting, pixelFormat, encodings, fbRequest), cat(greeting, rest)},
		{"input passes only in control", cat(greeting, input), greeting, cat(greeting, input)},
		{"mixed keeps order", mixed,
			cat(greeting, encodings, fbRequest, pixelFormat), mixed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, m := range []struct {
				mode Mode
				want []byte
			}{{ModeView, tc.view}, {ModeControl, tc.ctrl}} {
				got, err := runFilter(tc.in, m.mode)
				if err != io.EOF {
					t.Errorf("%s: run = %v, want io.EOF", m.mode, err)
				}
				if diff := cmp.Diff(m.want, got); diff != "" {
					t.Errorf("%s: output mismatch (-want +got):\n%s", m.mode, diff)
				}
			}
		})
	}
}

func TestFilterRefuses(t *testing.T) {
	bigCut := []byte{msgClientCutText, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(bigCut[4:], maxCutText+1)
	for _, tc := range []struct {
		name string
		in   []byte
		err  error
	}{
		{"RFB 3.3", []byte("RFB 003.003\n"), errProtocol},
		{"not RFB", []byte("GET / HTTP/1.1\r\n\r\n"), errProtocol},
		{"unknown security type", []byte("RFB 003.008\n\x10"), errProtocol},
		{"unknown message type", cat(greeting, []byte{7, 0, 0, 0}), errProtocol},
		{"unknown QEMU message", cat(greeting, []byte{msgQEMU, 1, 0, 0}), errProtocol},
		{"fence payload too long", cat(greeting, []byte{msgFence, 0, 0, 0, 0, 0, 0, 0, 65}), errProtocol},
		{"clipboard too long", cat(greeting, bigCut), errProtocol},
		{"truncated version", []byte("RFB 00"), io.ErrUnexpectedEOF},
		{"truncated pointer event", cat(greeting, pointer[:3]), io.ErrUnexpectedEOF},
		{"truncated encodings", cat(greeting, encodings[:9]), io.ErrUnexpectedEOF},
		{"truncated clipboard", cat(greeting, cutText[:10]), io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, mode := range []Mode{ModeView, ModeControl} {
				if _, err := runFilter(tc.in, mode); !errors.Is(err, tc.err) {
					t.Errorf("%s: run = %v, want %v", mode, err, tc.err)
				}
			}
		})
	}
}

// FuzzFilter holds the filter's contract on any client stream: it never
// panics; in control mode what it passes is the input (shared flag forced)
// up to where it stopped; and a view stream holds no input message, which
// shows as: filtering it again, in either mode, changes nothing.
func FuzzFilter(f *testing.F) {
	f.Add(cat(greeting, pixelFormat, encodings, fbRequest, keyDown, pointer, cutText, extCutText))
	f.Add(cat(exclusive, contUpdates, fence, xvp, desktopSize, qemuKey))
	f.Add(cat([]byte("RFB 003.007\n\x02"), bytes.Repeat([]byte{9}, 16), []byte{0}, keyDown))
	f.Fuzz(func(t *testing.T, in []byte) {
		ctrl, _ := runFilter(in, ModeControl)
		want := append([]byte(nil), in[:min(len(in), len(ctrl))]...)
		if shared := sharedFlagAt(in); shared < len(want) {
			want[shared] = 1
		}
		if !bytes.Equal(ctrl, want) {
			t.Fatalf("control output is not the input:\n in  %x\n out %x", in, ctrl)
		}
		v, _ := runFilter(in, ModeView)
		for _, mode := range []Mode{ModeView, ModeControl} {
			again, _ := runFilter(v, mode)
			if !bytes.Equal(again, v) {
				t.Fatalf("view output changes when filtered again in %s mode:\n in   %x\n view %x\n again %x", mode, in, v, again)
			}
		}
	})
}

// sharedFlagAt returns the offset of ClientInit's shared flag in a client
// stream (past the end if the security type is not known).
func sharedFlagAt(in []byte) int {
	if len(in) > 12 && in[12] == securityVNCAuth {
		return 12 + 1 + 16
	}
	return 12 + 1
}

// A control viewer's input passes only when the gate admits it; refused,
// it is dropped as in view mode. Each admitted message's done comes once
// its bytes have reached the desktop, and never for other messages.
func TestFilterGate(t *testing.T) {
	input := [][]byte{keyDown, pointer, cutText, extCutText, xvp, desktopSize, qemuKey}
	in := cat(greeting, encodings, keyDown, fbRequest, pointer, cutText, fence, extCutText, xvp, desktopSize, qemuKey, pixelFormat)
	for _, tc := range []struct {
		name  string
		admit func(i int) bool // the i-th input message asked about
		want  []byte
	}{
		{"all admitted", func(int) bool { return true }, in},
		{"all refused", func(int) bool { return false }, cat(greeting, encodings, fbRequest, fence, pixelFormat)},
		{"every other", func(i int) bool { return i%2 == 0 },
			cat(greeting, encodings, keyDown, fbRequest, cutText, fence, xvp, qemuKey, pixelFormat)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			asked, admitted, done := 0, 0, 0
			g := func() (func(), error) {
				i := asked
				asked++
				if !tc.admit(i) {
					return nil, errors.New("held by someone else")
				}
				admitted++
				// The message this admits must be at the desktop by done.
				msg := input[i]
				return func() {
					done++
					if !bytes.Contains(out.Bytes(), msg) {
						t.Errorf("done for input %d (%x) before it reached the desktop: %x", i, msg, out.Bytes())
					}
				}, nil
			}
			err := newFilter(bytes.NewReader(in), &out, ModeControl, g).run()
			if err != io.EOF {
				t.Errorf("run = %v, want io.EOF", err)
			}
			if diff := cmp.Diff(tc.want, out.Bytes()); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
			if asked != len(input) {
				t.Errorf("gate asked %d times, want once per input message (%d)", asked, len(input))
			}
			if done != admitted {
				t.Errorf("%d done calls for %d admitted messages", done, admitted)
			}
		})
	}
}

// A view viewer's filter never asks the gate: its input is dropped first.
func TestFilterGateViewMode(t *testing.T) {
	asked := 0
	g := func() (func(), error) { asked++; return func() {}, nil }
	var out bytes.Buffer
	newFilter(bytes.NewReader(cat(greeting, keyDown, pointer)), &out, ModeView, g).run()
	if asked != 0 || !bytes.Equal(out.Bytes(), greeting) {
		t.Errorf("view mode: gate asked %d times, output %x; want 0 and the greeting only", asked, out.Bytes())
	}
}

// failWriter fails every write after the first n bytes.
type failWriter struct{ n int }

func (w *failWriter) Write(b []byte) (int, error) {
	if len(b) > w.n {
		return 0, errors.New("desktop gone")
	}
	w.n -= len(b)
	return len(b), nil
}

// Input admitted but never delivered (the desktop went away) is still
// reported done: a takeover waiting for it must not wait forever.
func TestFilterGateDoneOnFailure(t *testing.T) {
	admitted, done := 0, 0
	g := func() (func(), error) { admitted++; return func() { done++ }, nil }
	err := newFilter(bytes.NewReader(cat(greeting, keyDown, pointer)), &failWriter{len(greeting)}, ModeControl, g).run()
	if err == nil || err == io.EOF {
		t.Errorf("run = %v, want the write error", err)
	}
	if admitted == 0 || done != admitted {
		t.Errorf("%d done calls for %d admitted messages", done, admitted)
	}
}

// BenchmarkFilterPointer runs pointer moves (the most frequent input)
// through a control viewer's filter: without a lease, and through a real
// control lease held by that viewer. One op is one message.
func BenchmarkFilterPointer(b *testing.B) {
	leases := control.New(control.Options{})
	defer leases.Close()
	if _, err := leases.TakeOver(b.Context(), "s-1", "viewer:control", "v-1"); err != nil {
		b.Fatal(err)
	}
	held := func() (func(), error) { return leases.Act("s-1", control.Claim{Viewer: "v-1"}) }
	for _, bc := range []struct {
		name string
		g    gate
	}{{"ungated", nil}, {"lease", held}} {
		b.Run(bc.name, func(b *testing.B) {
			const batch = 1024
			in := cat(greeting, bytes.Repeat(pointer, batch))
			for b.Loop() {
				// One stream per batch of moves: the handshake is amortised.
				newFilter(bytes.NewReader(in), io.Discard, ModeControl, bc.g).run()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/batch, "ns/move")
		})
	}
}

// Once the gate refuses, a viewer may still let go of the keys and buttons
// it pressed while admitted, and nothing else.
func TestFilterLetsGoOfWhatItHolds(t *testing.T) {
	keyUp := []byte{msgKeyEvent, 0, 0, 0, 0, 0, 0, 0x61}
	otherUp := []byte{msgKeyEvent, 0, 0, 0, 0, 0, 0, 0x62}
	qemuUp := []byte{msgQEMU, qemuExtendedKeyEvent, 0, 0, 0, 0, 0xff, 0xe1, 0, 0, 0, 0x2a}
	qemuShift := []byte{msgQEMU, qemuExtendedKeyEvent, 0, 1, 0, 0, 0xff, 0xe1, 0, 0, 0, 0x2a}
	press := []byte{msgPointerEvent, 1, 0, 10, 0, 20}
	drag := []byte{msgPointerEvent, 1, 0, 30, 0, 40}
	release := []byte{msgPointerEvent, 0, 0, 30, 0, 40}
	admitting := true
	g := func() (func(), error) {
		if !admitting {
			return nil, errors.New("held by someone else")
		}
		return func() {}, nil
	}
	// The first three are admitted; then control changes hands.
	held := cat(greeting, keyDown, qemuShift, press)
	later := cat(drag, otherUp, keyUp, keyUp, qemuUp, release, release, keyDown, press)
	var out bytes.Buffer
	f := newFilter(io.MultiReader(bytes.NewReader(held), readFunc(func() { admitting = false }), bytes.NewReader(later)), &out, ModeControl, g)
	if err := f.run(); err != io.EOF {
		t.Fatalf("run = %v, want io.EOF", err)
	}
	want := cat(held, keyUp, qemuUp, release)
	if diff := cmp.Diff(want, out.Bytes()); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

// readFunc is a reader of nothing that runs fn when first read: a point in
// a stream where the test changes the world.
type readFunc func()

func (fn readFunc) Read([]byte) (int, error) {
	fn()
	return 0, io.EOF
}
