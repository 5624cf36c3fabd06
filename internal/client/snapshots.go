package client

import (
	"context"
	"net/http"
	"net/url"

	"atelier/internal/apitype"
)

// TakeSnapshot snapshots a session's home.
func (c *Client) TakeSnapshot(ctx context.Context, sessionID string) (apitype.Snapshot, error) {
	var s apitype.Snapshot
	return s, c.call(ctx, http.MethodPost, "/sessions/"+url.PathEscape(sessionID)+"/snapshot", nil, nil, &s, http.StatusCreated)
}

// Snapshots lists every snapshot.
func (c *Client) Snapshots(ctx context.Context) ([]apitype.Snapshot, error) {
	var l apitype.SnapshotList
	return l.Snapshots, c.call(ctx, http.MethodGet, "/snapshots", nil, nil, &l, http.StatusOK)
}

// DeleteSnapshot removes a snapshot.
func (c *Client) DeleteSnapshot(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, "/snapshots/"+url.PathEscape(id), nil, nil, nil, http.StatusNoContent)
}

// EmbedLink mints a live-view link for a session: mode is view or
// control; ttlSeconds 0 means the fleet's default lifetime.
func (c *Client) EmbedLink(ctx context.Context, sessionID, mode string, ttlSeconds int64) (apitype.EmbedLink, error) {
	var l apitype.EmbedLink
	req := apitype.EmbedToken{Mode: mode, TTLSeconds: ttlSeconds}
	return l, c.call(ctx, http.MethodPost, "/sessions/"+url.PathEscape(sessionID)+"/embed-token", nil, req, &l, http.StatusCreated)
}

// RevokeEmbedTokens refuses every embed token minted so far for a
// session, and closes its open live views.
func (c *Client) RevokeEmbedTokens(ctx context.Context, sessionID string) (apitype.EmbedRevocation, error) {
	var rv apitype.EmbedRevocation
	return rv, c.call(ctx, http.MethodPost, "/sessions/"+url.PathEscape(sessionID)+"/embed-tokens/revoke", nil, nil, &rv, http.StatusOK)
}
