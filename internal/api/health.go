package api

import (
	"net/http"
	"time"

	"atelier/internal/apitype"
)

// handleHealth serves GET /health, open to all: liveness and version.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	encode(w, http.StatusOK, apitype.Health{Status: "ok", Version: s.opts.Version})
	return nil
}

// handleBudget serves GET /budget: today's spend against the daily cap.
func (s *Server) handleBudget(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Budget == nil {
		encode(w, http.StatusOK, apitype.Budget{Day: time.Now().UTC().Format(time.DateOnly), CapUSD: s.opts.CapUSD})
		return nil
	}
	b, err := s.opts.Budget(r.Context())
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, b)
	return nil
}
