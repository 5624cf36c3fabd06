package view

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Link is a freshly minted viewer link.
type Link struct {
	URL       string    `json:"url"`
	Token     string    `json:"token"`
	Mode      Mode      `json:"mode"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Link mints a token for session's current token generation in mode and
// returns the viewer page's URL carrying it; ttl 0 means
// Options.DefaultTTL. The session JSON's embed_url is Link(ctx, id,
// ModeControl, 0).URL and its view_url Link(ctx, id, ModeView, 0).URL,
// minted afresh for every response.
func (h *Handler) Link(ctx context.Context, session string, mode Mode, ttl time.Duration) (Link, error) {
	if ttl == 0 {
		ttl = h.opts.DefaultTTL
	}
	gen, err := h.generation(ctx, session)
	if err != nil {
		return Link{}, fmt.Errorf("mint: %w", err)
	}
	tok, exp, err := h.tokens.Mint(session, gen, mode, ttl)
	if err != nil {
		return Link{}, err
	}
	u := h.opts.PublicURL + "/sessions/" + url.PathEscape(session) + "/embed?token=" + tok
	return Link{URL: u, Token: tok, Mode: mode, ExpiresAt: exp}, nil
}

// MintRequest is the body of POST /sessions/{id}/embed-token.
type MintRequest struct {
	Mode Mode `json:"mode"`
	// TTLSeconds is the link's lifetime; 0 means the default.
	TTLSeconds int64 `json:"ttl_seconds"`
}

// HandleMint serves POST /sessions/{id}/embed-token with a MintRequest body
// and answers 201 with a Link. It does not authenticate: mount it behind the
// API's bearer-token check, after checking that the session exists.
func (h *Handler) HandleMint(w http.ResponseWriter, r *http.Request) {
	var req MintRequest
	if err := decodeBody(w, r, 4<<10, &req); err != nil {
		badBody(w, fmt.Errorf("%w; want {\"mode\": \"view\"|\"control\", \"ttl_seconds\": N}", err))
		return
	}
	if err := req.check(); err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	link, err := h.Link(r.Context(), r.PathValue("id"), req.Mode, time.Duration(req.TTLSeconds)*time.Second)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeBadRequest, err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, link)
}

func (req MintRequest) check() error {
	if _, err := ParseMode(string(req.Mode)); err != nil {
		return err
	}
	if req.TTLSeconds < 0 || req.TTLSeconds > int64(MaxTTL/time.Second) {
		return fmt.Errorf("ttl_seconds %d: want 0 (default) to %d", req.TTLSeconds, int64(MaxTTL/time.Second))
	}
	return nil
}
