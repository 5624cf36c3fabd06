// Package agent serves protocol v1 (internal/agentapi) on the desktop's
// agent.sock: it performs input and screenshots through one persistent
// Wayland connection to the compositor (internal/wayland), so an action
// costs a socket write rather than a forked tool.
package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"atelier/internal/agent/keys"
	"atelier/internal/agentapi"
	"atelier/internal/version"
	"atelier/internal/wayland"
)

// Options configure a Server.
type Options struct {
	WaylandSocket string                 // path of the compositor's socket
	Status        func() agentapi.Status // from the supervisor; the server fills Width/Height
	Logger        *slog.Logger
}

// writeTimeout bounds how long a client that does not read its responses
// keeps its connection.
const writeTimeout = 30 * time.Second

// Server answers protocol v1 requests. Input verbs run one at a time (there
// is one seat); screenshots, cursor_position, status and wait run beside
// them.
type Server struct {
	opts Options
	log  *slog.Logger

	connMu sync.Mutex // guards display and seat
	disp   *wayland.Display
	seat   *seat

	inputMu sync.Mutex // one input action at a time

	cursorMu sync.Mutex
	cursor   agentapi.Point

	shotMu   sync.Mutex
	shots    shotCache     // screenshots returned again while the screen is unchanged
	captures atomic.Uint64 // screenshots captured and encoded (not returned again)
	trim     *time.Timer   // gives the encoders' memory back once screenshots stop; guarded by shotMu
	input    lastInput     // guarded by shotMu
}

// New returns a server; it connects to the compositor on the first request
// that needs it.
func New(opts Options) *Server {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, log: log}
}

// Serve accepts connections on ln until ctx is done, then closes ln and
// every connection, and returns once each connection's goroutine has ended.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	// Connect now rather than on the first request: clients only bind a
	// keyboard and a pointer when the seat has them, so the virtual devices
	// must exist before the desktop's programs start. A failure is retried
	// by the next request.
	if _, _, err := s.display(ctx); err != nil {
		s.log.Warn("compositor not reachable yet", "err", err)
	}
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		s.connMu.Lock()
		if s.disp != nil {
			s.disp.Close()
			s.disp, s.seat = nil, nil
		}
		s.connMu.Unlock()
		s.shotMu.Lock()
		if s.trim != nil {
			s.trim.Stop()
		}
		s.shotMu.Unlock()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c)
		}()
	}
}

// serveConn answers the requests of one client, in order.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(c, 64<<10)
	for {
		line, err := agentapi.ReadRequestLine(r)
		var resp *agentapi.Response
		var apiErr *agentapi.Error
		switch {
		case errors.As(err, &apiErr): // an oversized line, consumed whole
			resp = &agentapi.Response{Error: apiErr}
		case err != nil:
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.log.Debug("client read", "err", err)
			}
			return
		default:
			resp = s.handle(ctx, line)
		}
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		err = agentapi.WriteResponse(w, resp)
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			s.log.Debug("client write", "err", err)
			return
		}
	}
}

// handle decodes, checks and performs one request. It never panics.
func (s *Server) handle(ctx context.Context, line []byte) (resp *agentapi.Response) {
	resp = &agentapi.Response{}
	req, err := agentapi.Decode(line)
	if err != nil {
		// Echo the id even of a request that does not decode, when it can be read.
		var withID struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(line, &withID) == nil {
			req.ID = withID.ID
		}
	}
	resp.ID = req.ID
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in request", "action", req.Action, "panic", p, "stack", string(debug.Stack()))
			resp = &agentapi.Response{ID: req.ID, Error: agentapi.Errorf(agentapi.CodeInternal, "%s: internal fault; see the agent log", req.Action)}
		}
	}()
	if err == nil {
		err = s.do(ctx, &req, resp)
	}
	if err != nil {
		var apiErr *agentapi.Error
		if !errors.As(err, &apiErr) {
			apiErr = s.classify(req.Action, err)
		}
		return &agentapi.Response{ID: req.ID, Error: apiErr}
	}
	resp.OK = true
	cur := s.cursorPos()
	resp.Cursor = &cur
	return resp
}

// classify turns an internal error into a protocol error, logging faults.
func (s *Server) classify(verb agentapi.Verb, err error) *agentapi.Error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return agentapi.Errorf(agentapi.CodeTimeout, "%s: the compositor did not answer in time", verb)
	case errors.Is(err, context.Canceled):
		return agentapi.Errorf(agentapi.CodeUnavailable, "%s: the agent is shutting down", verb)
	case errors.Is(err, errUnavailable):
		return agentapi.Errorf(agentapi.CodeUnavailable, "%s: %v", verb, err)
	}
	s.log.Error("request failed", "action", verb, "err", err)
	return agentapi.Errorf(agentapi.CodeInternal, "%s: %v", verb, err)
}

// errUnavailable marks failures caused by the compositor being away.
var errUnavailable = errors.New("the compositor is not available")

// display returns the live compositor connection, dialling a new one when
// there is none or the last one broke (sway restarted).
func (s *Server) display(ctx context.Context) (*wayland.Display, *seat, error) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.disp != nil {
		select {
		case <-s.disp.Done():
			s.log.Warn("compositor connection lost; reconnecting", "err", s.disp.Err())
			s.disp.Close()
			s.disp, s.seat = nil, nil
		default:
			return s.disp, s.seat, nil
		}
	}
	if s.opts.WaylandSocket == "" {
		return nil, nil, fmt.Errorf("%w: no wayland socket configured", errUnavailable)
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := wayland.Dial(dctx, s.opts.WaylandSocket)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errUnavailable, err)
	}
	st, err := newSeat(d)
	if err == nil {
		err = d.Roundtrip(dctx)
	}
	if err != nil {
		d.Close()
		return nil, nil, fmt.Errorf("%w: %v", errUnavailable, err)
	}
	s.disp, s.seat = d, st
	return d, st, nil
}

// wlErr marks an error of the compositor connection as unavailability, so
// the client hears "unavailable" and the next request reconnects.
func wlErr(d *wayland.Display, err error) error {
	if err == nil {
		return nil
	}
	select {
	case <-d.Done():
		return fmt.Errorf("%w: %v", errUnavailable, err)
	default:
		return err
	}
}

func (s *Server) cursorPos() agentapi.Point {
	s.cursorMu.Lock()
	defer s.cursorMu.Unlock()
	return s.cursor
}

func (s *Server) setCursor(p agentapi.Point) {
	s.cursorMu.Lock()
	s.cursor = p
	s.cursorMu.Unlock()
}

// do performs a decoded request, filling resp.
func (s *Server) do(ctx context.Context, req *agentapi.Request, resp *agentapi.Response) error {
	switch req.Action {
	case agentapi.Wait:
		return sleep(ctx, req.WaitDuration())
	case agentapi.CursorPosition:
		return nil // every response carries the cursor
	case agentapi.Settle:
		d, _, err := s.display(ctx)
		if err != nil {
			return err
		}
		began := time.Now()
		still, frames, err := d.WaitStill(ctx, req.QuietPeriod(), req.WaitDuration())
		if errors.Is(err, wayland.ErrNoDamage) {
			return agentapi.Errorf(agentapi.CodeUnavailable, "settle: %v", err)
		}
		resp.Settle = &agentapi.SettleResult{Still: still, Waited: time.Since(began).Seconds(), Frames: frames}
		return wlErr(d, err)
	case agentapi.StatusVerb:
		var st agentapi.Status
		if s.opts.Status != nil {
			st = s.opts.Status()
		}
		if d, _, err := s.display(ctx); err == nil {
			st.Width, st.Height = d.OutputSize()
		}
		st.AgentVersion, st.Verbs = version.Version, agentapi.Verbs()
		resp.Status = &st
		return nil
	case agentapi.ClipboardGet, agentapi.ClipboardSet:
		return s.clipboard(ctx, req, resp)
	}

	d, st, err := s.display(ctx)
	if err != nil {
		return err
	}
	w, h := d.OutputSize()
	if err := req.CheckBounds(w, h); err != nil {
		return err
	}
	if req.Action == agentapi.Screenshot {
		img, err := s.screenshot(ctx, d, req)
		resp.Image = img
		return wlErr(d, err)
	}
	// Parse key names before touching anything, so a bad one changes nothing.
	plan, err := planInput(req)
	if err != nil {
		return err
	}
	s.inputMu.Lock()
	defer s.inputMu.Unlock()
	if err := plan(ctx, st, s); err != nil {
		return wlErr(d, err)
	}
	// Answer once the compositor has the events, not merely the socket.
	if err := d.Roundtrip(ctx); err != nil {
		return wlErr(d, err)
	}
	s.noteInput(d)
	return nil
}

// KeymapReset tells the server that the compositor dropped its virtual
// keyboard's keymap: sway's reload re-applies its input config to every
// keyboard, virtual ones included, leaving the default layout, where the
// agent's keycodes mean other keys (Return became 4, so super+Return
// switched workspace). No Wayland event says so, hence this call from
// whoever reloads sway; the next keyboard action uploads the keymap again.
// Uploading before every action instead would cost each key ~3 ms.
func (s *Server) KeymapReset() {
	s.connMu.Lock()
	st := s.seat
	s.connMu.Unlock()
	if st == nil {
		return // a new connection uploads its keymap anyway
	}
	s.inputMu.Lock()
	st.forgetKeymap()
	s.inputMu.Unlock()
}

// inputPlan performs a checked input request.
type inputPlan func(ctx context.Context, st *seat, s *Server) error

// planInput checks everything about an input request that can be wrong
// and returns how to perform it.
func planInput(req *agentapi.Request) (inputPlan, error) {
	var mods keys.Mod
	if req.Modifiers != "" {
		m, err := keys.ParseModifiers(req.Modifiers)
		if err != nil {
			return nil, err
		}
		mods = m
	}
	// moveTo moves the pointer to the request's coordinate, if it has one.
	moveTo := func(st *seat, s *Server) error {
		if req.Coordinate == nil {
			return nil
		}
		if err := st.move(*req.Coordinate); err != nil {
			return err
		}
		s.setCursor(*req.Coordinate)
		return nil
	}
	clicks := func(button uint32, n int) inputPlan {
		return func(ctx context.Context, st *seat, s *Server) error {
			if err := moveTo(st, s); err != nil {
				return err
			}
			return st.withMods(mods, func() error { return st.click(ctx, button, n) })
		}
	}
	switch req.Action {
	case agentapi.MouseMove:
		return func(_ context.Context, st *seat, s *Server) error { return moveTo(st, s) }, nil
	case agentapi.LeftClick:
		return clicks(wayland.ButtonLeft, 1), nil
	case agentapi.RightClick:
		return clicks(wayland.ButtonRight, 1), nil
	case agentapi.MiddleClick:
		return clicks(wayland.ButtonMiddle, 1), nil
	case agentapi.DoubleClick:
		return clicks(wayland.ButtonLeft, 2), nil
	case agentapi.TripleClick:
		return clicks(wayland.ButtonLeft, 3), nil
	case agentapi.LeftMouseDown, agentapi.LeftMouseUp:
		down := req.Action == agentapi.LeftMouseDown
		return func(_ context.Context, st *seat, s *Server) error {
			if err := moveTo(st, s); err != nil {
				return err
			}
			return st.button(wayland.ButtonLeft, down)
		}, nil
	case agentapi.LeftClickDrag:
		return func(ctx context.Context, st *seat, s *Server) error {
			return st.withMods(mods, func() error {
				err := st.drag(ctx, *req.StartCoordinate, *req.Coordinate)
				s.setCursor(*req.Coordinate)
				return err
			})
		}, nil
	case agentapi.Scroll:
		amount := req.ScrollAmount
		if amount == 0 {
			amount = DefaultScrollAmount
		}
		return func(_ context.Context, st *seat, s *Server) error {
			if err := moveTo(st, s); err != nil {
				return err
			}
			return st.withMods(mods, func() error { return st.scroll(req.ScrollDirection, amount) })
		}, nil
	case agentapi.Type:
		syms, err := textKeysyms(req.Text)
		if err != nil {
			return nil, err
		}
		return func(_ context.Context, st *seat, _ *Server) error { return st.tap(syms) }, nil
	case agentapi.Key:
		combos, err := keys.ParseSequence(req.Text)
		if err != nil {
			return nil, err
		}
		return func(_ context.Context, st *seat, _ *Server) error {
			for _, c := range combos {
				if err := st.combo(c); err != nil {
					return err
				}
			}
			return nil
		}, nil
	case agentapi.HoldKey:
		combos, err := keys.ParseSequence(req.Text)
		if err != nil {
			return nil, err
		}
		var syms []uint32
		for _, c := range combos {
			syms = append(append(syms, modSyms(c.Mods)...), c.Keysym)
		}
		return func(ctx context.Context, st *seat, _ *Server) error {
			if err := st.press(syms, true); err != nil {
				return err
			}
			err := st.d.Roundtrip(ctx)
			if err == nil {
				err = sleep(ctx, req.WaitDuration())
			}
			// Release whatever happened, so no key stays down.
			if rerr := st.press(reversed(syms), false); err == nil {
				err = rerr
			}
			return err
		}, nil
	}
	return nil, agentapi.Errorf(agentapi.CodeUnknownAction, "unknown action %q", req.Action)
}

// textKeysyms returns the keysyms that type text. A newline (or CR LF)
// presses Return and a tab Tab; other control characters are refused.
func textKeysyms(text string) ([]uint32, error) {
	syms := make([]uint32, 0, len(text))
	prevCR := false
	for i, r := range text {
		if r == '\n' && prevCR {
			prevCR = false
			continue
		}
		prevCR = r == '\r'
		ks := keys.RuneKeysym(r)
		if ks == 0 {
			return nil, agentapi.Errorf(agentapi.CodeBadField, "text has control character U+%04X at byte %d; only newline and tab are typed", r, i)
		}
		syms = append(syms, ks)
	}
	return syms, nil
}
