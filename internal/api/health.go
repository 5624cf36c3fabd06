package api

import (
	"net/http"

	"atelier/internal/apitype"
)

// handleHealth serves GET /health, open to all: liveness and version.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	encode(w, http.StatusOK, apitype.Health{Status: "ok", Version: s.opts.Version})
	return nil
}
