package view

import (
	"context"
	"fmt"
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
