package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"atelier/internal/apitype"
)

// handleHealth serves GET /health, open to all: liveness and version.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	encode(w, http.StatusOK, apitype.Health{Status: "ok", Version: s.opts.Version})
	return nil
}

// ReadyCheck is one condition of readiness: Check answers nil when the
// part named Name can serve.
type ReadyCheck struct {
	Name  string
	Check func(context.Context) error
}

// readyTimeout bounds all checks of one GET /ready together.
const readyTimeout = 5 * time.Second

// handleReady serves GET /ready, open to all, for orchestrators: 200 once
// every check passes, else 503 not_ready naming each that failed.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	var failed []string
	ok := apitype.Ready{Status: "ready", Checks: []string{}}
	for _, c := range s.opts.Ready {
		if err := c.Check(ctx); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", c.Name, err))
			continue
		}
		ok.Checks = append(ok.Checks, c.Name)
	}
	if len(failed) > 0 {
		s.log.WarnContext(r.Context(), "not ready", "failed", failed)
		return &apiError{status: http.StatusServiceUnavailable, code: apitype.CodeNotReady, msg: "not ready: " + strings.Join(failed, "; ")}
	}
	encode(w, http.StatusOK, ok)
	return nil
}

// handleMetrics serves GET /metrics: the fleet's metrics, as scraped.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Metrics == nil {
		return &apiError{status: http.StatusNotFound, code: apitype.CodeNotFound, msg: "this fleet serves no metrics"}
	}
	s.opts.Metrics.ServeHTTP(w, r)
	return nil
}
