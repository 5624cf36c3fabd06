package view

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// Link mints a token for session in mode and returns the viewer page's
// URL carrying it; ttl 0 means Options.DefaultTTL. The session JSON's
// embed_url is Link(id, ModeControl, 0).URL and its view_url
// Link(id, ModeView, 0).URL, minted afresh for every response.
func (h *Handler) Link(session string, mode Mode, ttl time.Duration) (Link, error) {
	if ttl == 0 {
		ttl = h.opts.DefaultTTL
	}
	tok, exp, err := h.tokens.Mint(session, mode, ttl)
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
	req, err := decodeMint(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	link, err := h.Link(r.PathValue("id"), req.Mode, time.Duration(req.TTLSeconds)*time.Second)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(link)
}

func decodeMint(body io.Reader) (MintRequest, error) {
	var req MintRequest
	dec := json.NewDecoder(io.LimitReader(body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("body: %v; want {\"mode\": \"view\"|\"control\", \"ttl_seconds\": N}", err)
	}
	if dec.More() {
		return req, errors.New("body: one JSON object only")
	}
	if _, err := ParseMode(string(req.Mode)); err != nil {
		return req, err
	}
	if req.TTLSeconds < 0 || req.TTLSeconds > int64(MaxTTL/time.Second) {
		return req, fmt.Errorf("ttl_seconds %d: want 0 (default) to %d", req.TTLSeconds, int64(MaxTTL/time.Second))
	}
	return req, nil
}
