package client

import (
	"context"
	"net/http"
	"net/url"

	"atelier/internal/apitype"
)

// Control reports who holds a session's control and where its task stands.
func (c *Client) Control(ctx context.Context, id string) (apitype.ControlState, error) {
	var st apitype.ControlState
	return st, c.call(ctx, http.MethodGet, "/sessions/"+url.PathEscape(id)+"/control", nil, nil, &st, http.StatusOK)
}

// TakeOver takes a session's control for a person: a running task pauses
// after its action in flight. The lease's ID must accompany input actions
// (ActWithLease) and the hand-back.
func (c *Client) TakeOver(ctx context.Context, id string) (apitype.Lease, error) {
	var l apitype.Lease
	return l, c.call(ctx, http.MethodPost, "/sessions/"+url.PathEscape(id)+"/takeover", nil, nil, &l, http.StatusOK)
}

// HandBack ends a person's lease (lease may be empty to answer a task that
// asked for help) with an optional message for the task.
func (c *Client) HandBack(ctx context.Context, id, lease, message string) (apitype.ControlState, error) {
	var st apitype.ControlState
	return st, c.call(ctx, http.MethodPost, "/sessions/"+url.PathEscape(id)+"/handback", nil,
		apitype.Handback{LeaseID: lease, Message: message}, &st, http.StatusOK)
}

// embedControlPath is the live view's control route, gated by the embed
// token in its query (as the viewer page sends it).
func embedControlPath(id string) string { return "/sessions/" + url.PathEscape(id) + "/embed/control" }

// EmbedControl reports a session's control as the live view's page sees
// it, with an embed token of either mode.
func (c *Client) EmbedControl(ctx context.Context, id, token string) (apitype.ControlState, error) {
	var st apitype.ControlState
	return st, c.call(ctx, http.MethodGet, embedControlPath(id), url.Values{"token": {token}}, nil, &st, http.StatusOK)
}

// EmbedTakeOver takes control as the live view's page does, for the
// viewer with id viewer, with a control token.
func (c *Client) EmbedTakeOver(ctx context.Context, id, token, viewer string) (apitype.Lease, error) {
	var l apitype.Lease
	req := apitype.EmbedControl{Action: apitype.EmbedTakeOver, Viewer: viewer}
	return l, c.call(ctx, http.MethodPost, embedControlPath(id), url.Values{"token": {token}}, req, &l, http.StatusOK)
}

// EmbedHandBack hands control back as the live view's page does, with a
// control token.
func (c *Client) EmbedHandBack(ctx context.Context, id, token, lease, message string) (apitype.ControlState, error) {
	var st apitype.ControlState
	req := apitype.EmbedControl{Action: apitype.EmbedHandBack, LeaseID: lease, Message: message}
	return st, c.call(ctx, http.MethodPost, embedControlPath(id), url.Values{"token": {token}}, req, &st, http.StatusOK)
}
