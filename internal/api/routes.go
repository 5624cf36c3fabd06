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

		// One control lease per session: a task, a person, or nobody.
		{pattern: "GET /sessions/{id}/control", h: s.handleControl},
		{pattern: "POST /sessions/{id}/takeover", h: s.handleTakeover},
		{pattern: "POST /sessions/{id}/handback", h: s.handleHandback},

		// The live view: these carry their own gate, the embed token in the
		// URL (403 without a valid one); minting one needs the bearer token.
		{pattern: "POST /sessions/{id}/embed-token", h: s.handleEmbedToken},
		{pattern: "GET /sessions/{id}/embed", h: s.viewRoute("GET /sessions/{id}/embed"), open: true},
		{pattern: "GET /sessions/{id}/vnc", h: s.viewRoute("GET /sessions/{id}/vnc"), open: true},
		{pattern: "GET /sessions/{id}/embed/control", h: s.viewRoute("GET /sessions/{id}/embed/control"), open: true},
		{pattern: "POST /sessions/{id}/embed/control", h: s.viewRoute("POST /sessions/{id}/embed/control"), open: true},
		{pattern: "GET /view/assets/", h: s.viewRoute("GET /view/assets/"), open: true},
		{pattern: "GET /view/novnc/core/", h: s.viewRoute("GET /view/novnc/core/"), open: true},
		{pattern: "GET /view/novnc/vendor/", h: s.viewRoute("GET /view/novnc/vendor/"), open: true},

		{pattern: "POST /sessions/{id}/snapshot", h: s.handleTakeSnapshot},
		{pattern: "GET /snapshots", h: s.handleListSnapshots},
		{pattern: "DELETE /snapshots/{id}", h: s.handleDeleteSnapshot},

		{pattern: "GET /budget", h: s.handleBudget},

		{pattern: "POST /sessions/{id}/task", h: s.handleSubmitTask},
		{pattern: "GET /sessions/{id}/tasks", h: s.handleListTasks},
		{pattern: "GET /tasks/{id}", h: s.handleGetTask},
		{pattern: "GET /tasks/{id}/stream", h: s.handleTaskStream},
		{pattern: "POST /tasks/{id}/cancel", h: s.handleCancelTask},
		{pattern: "GET /tasks/{id}/steps/{step}/screenshot", h: s.handleTaskScreenshot},

		{pattern: "GET /sessions/{id}/audit", h: s.handleAudit},
	}
}

// handler is an API handler: it writes a success itself and returns an
// error for serve to write.
type handler func(w http.ResponseWriter, r *http.Request) error
