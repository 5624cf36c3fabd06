// Package console is the fleet's web console: a signed-in person's view of
// the whole fleet (live thumbnails, sessions, tasks, batches, money). Its
// pages and scripts are embedded, hand-written, and load nothing from
// elsewhere. It signs a person in with the API token, exchanged for an
// HttpOnly, SameSite=Strict cookie naming a sign-in kept in the store,
// and reaches the fleet through its API in process (under /console/api/),
// every state-changing request checked for its origin and CSRF token.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"atelier/desktop"
	"atelier/internal/audit"
	"atelier/internal/store"
)

// Prefix is where the console is served.
const Prefix = "/console"

//go:embed assets
var assets embed.FS

var pages = template.Must(template.ParseFS(assets, "assets/*.html"))

// Options configure a Console.
type Options struct {
	Store *store.Store // sign-ins, the ledger; required
	// Token is the fleet's API token, the one a person signs in with;
	// the console's API calls carry it in process.
	Token string
	// API is the fleet's API handler, which /console/api/ forwards to.
	API func() http.Handler
	// Audit is the fleet's audit log, whose files the session page has
	// verified; nil: no verification shown.
	Audit *audit.Log
	// Shots takes the thumbnails.
	Shots Shooter
	// CapUSD is the daily cap the money page measures spend against.
	CapUSD float64
	// Secure makes cookies Secure on plain-HTTP requests too, for a fleet
	// behind a TLS proxy.
	Secure bool
	TTL    time.Duration // how long a sign-in lasts; 0: DefaultTTL
	Logger *slog.Logger
	Now    func() time.Time
}

// Console serves the console.
type Console struct {
	opts   Options
	log    *slog.Logger
	mux    *http.ServeMux
	thumbs *thumbs
	cancel context.CancelFunc
}

// New returns a Console; Close ends its thumbnail captures.
func New(opts Options) *Console {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Console{opts: opts, log: opts.Logger, mux: http.NewServeMux(), cancel: cancel,
		thumbs: &thumbs{base: ctx, shots: opts.Shots, now: opts.Now, byID: map[string]*thumb{}}}
	static, _ := fs.Sub(assets, "assets/static")
	files := http.StripPrefix(Prefix+"/assets/", http.FileServerFS(static))
	c.mux.HandleFunc("GET "+Prefix+"/signin", c.handleSignInPage)
	c.mux.HandleFunc("POST "+Prefix+"/signin", c.handleSignIn)
	// Every other route needs a sign-in.
	signed := map[string]func(http.ResponseWriter, *http.Request, signin){
		"POST " + Prefix + "/signout":          c.handleSignOut,
		"GET " + Prefix + "/{$}":               c.page("fleet"),
		"GET " + Prefix + "/sessions/{id}":     c.page("session"),
		"GET " + Prefix + "/batches":           c.page("batches"),
		"GET " + Prefix + "/money":             c.handleMoney,
		"GET " + Prefix + "/thumbs/{id}":       c.handleThumb,
		Prefix + "/api/":                       c.handleAPI,
		"GET " + Prefix + "/assets/":           func(w http.ResponseWriter, r *http.Request, _ signin) { files.ServeHTTP(w, r) },
		"GET " + Prefix + "/audit/{id}/verify": c.handleVerify,
		// Past every route, signed in or not, nothing is found.
		Prefix + "/": func(w http.ResponseWriter, r *http.Request, _ signin) { http.NotFound(w, r) },
	}
	for pattern, h := range signed {
		c.mux.Handle(pattern, c.signedIn(h))
	}
	// The sign-in page's style is the one file served signed out.
	c.mux.HandleFunc("GET "+Prefix+"/assets/console.css", func(w http.ResponseWriter, r *http.Request) { files.ServeHTTP(w, r) })
	c.mux.HandleFunc("GET "+Prefix, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, Prefix+"/", http.StatusSeeOther) })
	return c
}

// Close ends the thumbnail captures in flight.
func (c *Console) Close() { c.cancel() }

func (c *Console) now() time.Time { return c.opts.Now() }

// ServeHTTP serves the console with its security headers: nothing but its
// own files, never framed.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if !strings.HasPrefix(r.URL.Path, Prefix+"/api/") {
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "+
			"frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
	}
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r)
}

// signedIn refuses a request without a valid sign-in (401: the sign-in
// page for a page, JSON for the rest), and a state-changing one from
// another origin or without the sign-in's CSRF token (403).
func (c *Console) signedIn(h func(http.ResponseWriter, *http.Request, signin)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.current(r)
		if !ok {
			if r.Method == http.MethodGet && !isData(r) {
				c.render(w, http.StatusUnauthorized, "signin.html", signinPage{Message: "Sign in to continue."})
				return
			}
			jsonError(w, http.StatusUnauthorized, "unauthorized", "sign in to the console first")
			return
		}
		if !safeMethod(r) {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
			if !sameOrigin(r) {
				jsonError(w, http.StatusForbidden, "bad_origin", "state-changing requests must come from the console's own pages")
				return
			}
			if !csrfOK(r, s) {
				jsonError(w, http.StatusForbidden, "bad_csrf", "missing or wrong "+HeaderCSRF)
				return
			}
		}
		h(w, r, s)
	})
}

// maxBody bounds a console request's body (a task's script is the largest).
const maxBody = 1 << 20

// isData tells the console's data routes (JSON, images) from its pages.
func isData(r *http.Request) bool {
	p := r.URL.Path
	return strings.HasPrefix(p, Prefix+"/api/") || strings.HasPrefix(p, Prefix+"/thumbs/") || strings.HasPrefix(p, Prefix+"/assets/")
}

func jsonError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// code and msg are this package's constants: nothing to escape.
	w.Write([]byte(`{"error":{"code":"` + code + `","message":"` + msg + `"}}` + "\n"))
}

type signinPage struct{ Message string }

// pageData is what every signed-in page template gets.
type pageData struct {
	Page    string
	CSRF    string
	Session string
	Themes  []string
	Money   *money
}

func (c *Console) render(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
	}
}

func (c *Console) handleSignInPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.current(r); ok {
		http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
		return
	}
	c.render(w, http.StatusOK, "signin.html", signinPage{})
}

func (c *Console) handleSignIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if !sameOrigin(r) {
		jsonError(w, http.StatusForbidden, "bad_origin", "sign in from the console's own page")
		return
	}
	if err := c.signIn(r.Context(), w, r, r.PostFormValue("token")); err != nil {
		c.log.WarnContext(r.Context(), "console: sign-in refused", "err", err)
		c.render(w, http.StatusUnauthorized, "signin.html", signinPage{Message: "That is not this fleet's API token."})
		return
	}
	http.Redirect(w, r, Prefix+"/", http.StatusSeeOther)
}

func (c *Console) handleSignOut(w http.ResponseWriter, r *http.Request, s signin) {
	if err := c.signOut(w, r, s); err != nil {
		c.log.ErrorContext(r.Context(), "console: sign out", "err", err)
		http.Error(w, "sign-out failed; the fleet's log has the details", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, Prefix+"/signin", http.StatusSeeOther)
}

// page serves a page shell; its script loads the data through the API.
func (c *Console) page(name string) func(http.ResponseWriter, *http.Request, signin) {
	return func(w http.ResponseWriter, r *http.Request, s signin) {
		c.render(w, http.StatusOK, name+".html", pageData{Page: name, CSRF: s.csrf, Session: r.PathValue("id"), Themes: desktop.ThemeNames()})
	}
}

func (c *Console) handleMoney(w http.ResponseWriter, r *http.Request, s signin) {
	m, err := c.money(r.Context())
	if err != nil {
		c.log.ErrorContext(r.Context(), "console: money", "err", err)
		http.Error(w, "could not read the ledger; the fleet's log has the details", http.StatusInternalServerError)
		return
	}
	c.render(w, http.StatusOK, "money.html", pageData{Page: "money", CSRF: s.csrf, Money: &m})
}

func (c *Console) handleThumb(w http.ResponseWriter, r *http.Request, _ signin) {
	data, err := c.thumbs.get(r.Context(), r.PathValue("id"))
	if err != nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "no thumbnail: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Cache-Control", "private, no-store")
	w.Write(data)
}

// handleVerify walks a session's audit file and reports whether its
// chain holds, as `atelier audit verify` does.
func (c *Console) handleVerify(w http.ResponseWriter, r *http.Request, _ signin) {
	id := r.PathValue("id")
	if c.opts.Audit == nil || audit.CheckSession(id) != nil {
		jsonError(w, http.StatusNotFound, "not_found", "no audit log for this session")
		return
	}
	out := verification{}
	rep, err := audit.Verify(c.opts.Audit.Path(id))
	out.Entries, out.LastSeq, out.OK = rep.Entries, rep.LastSeq, err == nil
	if b, ok := errors.AsType[*audit.Break](err); ok {
		out.Problem = fmt.Sprintf("line %d: %s", b.Line, b.Problem)
	} else if errors.Is(err, fs.ErrNotExist) {
		out.OK = true // nothing recorded yet
	} else if err != nil {
		out.Problem = "could not read the log"
		c.log.ErrorContext(r.Context(), "console: verify audit", "session", id, "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// verification is a session's audit chain as the console shows it.
type verification struct {
	OK      bool   `json:"ok"`
	Entries int64  `json:"entries"`
	LastSeq int64  `json:"last_seq"`
	Problem string `json:"problem,omitempty"`
}

// handleAPI forwards /console/api/<path> to the API's /<path>, in
// process, with the fleet's token and audited as the console. The
// person's cookie stays behind: the API never sees it.
func (c *Console) handleAPI(w http.ResponseWriter, r *http.Request, _ signin) {
	rest := strings.TrimPrefix(r.URL.Path, Prefix+"/api")
	req := r.Clone(audit.WithActor(r.Context(), audit.ActorConsole))
	req.URL.Path, req.URL.RawPath = rest, ""
	req.RequestURI = req.URL.RequestURI()
	req.Header.Del("Cookie")
	req.Header.Del(HeaderCSRF)
	req.Header.Set("Authorization", "Bearer "+c.opts.Token)
	c.opts.API().ServeHTTP(w, req)
}
