package fleettest_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"atelier/internal/apitype"
	"atelier/internal/client"
	"atelier/internal/fleettest"
)

// TestResolution: a running desktop's size changes through the API; the
// next screenshots have it, actions are checked against it, and it stays
// across a stop and start.
func TestResolution(t *testing.T) {
	fleettest.RequireDesktops(t)
	f := fleettest.New(t, fleettest.Options{Token: token})
	ctx := t.Context()
	c := f.Client
	s, err := c.CreateSession(ctx, apitype.CreateSession{Resolution: "1280x720"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	waitShot := func(w, h int) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			im, err := c.Screenshot(ctx, s.ID, client.ScreenshotOptions{})
			if err == nil && im.Width == w && im.Height == h {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("screenshot %dx%d (%v), want %dx%d", im.Width, im.Height, err, w, h)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if _, err := c.SetResolution(ctx, s.ID, "640x"); !isCode(err, apitype.CodeBadResolution) {
		t.Errorf("a malformed resolution: %v, want bad_resolution", err)
	}
	open := openViewer(t, f, s.ID)
	if open.w != 1280 || open.h != 720 {
		t.Fatalf("the live view's framebuffer is %dx%d, want 1280x720", open.w, open.h)
	}
	got, err := c.SetResolution(ctx, s.ID, "1024x768")
	if err != nil || got.Resolution != "1024x768" {
		t.Fatalf("set resolution: %+v %v", got, err)
	}
	waitShot(1024, 768)
	// The live view follows: an open one is told (DesktopSize), or closed
	// when wayvnc restarts (0.5 ends on a mode change: its supervisor
	// brings it back), and a view opened then has the new size.
	if err := open.waitSize(1024, 768); err != nil {
		t.Logf("the open live view ended on the resize: %v", err)
	}
	if _, err := c.Session(ctx, s.ID, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	waitVNC(t, f, s.ID)
	if v := openViewer(t, f, s.ID); v.w != 1024 || v.h != 768 {
		t.Errorf("a new live view's framebuffer is %dx%d, want 1024x768", v.w, v.h)
	}
	// Actions are checked against the new size.
	if _, err := c.Act(ctx, s.ID, map[string]any{"action": "mouse_move", "coordinate": []int{1100, 700}}); !isCode(err, apitype.CodeBadCoordinate) {
		t.Errorf("a move past the new width: %v, want bad_coordinate", err)
	}
	act(t, c, s.ID, map[string]any{"action": "mouse_move", "coordinate": []int{1000, 760}})
	// Kept across a stop and a start.
	if _, err := c.StopSession(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if s, err = c.StartSession(ctx, s.ID, 60*time.Second); err != nil || s.Resolution != "1024x768" {
		t.Fatalf("start: %+v %v", s, err)
	}
	waitShot(1024, 768)
}

// waitVNC waits until a new live view of id gets the desktop's RFB banner:
// a wayvnc restarted by its supervisor answers again within a second, but
// the session can read ready before the agent has seen it go.
func waitVNC(t *testing.T, f *fleettest.Fleet, id string) {
	t.Helper()
	ctx := t.Context()
	u := "ws" + strings.TrimPrefix(f.URL, "http") + "/sessions/" + id + "/vnc?token="
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		link, err := f.Client.EmbedLink(ctx, id, "view", 60)
		if err != nil {
			t.Fatal(err)
		}
		ws, _, err := websocket.Dial(ctx, u+url.QueryEscape(link.Token), &websocket.DialOptions{Subprotocols: []string{"binary"}})
		if err != nil {
			last = err.Error()
			continue
		}
		_, banner, err := ws.Read(ctx)
		ws.CloseNow()
		if err == nil && strings.HasPrefix(string(banner), "RFB 003.") {
			return
		}
		last = fmt.Sprintf("first message %q (%v)", banner, err)
	}
	t.Fatalf("the live view never answered again after the resize: %s", last)
}

// viewer is a live view's RFB client, enough to see the framebuffer's size.
type viewer struct {
	rw   io.ReadWriter
	r    *bufio.Reader
	w, h int
}

// openViewer opens a view-mode live view through the fleet and reads its
// ServerInit; it asks for raw pixels and desktop-size changes.
func openViewer(t *testing.T, f *fleettest.Fleet, id string) *viewer {
	t.Helper()
	ctx := t.Context()
	link, err := f.Client.EmbedLink(ctx, id, "view", 60)
	if err != nil {
		t.Fatal(err)
	}
	ws, _ := openView(t, ctx, f.URL, id, link.Token)
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	v := &viewer{rw: nc, r: bufio.NewReader(nc)}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("rfb handshake: %v", err)
		}
	}
	_, err = nc.Write([]byte("RFB 003.008\n"))
	must(err)
	n, err := v.r.ReadByte()
	must(err)
	_, err = io.ReadFull(v.r, make([]byte, n))
	must(err)
	nc.Write([]byte{1})                        // security None
	_, err = io.ReadFull(v.r, make([]byte, 4)) // its result
	must(err)
	nc.Write([]byte{1}) // shared
	init := make([]byte, 24)
	_, err = io.ReadFull(v.r, init)
	must(err)
	v.w, v.h = int(binary.BigEndian.Uint16(init[0:])), int(binary.BigEndian.Uint16(init[2:]))
	_, err = io.ReadFull(v.r, make([]byte, binary.BigEndian.Uint32(init[20:])))
	must(err)
	pf := []byte{0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0}
	enc := []byte{2, 0, 0, 2, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x21} // raw, DesktopSize (-223)
	_, err = nc.Write(append(pf, enc...))
	must(err)
	return v
}

// waitSize asks for updates until the framebuffer is w×h (a DesktopSize
// rectangle announces a change).
func (v *viewer) waitSize(w, h int) error {
	deadline := time.Now().Add(20 * time.Second)
	for v.w != w || v.h != h {
		if time.Now().After(deadline) {
			return fmt.Errorf("the live view's framebuffer is %dx%d, want %dx%d", v.w, v.h, w, h)
		}
		req := []byte{3, 1, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint16(req[6:], uint16(v.w))
		binary.BigEndian.PutUint16(req[8:], uint16(v.h))
		if _, err := v.rw.Write(req); err != nil {
			return err
		}
		if err := v.update(); err != nil {
			return err
		}
	}
	return nil
}

// update reads server messages up to one framebuffer update, and applies
// a size change it announces.
func (v *viewer) update() error {
	for {
		typ, err := v.r.ReadByte()
		if err != nil {
			return err
		}
		switch typ {
		case 0: // FramebufferUpdate
			hdr := make([]byte, 3)
			if _, err := io.ReadFull(v.r, hdr); err != nil {
				return err
			}
			for range binary.BigEndian.Uint16(hdr[1:]) {
				rh := make([]byte, 12)
				if _, err := io.ReadFull(v.r, rh); err != nil {
					return err
				}
				rw, rhh := int(binary.BigEndian.Uint16(rh[4:])), int(binary.BigEndian.Uint16(rh[6:]))
				switch enc := int32(binary.BigEndian.Uint32(rh[8:])); enc {
				case 0:
					if _, err := io.CopyN(io.Discard, v.r, int64(rw*rhh*4)); err != nil {
						return err
					}
				case -223:
					v.w, v.h = rw, rhh
				default:
					return fmt.Errorf("encoding %d not asked for", enc)
				}
			}
			return nil
		case 2: // Bell
		case 3: // ServerCutText
			h := make([]byte, 7)
			if _, err := io.ReadFull(v.r, h); err != nil {
				return err
			}
			if _, err := io.CopyN(io.Discard, v.r, int64(binary.BigEndian.Uint32(h[3:]))); err != nil {
				return err
			}
		default:
			return fmt.Errorf("server message %d", typ)
		}
	}
}
