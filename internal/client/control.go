package client

import (
	"context"
	"net/http"
	"net/url"

	"atelier/internal/apitype"
	"atelier/internal/control"
)

// Control reports who holds a session's control and where its task stands.
func (c *Client) Control(ctx context.Context, id string) (control.State, error) {
	var st control.State
	return st, c.call(ctx, http.MethodGet, "/sessions/"+url.PathEscape(id)+"/control", nil, nil, &st, http.StatusOK)
}

// TakeOver takes a session's control for a person: a running task pauses
// after its action in flight. The lease's ID must accompany input actions
// (ActWithLease) and the hand-back.
func (c *Client) TakeOver(ctx context.Context, id string) (control.Lease, error) {
	var l control.Lease
	return l, c.call(ctx, http.MethodPost, "/sessions/"+url.PathEscape(id)+"/takeover", nil, nil, &l, http.StatusOK)
}

// HandBack ends a person's lease (lease may be empty to answer a task that
// asked for help) with an optional message for the task.
func (c *Client) HandBack(ctx context.Context, id, lease, message string) (control.State, error) {
	var st control.State
	return st, c.call(ctx, http.MethodPost, "/sessions/"+url.PathEscape(id)+"/handback", nil,
		apitype.Handback{LeaseID: lease, Message: message}, &st, http.StatusOK)
}
