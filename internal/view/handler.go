// Package view serves the live view of a desktop on the fleet's own origin:
// a WebSocket proxied to the desktop's RFB server (vnc.sock), gated by
// HMAC-signed embed tokens bound to one session, one mode and an expiry; in
// view mode the proxy drops every input message, so a view token can never
// move the mouse or type. With a control lease (Options.Control), a control
// viewer's input passes only while the lease admits the viewer's claim, and
// the page shows who holds control and lets a control token take it and
// hand it back. It also serves the viewer page, a small page of our own on
// top of noVNC's RFB module from the Debian novnc package.
//
// Origins: the viewer page, its WebSocket and its control requests are
// same-origin. The WebSocket accepts a browser's upgrade only from the
// fleet's own origin (plus Options.OriginPatterns), a control POST only
// from the fleet's own. The token is the gate; the origin check only stops
// other sites' pages from using a leaked token through a visitor's
// browser. Clients that send no Origin (not browsers) pass it.
package view

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Dialer connects to a running session's RFB server. sessions.Manager
// satisfies it.
type Dialer interface {
	DialVNC(ctx context.Context, sessionID string) (net.Conn, error)
}

// Options configure a Handler. Dialer and Tokens are required; zero values
// of the rest mean their defaults.
type Options struct {
	Dialer Dialer
	Tokens *Tokens
	// NoVNCDir is the directory of noVNC's files (it has core/rfb.js).
	// Default: DefaultNoVNCDir.
	NoVNCDir string
	// FrameAncestors is the CSP frame-ancestors source list: which pages
	// may embed the viewer in an iframe. Default: "*".
	FrameAncestors string
	// OriginPatterns are extra host patterns (path.Match syntax, as in
	// "app.example.com" or "*.example.com") whose pages may open the
	// WebSocket; the fleet's own origin is always allowed.
	OriginPatterns []string
	// PublicURL prefixes the links Link returns ("https://fleet.example");
	// empty means origin-relative links ("/sessions/…").
	PublicURL string
	// DefaultTTL is a link's lifetime when none is asked for. Default: 1h.
	DefaultTTL time.Duration
	// DialTimeout bounds reaching the desktop. Default: 10s.
	DialTimeout time.Duration
	// OnViewer, if set, hears every view that opens and closes (the fleet
	// writes them to the audit log). It must not block.
	OnViewer func(ViewerEvent)
	// Control, if set, is the sessions' control lease: the page offers
	// to take control and hand it back.
	Control Control
	// Input, if set, admits a control viewer's input events: the lease
	// step of the sessions' input pipeline (sessions.Manager), claimed by
	// the viewer. Nil: a control token's input always passes.
	Input Admitter
	// Generations, if set, keeps each session's token generation, so a
	// session's tokens can be revoked (Revoke); nil: every token is of
	// generation 0 and none can be revoked.
	Generations Generations
	// MaxViews is how many live views one session may have open; past it
	// a view is refused with 429 too_many_streams. 0: no limit. It is
	// counted per session, not per token: a view's cost lands on its
	// desktop, and any number of tokens can be minted for one.
	MaxViews int
	Logger   *slog.Logger
}

// ViewerEvent is a view of a session opening or closing.
type ViewerEvent struct {
	Session string
	Mode    Mode
	Opened  bool
	// Duration is how long the view lasted (on close).
	Duration time.Duration
	// Why the fleet closed it: "expired" (its token), "revoked", or ""
	// when the viewer or the desktop hung up.
	Why string
}

// DefaultNoVNCDir is where Debian's novnc package puts noVNC.
const DefaultNoVNCDir = "/usr/share/novnc"

//go:embed assets
var assets embed.FS

var page = template.Must(template.ParseFS(assets, "assets/embed.html"))

// Handler serves the viewer page, its assets and the WebSocket proxy. Close
// ends every open view.
type Handler struct {
	opts   Options
	tokens *Tokens
	log    *slog.Logger
	csp    string

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	shut   bool
	wg     sync.WaitGroup
	// views are the open views per session; revoked the generation each
	// session's revocations reached in this process (guarded by mu).
	views   map[string]map[*openView]struct{}
	revoked map[string]uint64
}

// NewHandler checks opts and returns a Handler.
func NewHandler(opts Options) (*Handler, error) {
	if opts.Dialer == nil || opts.Tokens == nil {
		return nil, errors.New("view: Dialer and Tokens are required")
	}
	if opts.NoVNCDir == "" {
		opts.NoVNCDir = DefaultNoVNCDir
	}
	if _, err := os.Stat(filepath.Join(opts.NoVNCDir, "core", "rfb.js")); err != nil {
		return nil, fmt.Errorf("view: noVNC not found (install the novnc package or set the directory): %w", err)
	}
	if opts.FrameAncestors == "" {
		opts.FrameAncestors = "*"
	}
	if strings.ContainsAny(opts.FrameAncestors, ";,\r\n") {
		return nil, fmt.Errorf("view: frame ancestors %q: want space-separated CSP sources", opts.FrameAncestors)
	}
	if opts.PublicURL != "" {
		u, err := url.Parse(opts.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("view: public URL %q: want http(s)://host[:port]", opts.PublicURL)
		}
		opts.PublicURL = strings.TrimSuffix(opts.PublicURL, "/")
	}
	if opts.DefaultTTL == 0 {
		opts.DefaultTTL = time.Hour
	}
	if opts.DefaultTTL < 0 || opts.DefaultTTL > MaxTTL {
		return nil, fmt.Errorf("view: default lifetime %s: want at most %s", opts.DefaultTTL, MaxTTL)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Handler{
		opts:   opts,
		tokens: opts.Tokens,
		log:    opts.Logger,
		// connect-src 'self' covers the same-origin ws: and wss:; noVNC
		// draws cursors from data: URLs.
		csp: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
			"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors " + opts.FrameAncestors,
		ctx:     ctx,
		cancel:  cancel,
		views:   map[string]map[*openView]struct{}{},
		revoked: map[string]uint64{},
	}, nil
}

// Route is one of the viewer's routes: it writes a success itself and
// returns a refusal for the fleet's API to classify and write (the errors
// of this package, the control lease's, *http.MaxBytesError).
type Route func(w http.ResponseWriter, r *http.Request) error

// Routes returns the viewer's routes, pattern → handler:
//
//	GET  /sessions/{id}/embed           the viewer page (?token=)
//	GET  /sessions/{id}/vnc             the WebSocket (?token=&viewer=)
//	GET  /sessions/{id}/embed/control   who holds control (?token=)
//	POST /sessions/{id}/embed/control   take control, hand it back (?token=, control)
//	GET  /view/assets/…                 the page's script and style
//	GET  /view/novnc/…                  noVNC's modules (core/, vendor/)
//
// These routes carry their own gate (the embed token): the API mounts them
// outside its bearer-token check.
func (h *Handler) Routes() map[string]Route {
	sub, _ := fs.Sub(assets, "assets")
	novnc := plain(http.StripPrefix("/view/novnc/", files(http.Dir(h.opts.NoVNCDir))))
	return map[string]Route{
		"GET /sessions/{id}/embed":          h.serveEmbed,
		"GET /sessions/{id}/vnc":            h.serveVNC,
		"GET /sessions/{id}/embed/control":  h.serveControlState,
		"POST /sessions/{id}/embed/control": h.serveControlAction,
		"GET /view/assets/":                 plain(http.StripPrefix("/view/assets/", files(http.FS(sub)))),
		"GET /view/novnc/core/":             novnc,
		"GET /view/novnc/vendor/":           novnc,
	}
}

// plain adapts a handler that refuses nothing of its own (a file server).
func plain(h http.Handler) Route {
	return func(w http.ResponseWriter, r *http.Request) error {
		h.ServeHTTP(w, r)
		return nil
	}
}

// files serves fsys's files, never a directory listing.
func files(fsys http.FileSystem) http.Handler {
	fsrv := http.FileServer(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}

// Close ends every open view and waits for them; views asked for later
// are refused.
func (h *Handler) Close() error {
	h.mu.Lock()
	h.shut = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
	return nil
}

// track counts a view in; false once the Handler is closed.
func (h *Handler) track() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shut {
		return false
	}
	h.wg.Add(1)
	return true
}

func (h *Handler) serveEmbed(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	hdr := w.Header()
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	claims, err := h.verify(r, id, ModeView)
	if err != nil {
		return h.deny(w, r, err)
	}
	hdr.Set("Content-Security-Policy", h.csp)
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	page.Execute(w, struct {
		Session string
		Mode    Mode
		Control bool
	}{id, claims.Mode, h.opts.Control != nil})
	return nil
}

// TokenError is a refusal of the embed token (403): it wraps the error
// Verify returned and says what to do, for people.
type TokenError struct {
	Err error
	msg string
}

func (e *TokenError) Error() string { return e.msg }
func (e *TokenError) Unwrap() error { return e.Err }

// deny refuses a request for its token: a browser that asks for HTML gets
// a small page (and deny returns nil); anyone else gets a *TokenError to
// be written as the API's JSON error.
func (h *Handler) deny(w http.ResponseWriter, r *http.Request, err error) error {
	msg := "this link is not valid for this desktop"
	switch {
	case errors.Is(err, ErrNoToken):
		msg = "this link has no embed token (?token=)"
	case errors.Is(err, ErrExpiredToken):
		msg = "this link has expired; ask for a new one"
	case errors.Is(err, ErrModeDenied):
		msg = "this link does not allow that"
	}
	h.log.InfoContext(r.Context(), "view refused", "session", r.PathValue("id"), "err", err)
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		w.WriteHeader(http.StatusForbidden)
		denied.Execute(w, msg)
		return nil
	}
	return &TokenError{Err: err, msg: msg}
}

var denied = template.Must(template.New("denied").Parse(`<!doctype html>
<html lang="en"><meta charset="utf-8"><title>Atelier · no access</title>
<body style="margin:0;display:grid;place-items:center;height:100vh;background:#2a1f1a;color:#fbf5ec;font:16px system-ui,sans-serif">
<p>{{.}}</p></body></html>
`))

// Refusals of the view's routes besides the token's; the API gives each
// its status and code.
var (
	// ErrBadRequest: a control request's body is malformed.
	ErrBadRequest = errors.New("bad control request")
	// ErrBadViewer: a malformed viewer id.
	ErrBadViewer = errors.New("viewer: want 1 to 64 characters of A-Z, a-z, 0-9, _ and -")
	// ErrBadOrigin: a control request from another site's page.
	ErrBadOrigin = errors.New("control requests must come from the viewer's own origin")
	// ErrNoControl: the fleet has no control lease.
	ErrNoControl = errors.New("this fleet has no control lease")
	// ErrClosed: the Handler is closed (the fleet is shutting down).
	ErrClosed = errors.New("the fleet is shutting down")
)

// writeJSON writes a success answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// decodeBody decodes r's body into v: one JSON object of at most limit
// bytes, with no fields v does not have. A body over the limit is a
// *http.MaxBytesError; any other problem wraps ErrBadRequest.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return err
		}
		return fmt.Errorf("%w: body: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: body: one JSON object only", ErrBadRequest)
	}
	return nil
}
