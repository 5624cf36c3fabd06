package view

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Generations keeps each session's embed token generation; revoking moves
// it on, and every token minted before is refused from then on. The
// fleet's store satisfies it, so revocation survives a restart.
type Generations interface {
	EmbedGeneration(ctx context.Context, session string) (uint64, error)
	RevokeEmbedTokens(ctx context.Context, session string, now time.Time) (uint64, error)
}

// Why an open view is closed by the fleet, as its WebSocket close reason.
var (
	errViewExpired = errors.New("embed token expired")
	errViewRevoked = errors.New("embed tokens revoked")
)

// generation returns session's token generation; 0 without Generations.
func (h *Handler) generation(ctx context.Context, session string) (uint64, error) {
	if h.opts.Generations == nil {
		return 0, nil
	}
	return h.opts.Generations.EmbedGeneration(ctx, session)
}

// verify checks the request's token for session at its current
// generation. A session the fleet does not know has no valid token.
func (h *Handler) verify(r *http.Request, session string, want Mode) (Claims, error) {
	tok := r.URL.Query().Get("token")
	if tok == "" {
		return Claims{}, ErrNoToken
	}
	gen, err := h.generation(r.Context(), session)
	if err != nil {
		h.log.InfoContext(r.Context(), "view: no token generation", "session", session, "err", err)
		return Claims{}, ErrBadToken
	}
	return h.tokens.Verify(tok, session, gen, want)
}

// openView is a live view in progress, for its session's limit and for
// closing it at revocation.
type openView struct {
	gen   uint64
	close context.CancelCauseFunc
}

// OpenViews returns how many live views are open, over all sessions.
func (h *Handler) OpenViews() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, vs := range h.views {
		n += len(vs)
	}
	return n
}

// ErrTooManyViews refuses a view past Options.MaxViews (429 too_many_streams).
var ErrTooManyViews = errors.New("too many live views of this session")

// open registers a view of session at generation gen, unless the session
// has MaxViews open already or gen was revoked meanwhile.
func (h *Handler) open(session string, v *openView) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	views := h.views[session]
	if h.opts.MaxViews > 0 && len(views) >= h.opts.MaxViews {
		return fmt.Errorf("%w: %d open; close one, or revoke the session's links", ErrTooManyViews, len(views))
	}
	if v.gen < h.revoked[session] {
		return errViewRevoked
	}
	if views == nil {
		views = map[*openView]struct{}{}
		h.views[session] = views
	}
	views[v] = struct{}{}
	return nil
}

// closed unregisters a view.
func (h *Handler) closed(session string, v *openView) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.views[session], v)
	if len(h.views[session]) == 0 {
		delete(h.views, session)
	}
}

// Revoke refuses every embed token of session minted so far, links and
// open views alike: the views are closed at once. It returns the new
// generation and how many views it closed. The caller checks that the
// session exists.
func (h *Handler) Revoke(ctx context.Context, session string) (gen uint64, closedViews int, err error) {
	if h.opts.Generations == nil {
		return 0, 0, errors.New("view: this fleet cannot revoke embed tokens")
	}
	gen, err = h.opts.Generations.RevokeEmbedTokens(ctx, session, time.Now())
	if err != nil {
		return 0, 0, err
	}
	h.mu.Lock()
	h.revoked[session] = max(h.revoked[session], gen)
	for v := range h.views[session] {
		if v.gen < gen {
			v.close(errViewRevoked)
			// A closing view no longer counts: the session's limit must
			// not refuse a view opened with a fresh link meanwhile.
			delete(h.views[session], v)
			closedViews++
		}
	}
	h.mu.Unlock()
	h.log.InfoContext(ctx, "embed tokens revoked", "session", session, "generation", gen, "closed_views", closedViews)
	return gen, closedViews, nil
}
