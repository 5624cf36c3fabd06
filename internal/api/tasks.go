package api

import (
	"net/http"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/budget"
	"atelier/internal/tasks"
)

// taskRoute adapts one of the tasks package's handlers (which write their
// own errors) to a route; without a task manager the route is unavailable.
func (s *Server) taskRoute(mk func(*tasks.Manager) http.Handler) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		if s.opts.Tasks == nil {
			return &apiError{status: http.StatusServiceUnavailable, code: apitype.CodeUnavailable, msg: "this fleet runs no tasks"}
		}
		mk(s.opts.Tasks).ServeHTTP(w, r)
		return nil
	}
}

// handleBudget serves GET /budget: today's spend against the daily cap.
func (s *Server) handleBudget(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Budget == nil {
		encode(w, http.StatusOK, apitype.Budget{Day: budget.Day(time.Now()), CapUSD: s.opts.CapUSD})
		return nil
	}
	budget.Handler(s.opts.Budget).ServeHTTP(w, r)
	return nil
}
