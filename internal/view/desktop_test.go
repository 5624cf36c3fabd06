package view_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"atelier/desktop"
	"atelier/internal/desktoptest"
	"atelier/internal/view"
)

// testDesktop is a bare headless sway with a wayvnc serving it on a unix
// socket, as a desktop's run dir has it.
type testDesktop struct {
	*desktoptest.Sway
	VNCSock string

	mu     sync.Mutex
	wayvnc *exec.Cmd
	exited chan struct{}
}

func startDesktop(t testing.TB, res desktop.Resolution) *testDesktop {
	t.Helper()
	if _, err := exec.LookPath("wayvnc"); err != nil {
		t.Skip("SKIP: wayvnc is not installed (run desktop/install-deps.sh); live view tests cannot run")
	}
	d := &testDesktop{Sway: desktoptest.StartSway(t, res)}
	d.VNCSock = filepath.Join(d.Dir, desktop.VNCSocket)
	d.StartVNC(t)
	d.waitBackground(t)
	t.Cleanup(func() {
		d.StopVNC()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(d.Dir, "wayvnc.log"))
			t.Logf("wayvnc log:\n%s", b)
		}
	})
	return d
}

// StartVNC starts wayvnc (as the desktop user, as the supervisor does) and
// waits until it greets on VNCSock.
func (d *testDesktop) StartVNC(t testing.TB) {
	t.Helper()
	u, err := user.Lookup(desktoptest.DesktopUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	os.Remove(d.VNCSock)
	logf, err := os.Create(filepath.Join(d.Dir, "wayvnc.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("wayvnc", "--render-cursor", "-u", d.VNCSock)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + d.Dir, "XDG_RUNTIME_DIR=" + d.Dir,
		"WAYLAND_DISPLAY=" + filepath.Base(d.WaylandSocket)}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start wayvnc: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	d.mu.Lock()
	d.wayvnc, d.exited = cmd, exited
	d.mu.Unlock()

	// Bounded polling: wayvnc announces nothing when it listens.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", d.VNCSock); err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			banner := make([]byte, 12)
			_, err = io.ReadFull(c, banner)
			c.Close()
			if err == nil && string(banner) == "RFB 003.008\n" {
				return
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(d.Dir, "wayvnc.log"))
			t.Fatalf("wayvnc exited at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("wayvnc did not greet on its socket in 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitBackground waits until the background is painted (sway paints it
// a moment after its output appears).
func (d *testDesktop) waitBackground(t testing.TB) {
	t.Helper()
	c, err := net.Dial("unix", d.VNCSock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rc := newRFB(t, c)
	deadline := time.Now().Add(15 * time.Second)
	for {
		fb := rc.screen(t)
		if corner(rc, fb) == bg {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("background still %v after 15s, want %v", corner(rc, fb), bg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// corner is a pixel near the bottom right corner, far from the pointer
// (drawn at the top left).
func corner(c *rfbClient, fb []pixel) pixel { return fb[(c.Height-5)*c.Width+c.Width-5] }

// StopVNC kills wayvnc and waits for it to exit: the desktop side of every
// view ends.
func (d *testDesktop) StopVNC() {
	d.mu.Lock()
	cmd, exited := d.wayvnc, d.exited
	d.wayvnc = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

func dialUnix(t testing.TB, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialer reaches the test desktops by session id, as sessions.Manager does
// through a runtime.
type dialer map[string]string

func (d dialer) DialVNC(ctx context.Context, id string) (net.Conn, error) {
	sock, ok := d[id]
	if !ok {
		return nil, fmt.Errorf("no session %s", id)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, "unix", sock)
}

// fleet is an HTTP server with the view's routes for the given sessions.
type fleet struct {
	*httptest.Server
	view   *view.Handler
	tokens *view.Tokens
}

func newFleet(t testing.TB, sessions dialer) *fleet {
	t.Helper()
	return newFleetWith(t, view.Options{Dialer: sessions})
}

// newFleetWith is newFleet with more options (its own Tokens).
func newFleetWith(t testing.TB, opts view.Options) *fleet {
	t.Helper()
	tk, err := view.NewTokens(filepath.Join(t.TempDir(), "embed.key"))
	if err != nil {
		t.Fatal(err)
	}
	opts.Tokens = tk
	h, err := view.NewHandler(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(throughAPI(h))
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return &fleet{Server: srv, view: h, tokens: tk}
}

// token mints a token valid for a minute.
func (f *fleet) token(t testing.TB, session string, mode view.Mode) string {
	t.Helper()
	return mint(t, f.tokens, session, mode, time.Minute)
}

func (f *fleet) vncURL(session, token string) string {
	return strings.Replace(f.URL, "http:", "ws:", 1) + "/sessions/" + session + "/vnc?token=" + token
}

// dialView opens the WebSocket of session's view, as noVNC does.
func (f *fleet) dialView(t testing.TB, session string, mode view.Mode) *websocket.Conn {
	t.Helper()
	return f.dialViewer(t, session, mode, "")
}

// dialViewer is dialView for the viewer with id viewer ("": none).
func (f *fleet) dialViewer(t testing.TB, session string, mode view.Mode, viewer string) *websocket.Conn {
	t.Helper()
	u := f.vncURL(session, f.token(t, session, mode))
	if viewer != "" {
		u += "&viewer=" + viewer
	}
	ws, _, err := websocket.Dial(t.Context(), u, &websocket.DialOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		t.Fatalf("dial view: %v", err)
	}
	if ws.Subprotocol() != "binary" {
		t.Errorf("subprotocol %q, want binary", ws.Subprotocol())
	}
	return ws
}

// rfbClient is a minimal RFB 3.8 client: raw encoding, 32-bit pixels.
type rfbClient struct {
	rw            io.ReadWriter
	r             *bufio.Reader
	Width, Height int
	Name          string
	// CutTexts holds the clipboards the server sent (ServerCutText).
	CutTexts []string
}

// pixel is one 32-bit pixel as the client asks for them: B, G, R, unused.
type pixel [4]byte

func (p pixel) String() string { return fmt.Sprintf("#%02x%02x%02x", p[2], p[1], p[0]) }

func newRFB(t testing.TB, rw io.ReadWriter) *rfbClient {
	t.Helper()
	c := &rfbClient{rw: rw, r: bufio.NewReaderSize(rw, 64<<10)}
	if err := c.handshake(); err != nil {
		t.Fatalf("rfb handshake: %v", err)
	}
	return c
}

func (c *rfbClient) handshake() error {
	b := make([]byte, 12)
	if _, err := io.ReadFull(c.r, b); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	if _, err := c.rw.Write([]byte("RFB 003.008\n")); err != nil {
		return err
	}
	n, err := c.r.ReadByte()
	if err != nil || n == 0 {
		return fmt.Errorf("security types: %d %v", n, err)
	}
	types := make([]byte, n)
	io.ReadFull(c.r, types)
	if !strings.Contains(string(types), "\x01") {
		return fmt.Errorf("no security type None in %v", types)
	}
	c.rw.Write([]byte{1})
	res := make([]byte, 4)
	if _, err := io.ReadFull(c.r, res); err != nil || binary.BigEndian.Uint32(res) != 0 {
		return fmt.Errorf("security result %v %v", res, err)
	}
	c.rw.Write([]byte{1}) // shared
	init := make([]byte, 24)
	if _, err := io.ReadFull(c.r, init); err != nil {
		return fmt.Errorf("server init: %w", err)
	}
	c.Width, c.Height = int(binary.BigEndian.Uint16(init[0:])), int(binary.BigEndian.Uint16(init[2:]))
	name := make([]byte, binary.BigEndian.Uint32(init[20:]))
	if _, err := io.ReadFull(c.r, name); err != nil {
		return err
	}
	c.Name = string(name)
	// 32 bpp, depth 24, little endian, true colour, 255 per channel,
	// red at bit 16, green 8, blue 0: bytes B, G, R, unused.
	pf := []byte{0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0}
	enc := []byte{2, 0, 0, 1, 0, 0, 0, 0} // raw only
	_, err = c.rw.Write(append(pf, enc...))
	return err
}

// request asks for an update of the whole screen.
func (c *rfbClient) request(incremental bool) error {
	m := []byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if incremental {
		m[1] = 1
	}
	binary.BigEndian.PutUint16(m[6:], uint16(c.Width))
	binary.BigEndian.PutUint16(m[8:], uint16(c.Height))
	_, err := c.rw.Write(m)
	return err
}

// frame reads server messages until a framebuffer update, which it
// applies to fb (Width*Height pixels); it returns the bytes read.
func (c *rfbClient) frame(fb []pixel) (int, error) {
	read := 0
	for {
		t, err := c.r.ReadByte()
		if err != nil {
			return read, err
		}
		read++
		switch t {
		case 0: // FramebufferUpdate
			h := make([]byte, 3)
			if _, err := io.ReadFull(c.r, h); err != nil {
				return read, err
			}
			read += 3
			for range binary.BigEndian.Uint16(h[1:]) {
				rh := make([]byte, 12)
				if _, err := io.ReadFull(c.r, rh); err != nil {
					return read, err
				}
				read += 12
				x, y := int(binary.BigEndian.Uint16(rh[0:])), int(binary.BigEndian.Uint16(rh[2:]))
				w, hh := int(binary.BigEndian.Uint16(rh[4:])), int(binary.BigEndian.Uint16(rh[6:]))
				if enc := int32(binary.BigEndian.Uint32(rh[8:])); enc != 0 {
					return read, fmt.Errorf("rect encoding %d, asked for raw only", enc)
				}
				row := make([]byte, w*4)
				for j := range hh {
					if _, err := io.ReadFull(c.r, row); err != nil {
						return read, err
					}
					read += len(row)
					if fb != nil {
						for i := range w {
							copy(fb[(y+j)*c.Width+x+i][:], row[i*4:])
						}
					}
				}
			}
			return read, nil
		case 2: // Bell
		case 3: // ServerCutText
			h := make([]byte, 7)
			if _, err := io.ReadFull(c.r, h); err != nil {
				return read, err
			}
			var text strings.Builder
			n, err := io.CopyN(&text, c.r, int64(binary.BigEndian.Uint32(h[3:])))
			read += 7 + int(n)
			if err != nil {
				return read, err
			}
			c.CutTexts = append(c.CutTexts, text.String())
		default:
			return read, fmt.Errorf("server message %d not handled by the test client", t)
		}
	}
}

// screen reads one full frame.
func (c *rfbClient) screen(t testing.TB) []pixel {
	t.Helper()
	fb := make([]pixel, c.Width*c.Height)
	if err := c.request(false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.frame(fb); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return fb
}

func (c *rfbClient) key(keysym uint32, down bool) error {
	m := []byte{4, 0, 0, 0, 0, 0, 0, 0}
	if down {
		m[1] = 1
	}
	binary.BigEndian.PutUint32(m[4:], keysym)
	_, err := c.rw.Write(m)
	return err
}

// typeText presses and releases the key of each ASCII character in s
// ('\n' is Return).
func (c *rfbClient) typeText(s string) error {
	for _, r := range s {
		sym := uint32(r)
		if r == '\n' {
			sym = 0xff0d
		}
		if err := c.key(sym, true); err != nil {
			return err
		}
		if err := c.key(sym, false); err != nil {
			return err
		}
	}
	return nil
}

func (c *rfbClient) pointer(x, y int, buttons byte) error {
	m := []byte{5, buttons, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(m[2:], uint16(x))
	binary.BigEndian.PutUint16(m[4:], uint16(y))
	_, err := c.rw.Write(m)
	return err
}

func (c *rfbClient) click(x, y int) error {
	if err := c.pointer(x, y, 0); err != nil {
		return err
	}
	if err := c.pointer(x, y, 1); err != nil {
		return err
	}
	return c.pointer(x, y, 0)
}

// barrier returns once the server has handled everything sent before it:
// RFB servers answer requests in order, so the answer to a full update
// request comes after the input sent earlier was applied.
func (c *rfbClient) barrier(t testing.TB) {
	t.Helper()
	c.screen(t)
}

// viewGoroutines lists the goroutines running the view's code or a
// WebSocket's.
func viewGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "atelier/internal/view.") || strings.Contains(g, "github.com/coder/websocket.") {
			found = append(found, g)
		}
	}
	return found
}

// checkNoLeaks fails t unless, within 10 s, no goroutine of the view or of
// a WebSocket remains (call it once every viewer is closed).
func checkNoLeaks(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := viewGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left behind:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
