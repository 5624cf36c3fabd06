package view_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"atelier/desktop"
	"atelier/internal/view"
)

// res is an unusual size, so ServerInit's size is known to come from it.
var res = desktop.Resolution{Width: 1024, Height: 768}

// bg is the colour desktoptest.StartSway paints the background with.
var bg = pixel{0x20, 0x20, 0x20, 0}

func netConn(t testing.TB, ws *websocket.Conn) *rfbClient {
	t.Helper()
	return newRFB(t, websocket.NetConn(t.Context(), ws, websocket.MessageBinary))
}

func TestProxyReachesServerInit(t *testing.T) {
	d := startDesktop(t, res)
	f := newFleet(t, dialer{"s-1": d.VNCSock})
	for _, mode := range []view.Mode{view.ModeView, view.ModeControl} {
		ws := f.dialView(t, "s-1", mode)
		c := netConn(t, ws)
		if c.Width != res.Width || c.Height != res.Height {
			t.Errorf("%s: ServerInit %dx%d, want %v", mode, c.Width, c.Height, res)
		}
		fb := c.screen(t)
		if got := corner(c, fb); got != bg {
			t.Errorf("%s: pixel near the bottom right = %v, want the background %v", mode, got, bg)
		}
		ws.Close(websocket.StatusNormalClosure, "")
	}
	checkNoLeaks(t)
}

func TestProxyTenViewers(t *testing.T) {
	d := startDesktop(t, res)
	f := newFleet(t, dialer{"s-1": d.VNCSock})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		mode := view.ModeView
		if i%2 == 0 {
			mode = view.ModeControl
		}
		ws := f.dialView(t, "s-1", mode)
		wg.Go(func() {
			defer ws.Close(websocket.StatusNormalClosure, "")
			c := &rfbClient{rw: websocket.NetConn(t.Context(), ws, websocket.MessageBinary)}
			c.r = newReader(c.rw)
			if err := c.handshake(); err != nil {
				errs <- err
				return
			}
			fb := make([]pixel, c.Width*c.Height)
			for range 3 {
				if err := c.request(false); err != nil {
					errs <- err
					return
				}
				if _, err := c.frame(fb); err != nil {
					errs <- err
					return
				}
			}
			if got := corner(c, fb); got != bg {
				errs <- errors.New("corner pixel " + got.String())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkNoLeaks(t)
}

// A viewer that vanishes in the middle of a 3 MB frame leaves nothing
// behind, and the desktop keeps serving others.
func TestProxyViewerGoneMidFrame(t *testing.T) {
	d := startDesktop(t, res)
	f := newFleet(t, dialer{"s-1": d.VNCSock})
	for range 3 {
		ws := f.dialView(t, "s-1", view.ModeView)
		nc := websocket.NetConn(t.Context(), ws, websocket.MessageBinary)
		c := newRFB(t, nc)
		c.request(false)
		buf := make([]byte, 4096)
		if _, err := c.r.Read(buf); err != nil {
			t.Fatal(err)
		}
		ws.CloseNow() // no close frame: the TCP connection just ends
	}
	checkNoLeaks(t)
	ws := f.dialView(t, "s-1", view.ModeControl)
	c := netConn(t, ws)
	if got := corner(c, c.screen(t)); got != bg {
		t.Errorf("after the aborted viewers, corner pixel %v, want %v", got, bg)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	checkNoLeaks(t)
}

// When the desktop's VNC server goes away the viewer gets a close frame,
// and once it is back a new WebSocket views it again.
func TestProxyDesktopRestart(t *testing.T) {
	d := startDesktop(t, res)
	f := newFleet(t, dialer{"s-1": d.VNCSock})
	ws := f.dialView(t, "s-1", view.ModeControl)
	c := netConn(t, ws)
	c.screen(t)

	d.StopVNC()
	_, err := c.frame(nil)
	var ce websocket.CloseError
	if !errors.As(err, &ce) && !errors.Is(err, os.ErrClosed) {
		// NetConn turns a normal close into io.EOF.
		if err == nil || !strings.Contains(err.Error(), "EOF") {
			t.Fatalf("read after the desktop went away = %v, want a close", err)
		}
	}
	checkNoLeaks(t)

	// While it is down, the WebSocket opens and closes at once, asking to
	// try again later.
	down, _, err := websocket.Dial(t.Context(), f.vncURL("s-1", f.token(t, "s-1", view.ModeView)), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = down.Read(t.Context())
	if got := websocket.CloseStatus(err); got != websocket.StatusTryAgainLater {
		t.Errorf("while the desktop is down: close status %v (%v), want %v", got, err, websocket.StatusTryAgainLater)
	}
	down.CloseNow()

	d.StartVNC(t)
	ws = f.dialView(t, "s-1", view.ModeControl)
	c = netConn(t, ws)
	// A loaded machine may show a frame or two before sway repaints the
	// new server's output in full.
	for deadline := time.Now().Add(10 * time.Second); ; {
		got := corner(c, c.screen(t))
		if got == bg {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart, corner pixel %v, want %v", got, bg)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	checkNoLeaks(t)
}

// The desktop's close reaches the viewer as a normal close frame.
func TestProxyDesktopCloseFrame(t *testing.T) {
	d := startDesktop(t, res)
	f := newFleet(t, dialer{"s-1": d.VNCSock})
	ws := f.dialView(t, "s-1", view.ModeView)
	// Read raw messages (not NetConn) to see the close status.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, _, err := ws.Read(ctx); err != nil { // the version banner
		t.Fatal(err)
	}
	d.StopVNC()
	_, _, err := ws.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusNormalClosure {
		t.Fatalf("close status %v (%v), want %v", got, err, websocket.StatusNormalClosure)
	}
	checkNoLeaks(t)
}

// A client speaking something else than RFB is cut off with a policy
// violation naming the problem.
func TestProxyRefusesNonRFB(t *testing.T) {
	d := startDesktop(t, res)
	f := newFleet(t, dialer{"s-1": d.VNCSock})
	ws := f.dialView(t, "s-1", view.ModeControl)
	ctx := t.Context()
	ws.Read(ctx) // banner
	ws.Write(ctx, websocket.MessageBinary, []byte("RFB 003.008\n\x01\x01\x07\x00\x00\x00"))
	for {
		_, _, err := ws.Read(ctx)
		if err == nil {
			continue // security types, result, ServerInit
		}
		if got := websocket.CloseStatus(err); got != websocket.StatusPolicyViolation || !strings.Contains(err.Error(), "unknown client message type 7") {
			t.Fatalf("close = %v, want a policy violation naming message type 7", err)
		}
		break
	}
	checkNoLeaks(t)
}

// Token problems are 403 before anything is dialled.
func TestProxyRefusesBadTokens(t *testing.T) {
	dials := &countingDialer{}
	tk, err := view.NewTokens(t.TempDir() + "/k")
	if err != nil {
		t.Fatal(err)
	}
	h, err := view.NewHandler(view.Options{Dialer: dials, Tokens: tk})
	if err != nil {
		t.Fatal(err)
	}
	mux := throughAPI(h)
	good := mint(t, tk, "s-1", view.ModeControl, time.Minute)
	for _, tc := range []struct {
		name, path string
		header     http.Header
	}{
		{"no token", "/sessions/s-1/vnc", nil},
		{"garbage", "/sessions/s-1/vnc?token=xyz", nil},
		{"other session", "/sessions/s-2/vnc?token=" + good, nil},
		{"token in a header, not the query", "/sessions/s-1/vnc", http.Header{"Authorization": {"Bearer " + good}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(mux, http.MethodGet, tc.path, tc.header, wsHeaders())
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `"code":"token_`) {
				t.Errorf("status %d body %s, want 403 with a token_ code", rec.Code, rec.Body)
			}
		})
	}
	if dials.n.Load() != 0 {
		t.Errorf("%d dials for refused tokens, want none", dials.n.Load())
	}
}

// Browsers on other origins cannot open the WebSocket, even with a token.
func TestProxyOrigin(t *testing.T) {
	d := startDesktop(t, res)
	f := newFleet(t, dialer{"s-1": d.VNCSock})
	u := f.vncURL("s-1", f.token(t, "s-1", view.ModeView))
	_, resp, err := websocket.Dial(t.Context(), u, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://elsewhere.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin dial: %v %v, want 403", err, resp)
	}
	ws, _, err := websocket.Dial(t.Context(), u, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {f.URL}}})
	if err != nil {
		t.Fatalf("same-origin dial: %v", err)
	}
	ws.CloseNow()
	checkNoLeaks(t)
}

// Handler.Close ends open views.
func TestHandlerCloseEndsViews(t *testing.T) {
	d := startDesktop(t, res)
	f := newFleet(t, dialer{"s-1": d.VNCSock})
	ws := f.dialView(t, "s-1", view.ModeView)
	c := netConn(t, ws)
	f.view.Close()
	if _, err := c.frame(nil); err == nil {
		t.Fatal("view still open after Close")
	}
	ws.CloseNow()
	checkNoLeaks(t)
}
