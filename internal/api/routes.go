package api

import "net/http"

// route is one entry of the API's surface.
type route struct {
	pattern string
	h       handler
	// open routes need no bearer token.
	open bool
}

// routes is the whole HTTP surface of the fleet, on one page.
func (s *Server) routes() []route {
	return []route{
		{pattern: "GET /health", h: s.handleHealth, open: true},

		{pattern: "POST /sessions", h: s.handleCreateSession},
		{pattern: "GET /sessions", h: s.handleListSessions},
		{pattern: "GET /sessions/{id}", h: s.handleGetSession},
		{pattern: "DELETE /sessions/{id}", h: s.handleDeleteSession},
		{pattern: "POST /sessions/{id}/stop", h: s.handleStopSession},
		{pattern: "POST /sessions/{id}/start", h: s.handleStartSession},
		{pattern: "PUT /sessions/{id}/theme", h: s.handleSetTheme},
		{pattern: "POST /sessions/{id}/theme", h: s.handleSetTheme},
		{pattern: "GET /sessions/{id}/screenshot", h: s.handleScreenshot},
		{pattern: "POST /sessions/{id}/actions", h: s.handleActions},

		{pattern: "GET /budget", h: s.handleBudget},
	}
}

// handler is an API handler: it writes a success itself and returns an
// error for serve to write.
type handler func(w http.ResponseWriter, r *http.Request) error
