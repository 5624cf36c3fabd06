// Package api is the fleet's HTTP API (DESIGN §5): the routes, their
// handlers (decode, call the domain package, encode), the mapping of domain
// errors to statuses and stable codes, and the middleware around them —
// bearer-token auth, body limits, request logs and panic recovery.
package api

import (
	"log/slog"
	"net/http"
	"time"

	"atelier/internal/audit"
	"atelier/internal/batches"
	"atelier/internal/budget"
	"atelier/internal/control"
	"atelier/internal/sessions"
	"atelier/internal/snapshot"
	"atelier/internal/tasks"
	"atelier/internal/view"
)

// Options configure a Server. Zero values take the defaults noted.
type Options struct {
	Sessions *sessions.Manager // required
	// Token, if set, is the bearer token every route but /health needs.
	Token string
	// Budget serves GET /budget; nil reports nothing spent against CapUSD.
	Budget *budget.Budget
	// CapUSD is the daily cap reported while Budget is nil.
	CapUSD float64
	// Tasks serves the task routes; nil answers them 503.
	Tasks *tasks.Manager
	// Batches serves POST /tasks and the batch routes; nil answers them 503.
	Batches *batches.Manager
	// Audit serves GET /sessions/{id}/audit and records session lifecycle
	// events; nil answers the route 503 and records nothing.
	Audit *audit.Log
	// Metrics, if set, serves GET /metrics (nil: the route answers 404).
	// MetricsToken, if set, opens that route beside Token, for scrapers.
	Metrics      http.Handler
	MetricsToken string
	// Ready are the checks GET /ready runs, in order; none: always ready.
	Ready []ReadyCheck
	// Version is reported by /health.
	Version string
	Logger  *slog.Logger // nil: discard
	// View, if set, serves the live view and mints the links in the
	// session JSON; nil: no live view.
	View *view.Handler
	// Snapshots, if set, keeps snapshots of the homes of Desktops (the
	// fleet's runtime); nil: the snapshot routes answer 404.
	Snapshots *snapshot.Store
	Desktops  snapshot.Desktops
	// Control, if set, is the sessions' control lease: it serves the
	// control state, takeover and hand-back (nil: those routes answer
	// 404). Input is admitted by the sessions' pipeline, which must be
	// given the same leases (sessions.Options.Control).
	Control *control.Leases
	// Console, if set, serves the web console under /console (its own
	// sign-in guards it; it is not part of the API's document).
	Console http.Handler
	// MCP, if set, serves the Model Context Protocol's streamable HTTP
	// transport at /mcp, behind the bearer token; nil: /mcp answers 404.
	MCP http.Handler

	// ReadTimeout and IdleTimeout are HTTPServer's; 0: DefaultReadTimeout,
	// DefaultIdleTimeout.
	ReadTimeout, IdleTimeout time.Duration
	// MaxUpload bounds one file uploaded into a home; 0: DefaultMaxUpload.
	// The home's quota bounds them all.
	MaxUpload int64
	// MaxStreams is how many streams (task SSE, audit follow) one token
	// may hold open; past it 429 too_many_streams. 0: no limit.
	MaxStreams int
}

// Server serves the fleet API.
type Server struct {
	sessions *sessions.Manager
	opts     Options
	log      *slog.Logger
	handler  http.Handler
	patterns []string
	streams  *streams
	openapi  []byte // the OpenAPI document, GET /openapi.json
}

// OpenStreams returns how many streams (task SSE, audit follow) are open.
func (s *Server) OpenStreams() int { return s.streams.count() }

// New returns a Server; its Handler serves every route.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Logger = slog.New(RequestIDLogs(opts.Logger.Handler()))
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxUpload <= 0 {
		opts.MaxUpload = DefaultMaxUpload
	}
	s := &Server{sessions: opts.Sessions, opts: opts, log: opts.Logger, streams: &streams{max: opts.MaxStreams, open: map[string]int{}}}
	mux := http.NewServeMux()
	routes := s.routes()
	doc, err := openAPI(routes, opts.Version)
	if err != nil {
		panic(err) // the route table is wrong: a fault of this package
	}
	s.openapi = doc
	for _, rt := range routes {
		h := rt.h
		switch {
		case rt.scrape:
			h = s.authAny(h, s.opts.Token, s.opts.MetricsToken)
		case !rt.open:
			h = s.auth(h)
		}
		mux.Handle(rt.pattern, named(rt.pattern, s.serve(h)))
		s.patterns = append(s.patterns, rt.pattern)
	}
	if opts.Console != nil {
		mux.Handle("/console", opts.Console)
		mux.Handle("/console/", opts.Console)
	}
	s.handler = withRequestID(traced(s.recover(s.logRequests(secureHeaders(s.fallback(mux))))))
	return s
}

// Handler returns the API's handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Patterns lists every route's pattern, as registered ("GET /health").
func (s *Server) Patterns() []string { return s.patterns }

// OpenPatterns lists the routes that need no token.
func (s *Server) OpenPatterns() []string {
	var out []string
	for _, rt := range s.routes() {
		if rt.open {
			out = append(out, rt.pattern)
		}
	}
	return out
}
