package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/audit"
	"atelier/internal/view"
)

// viewLinks mints the control and view links of session id, or none
// without a live view.
func (s *Server) viewLinks(ctx context.Context, id string) (embed, watch string) {
	if s.opts.View == nil {
		return "", ""
	}
	c, err := s.opts.View.Link(ctx, id, view.ModeControl, 0)
	if err != nil {
		s.log.ErrorContext(ctx, "mint embed link", "session", id, "err", err)
		return "", ""
	}
	v, err := s.opts.View.Link(ctx, id, view.ModeView, 0)
	if err != nil {
		s.log.ErrorContext(ctx, "mint view link", "session", id, "err", err)
		return c.URL, ""
	}
	return c.URL, v.URL
}

// noView answers the live view's routes on a fleet without one.
var noView = &apiError{status: http.StatusNotFound, code: apitype.CodeNotFound, msg: "this fleet has no live view"}

// viewRoute serves one of the live view's own routes (the page, its
// WebSocket, its control, its assets); the embed token in the URL is
// their gate, and their refusals are classified as every route's.
func (s *Server) viewRoute(pattern string) handler {
	if s.opts.View == nil {
		return func(http.ResponseWriter, *http.Request) error { return noView }
	}
	h, ok := s.opts.View.Routes()[pattern]
	if !ok {
		panic("api: the live view has no route " + pattern)
	}
	return handler(h)
}

// handleEmbedToken serves POST /sessions/{id}/embed-token: 201 with a
// fresh link for an existing session.
func (s *Server) handleEmbedToken(w http.ResponseWriter, r *http.Request) error {
	if s.opts.View == nil {
		return noView
	}
	body, err := decode[apitype.EmbedToken](w, r, maxBody)
	if err != nil {
		return err
	}
	mode, err := view.ParseMode(body.Mode)
	if err != nil {
		return badRequest(apitype.CodeBadRequest, err.Error())
	}
	if body.TTLSeconds < 0 || body.TTLSeconds > int64(view.MaxTTL/time.Second) {
		return badRequest(apitype.CodeBadRequest, fmt.Sprintf("ttl_seconds %d: want 0 (the default) up to %d", body.TTLSeconds, int64(view.MaxTTL/time.Second)))
	}
	se, err := s.sessions.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	link, err := s.opts.View.Link(r.Context(), se.ID, mode, time.Duration(body.TTLSeconds)*time.Second)
	if err != nil {
		return badRequest(apitype.CodeBadRequest, err.Error())
	}
	w.Header().Set("Cache-Control", "no-store")
	encode(w, http.StatusCreated, apitype.EmbedLink{URL: link.URL, Token: link.Token, Mode: string(link.Mode), ExpiresAt: link.ExpiresAt})
	return nil
}

// handleRevokeEmbedTokens serves POST /sessions/{id}/embed-tokens/revoke:
// every embed token minted for the session so far is refused from now on
// (across restarts: the generation is stored), its open views are closed
// at once, and the audit log says so.
func (s *Server) handleRevokeEmbedTokens(w http.ResponseWriter, r *http.Request) error {
	if s.opts.View == nil {
		return &apiError{status: http.StatusNotFound, code: apitype.CodeNotFound, msg: "this fleet has no live view"}
	}
	se, err := s.sessions.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	gen, closed, err := s.opts.View.Revoke(r.Context(), se.ID)
	if err != nil {
		return err
	}
	if s.opts.Audit != nil {
		_, err := s.opts.Audit.Append(r.Context(), audit.Entry{Session: se.ID, Kind: audit.KindView,
			Detail: map[string]any{"event": "revoke", "generation": gen, "closed_views": closed}})
		if err != nil {
			s.log.ErrorContext(r.Context(), "audit revocation", "session", se.ID, "err", err)
		}
	}
	encode(w, http.StatusOK, apitype.EmbedRevocation{SessionID: se.ID, Generation: gen, ClosedViews: closed})
	return nil
}
