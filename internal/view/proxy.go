package view

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"atelier/internal/control"
)

// downBufSize is the largest WebSocket message sent to a viewer: one read
// from the desktop. Bounded, so a slow viewer slows the desktop's sends
// instead of growing a buffer.
const downBufSize = 256 << 10

// serveVNC upgrades to a WebSocket and proxies it to the session's RFB
// server until either side ends, the token expires, or the session's
// tokens are revoked; the last two close the view with a close frame
// saying so (1008, policy violation).
func (h *Handler) serveVNC(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	claims, err := h.verify(r, id, ModeView)
	if err != nil {
		return h.deny(w, r, err)
	}
	viewer := r.URL.Query().Get("viewer")
	if viewer != "" && !validViewer(viewer) {
		return ErrBadViewer
	}
	if !h.track() {
		return ErrClosed
	}
	defer h.wg.Done()
	// Detached from the request: a hijacked connection's request context
	// is not a reliable stop; the Handler's own context is.
	ctx, cancel := context.WithCancelCause(h.ctx)
	defer cancel(nil)
	v := &openView{gen: claims.Generation, close: cancel}
	switch err := h.open(id, v); {
	case errors.Is(err, ErrTooManyViews):
		w.Header().Set("Retry-After", retryViews)
		return err
	case err != nil:
		return h.deny(w, r, ErrBadToken)
	}
	defer h.closed(id, v)
	// An expiring view stops counting before it is told (as a revoked one
	// does): a view opened as soon as it closes must not be refused.
	expiry := time.AfterFunc(time.Until(claims.Expires), func() { h.closed(id, v); cancel(errViewExpired) })
	defer expiry.Stop()

	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:   []string{"binary"},
		OriginPatterns: h.opts.OriginPatterns,
	})
	if err != nil {
		// Accept has written the response (bad origin, not an upgrade).
		h.log.DebugContext(r.Context(), "websocket refused", "session", id, "err", err)
		return nil
	}

	dialCtx, dialCancel := context.WithTimeout(ctx, h.opts.DialTimeout)
	desk, err := h.opts.Dialer.DialVNC(dialCtx, id)
	dialCancel()
	if err != nil {
		h.log.InfoContext(r.Context(), "view dial refused", "session", id, "err", err)
		ws.Close(websocket.StatusTryAgainLater, "desktop not reachable")
		return nil
	}
	// A view the fleet ends (token expired or revoked) is told why with a
	// close frame before the proxy stops: stopping it first would drop
	// the connection without one.
	pctx, pcancel := context.WithCancel(h.ctx)
	defer pcancel()
	stop := context.AfterFunc(ctx, func() {
		if endedBy(ctx) != "" {
			ws.Close(websocket.StatusPolicyViolation, context.Cause(ctx).Error())
		}
		pcancel()
	})
	defer stop()
	t0 := time.Now()
	h.log.DebugContext(r.Context(), "viewer connected", "session", id, "mode", claims.Mode)
	h.viewerEvent(ViewerEvent{Session: id, Mode: claims.Mode, Opened: true})
	err = proxy(pctx, ws, desk, claims.Mode, h.gate(id, claims.Mode, viewer))
	h.viewerEvent(ViewerEvent{Session: id, Mode: claims.Mode, Duration: time.Since(t0), Why: endedBy(ctx)})
	h.log.DebugContext(r.Context(), "viewer gone", "session", id, "mode", claims.Mode, "took", time.Since(t0), "err", err)
	return nil
}

// retryViews is the Retry-After of a refused view: viewers come and go
// (a closed tab frees its place at once).
const retryViews = "5"

// endedBy says why the fleet ended a view: expired, revoked, or "" when
// a side hung up.
func endedBy(ctx context.Context) string {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errViewExpired):
		return "expired"
	case errors.Is(cause, errViewRevoked):
		return "revoked"
	}
	return ""
}

// gate is what a viewer's input passes on the way to session's desktop:
// nothing for a view token (its input is dropped) or without an
// admitter, else the input pipeline's lease step, claimed by the viewer's
// id. A control viewer without an id acts only while nobody holds the
// lease.
func (h *Handler) gate(session string, mode Mode, viewer string) gate {
	if mode != ModeControl || h.opts.Input == nil {
		return nil
	}
	claim := control.Claim{Viewer: viewer}
	return func() (func(), error) { return h.opts.Input.AdmitInput(session, claim) }
}

func (h *Handler) viewerEvent(ev ViewerEvent) {
	if h.opts.OnViewer != nil {
		h.opts.OnViewer(ev)
	}
}

// drainTimeout bounds how long a view that has ended waits for the desktop
// to close its side.
const drainTimeout = 5 * time.Second

// proxy runs both directions between a viewer and a desktop and returns
// when both have stopped, with both connections closed. It returns the
// client's protocol error if that is what ended it, else nil: either side
// may end a view at any time.
//
// When the viewer goes first, the desktop connection is not just closed:
// wayvnc 0.5 dies of SIGPIPE if a client's socket closes while it writes a
// frame. So the proxy half-closes it, keeps reading (discarding) until the
// server closes its side, and only then closes it.
func proxy(ctx context.Context, ws *websocket.Conn, desk net.Conn, mode Mode, g gate) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	hangUp := func() {
		once.Do(func() {
			if cw, ok := desk.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				desk.SetReadDeadline(time.Now().Add(drainTimeout))
				return
			}
			desk.Close()
		})
	}
	// The owner's stop ends the viewer side; the rest follows from there.
	stop := context.AfterFunc(ctx, func() { ws.CloseNow(); hangUp() })
	defer stop()
	nc := websocket.NetConn(ctx, ws, websocket.MessageBinary)

	up := newFilter(nc, desk, mode, g)
	down := copyDown
	if mode != ModeControl {
		// A view-mode viewer gets the server's half framed, without the
		// desktop's clipboard.
		chosen := make(chan handshakeChoice, 1)
		up.chosen = chosen
		down = func(ctx context.Context, ws *websocket.Conn, desk net.Conn) bool {
			return frameDown(ctx, ws, desk, chosen)
		}
	}
	upErr := make(chan error, 1)
	go func() {
		err := up.run()
		if up.chosen != nil {
			// The viewer has chosen, or never will: let frameDown on.
			close(up.chosen)
		}
		if errors.Is(err, errProtocol) {
			closeProtocol(ws, err)
		}
		hangUp()
		upErr <- err
	}()

	if down(ctx, ws, desk) {
		// The desktop ended first: tell the viewer with a close frame,
		// which also ends the reader above.
		ws.Close(websocket.StatusNormalClosure, "desktop closed the connection")
	}
	cancel()
	err := <-upErr
	desk.Close()
	ws.CloseNow()
	if errors.Is(err, errProtocol) {
		return err
	}
	return nil
}

// copyDown sends what the desktop writes to the viewer, one binary message
// per read, waiting for each send: the back-pressure reaches the desktop.
// Once the viewer is gone it discards instead, until the desktop's side
// closes (or the drain deadline). It reports whether the viewer was still
// there when the desktop ended.
func copyDown(ctx context.Context, ws *websocket.Conn, desk net.Conn) (viewerThere bool) {
	buf := make([]byte, downBufSize)
	viewerThere = true
	for {
		n, err := desk.Read(buf)
		if n > 0 && viewerThere {
			if ws.Write(ctx, websocket.MessageBinary, buf[:n]) != nil {
				viewerThere = false
			}
		}
		if err != nil {
			return viewerThere && ctx.Err() == nil
		}
	}
}

// closeProtocol ends a view for a protocol error of either side.
func closeProtocol(ws *websocket.Conn, err error) {
	// Close reasons are limited to 123 bytes.
	reason := err.Error()
	if len(reason) > 120 {
		reason = reason[:120]
	}
	ws.Close(websocket.StatusPolicyViolation, reason)
}

// frameDown is copyDown for a view-mode viewer: the desktop's stream goes
// through a serverFilter. If the filter stops on what it cannot frame the
// viewer is closed; either way what the desktop still sends is drained.
func frameDown(ctx context.Context, ws *websocket.Conn, desk net.Conn, chosen <-chan handshakeChoice) (viewerThere bool) {
	w := &wsWriter{ctx: ctx, ws: ws}
	err := newServerFilter(desk, w, chosen).run()
	switch {
	case w.err != nil:
	case errors.Is(err, errProtocol):
		closeProtocol(ws, err)
	default: // the desktop's stream ended or failed
		return ctx.Err() == nil
	}
	io.Copy(io.Discard, desk)
	return false
}

// wsWriter sends each write as one binary message, waiting for the send,
// and keeps the first error.
type wsWriter struct {
	ctx context.Context
	ws  *websocket.Conn
	err error
}

func (w *wsWriter) Write(b []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.err = w.ws.Write(w.ctx, websocket.MessageBinary, b); w.err != nil {
		return 0, w.err
	}
	return len(b), nil
}
