package view

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"atelier/internal/apitype"
	"atelier/internal/control"
)

// Control is the sessions' control lease, as the live view's control
// routes use it. *control.Leases satisfies it.
type Control interface {
	TakeOver(ctx context.Context, session, who, viewer string) (control.Lease, error)
	HandBack(session, by, leaseID, message string) (control.Change, error)
	State(session string) control.State
}

// Admitter admits one input event on a session for a claim: the lease
// step every input path shares. *sessions.Manager (and
// sessions.Admission) satisfy it.
type Admitter interface {
	AdmitInput(session string, claim control.Claim) (done func(), err error)
}

// viewerActor is who takes control through a viewer, in the audit log's
// actor form viewer:<mode>.
const viewerActor = "viewer:" + string(ModeControl)

// maxViewerID bounds a viewer id (the page sends a UUID, 36 characters).
const maxViewerID = 64

// validViewer reports whether id is a well-formed viewer id.
func validViewer(id string) bool {
	if id == "" || len(id) > maxViewerID {
		return false
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// maxControlBody bounds a control request; the hand-back message is most
// of it.
const maxControlBody = 8 << 10

// checkControl refuses a control request that is malformed for its action.
func checkControl(req apitype.EmbedControl) error {
	switch req.Action {
	case apitype.EmbedTakeOver:
		if !validViewer(req.Viewer) {
			return ErrBadViewer
		}
		if req.LeaseID != "" || req.Message != "" {
			return fmt.Errorf("%w: takeover: lease_id and message belong to a handback", ErrBadRequest)
		}
	case apitype.EmbedHandBack:
		if req.Viewer != "" {
			return fmt.Errorf("%w: handback: name the lease (lease_id), not the viewer", ErrBadRequest)
		}
	default:
		return fmt.Errorf(`%w: action: want "takeover" or "handback"`, ErrBadRequest)
	}
	return nil
}

// serveControlState serves GET /sessions/{id}/embed/control: the
// session's control state, for a view or control token.
func (h *Handler) serveControlState(w http.ResponseWriter, r *http.Request) error {
	id, ctl, err := h.controlGate(w, r, ModeView)
	if err != nil || ctl == nil {
		return err
	}
	writeJSON(w, http.StatusOK, ctl.State(id).API())
	return nil
}

// serveControlAction serves POST /sessions/{id}/embed/control for a
// control token: a takeover answers with the lease, a handback with the
// new control state.
func (h *Handler) serveControlAction(w http.ResponseWriter, r *http.Request) error {
	id, ctl, err := h.controlGate(w, r, ModeControl)
	if err != nil || ctl == nil {
		return err
	}
	var req apitype.EmbedControl
	if err := decodeBody(w, r, maxControlBody, &req); err != nil {
		return err
	}
	if err := checkControl(req); err != nil {
		return err
	}
	if req.Action == apitype.EmbedTakeOver {
		lease, err := ctl.TakeOver(r.Context(), id, viewerActor, req.Viewer)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, lease.API())
		return nil
	}
	if _, err := ctl.HandBack(id, viewerActor, req.LeaseID, req.Message); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ctl.State(id).API())
	return nil
}

// controlGate checks a control route's request: its token grants want,
// a POST comes from the fleet's own origin, and the fleet has a control
// lease. A nil Control with a nil error means a browser was answered
// with the refusal page.
func (h *Handler) controlGate(w http.ResponseWriter, r *http.Request, want Mode) (string, Control, error) {
	id := r.PathValue("id")
	w.Header().Set("Cache-Control", "no-store")
	if _, err := h.verify(r, id, want); err != nil {
		return id, nil, h.deny(w, r, err)
	}
	if r.Method == http.MethodPost && !sameOrigin(r) {
		h.log.InfoContext(r.Context(), "control refused: cross-origin", "session", id, "origin", r.Header.Get("Origin"))
		return id, nil, ErrBadOrigin
	}
	if h.opts.Control == nil {
		return id, nil, ErrNoControl
	}
	return id, h.opts.Control, nil
}

// sameOrigin reports whether a browser sent r from the fleet's own
// origin, as the WebSocket's check decides it (by host). A request with no
// Origin is not a browser's and passes: the token is the gate.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}
