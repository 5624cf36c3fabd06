package view

import (
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
