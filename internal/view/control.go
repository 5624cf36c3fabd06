package view

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"atelier/internal/apitype"
	"atelier/internal/control"
)

// Control is the sessions' control lease, as the live view uses it.
// *control.Leases satisfies it.
type Control interface {
	Act(session string, c control.Claim) (done func(), err error)
	TakeOver(ctx context.Context, session, who, viewer string) (control.Lease, error)
	HandBack(session, by, leaseID, message string) (control.Change, error)
	State(session string) control.State
}

// viewerActor is who takes control through a viewer, in the audit log's
// actor form viewer:<mode>.
const viewerActor = "viewer:" + string(ModeControl)

// maxViewerID bounds a viewer id (the page sends a UUID, 36 characters).
const maxViewerID = 64

// errBadViewer refuses a malformed viewer id (code bad_viewer).
var errBadViewer = errors.New("viewer: want 1 to 64 characters of A-Z, a-z, 0-9, _ and -")

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

// Actions of POST /sessions/{id}/embed/control.
const (
	actionTakeOver = "takeover"
	actionHandBack = "handback"
)

// controlRequest is the body of POST /sessions/{id}/embed/control:
// {"action":"takeover","viewer":id} or {"action":"handback","lease_id":id,
// "message":text}.
type controlRequest struct {
	Action  string `json:"action"`
	Viewer  string `json:"viewer"`
	LeaseID string `json:"lease_id"`
	Message string `json:"message"`
}

// maxControlBody bounds a control request; the hand-back message is most
// of it.
const maxControlBody = 8 << 10

func (req controlRequest) check() error {
	switch req.Action {
	case actionTakeOver:
		if !validViewer(req.Viewer) {
			return errBadViewer
		}
		if req.LeaseID != "" || req.Message != "" {
			return errors.New("takeover: lease_id and message belong to a handback")
		}
	case actionHandBack:
		if req.Viewer != "" {
			return errors.New("handback: name the lease (lease_id), not the viewer")
		}
	default:
		return errors.New(`action: want "takeover" or "handback"`)
	}
	return nil
}

// serveControlState serves GET /sessions/{id}/embed/control: the
// session's control.State, for a view or control token.
func (h *Handler) serveControlState(w http.ResponseWriter, r *http.Request) {
	if id, ctl := h.controlGate(w, r, ModeView); ctl != nil {
		writeJSON(w, http.StatusOK, ctl.State(id))
	}
}

// serveControlAction serves POST /sessions/{id}/embed/control for a
// control token: a takeover answers with the control.Lease, a handback
// with the new control.State.
func (h *Handler) serveControlAction(w http.ResponseWriter, r *http.Request) {
	id, ctl := h.controlGate(w, r, ModeControl)
	if ctl == nil {
		return
	}
	var req controlRequest
	if err := decodeBody(w, r, maxControlBody, &req); err != nil {
		badBody(w, err)
		return
	}
	if err := req.check(); err != nil {
		code := codeBadRequest
		if errors.Is(err, errBadViewer) {
			code = codeBadViewer
		}
		writeError(w, http.StatusBadRequest, code, err.Error())
		return
	}
	if req.Action == actionTakeOver {
		lease, err := ctl.TakeOver(r.Context(), id, viewerActor, req.Viewer)
		if err != nil {
			controlError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, lease)
		return
	}
	if _, err := ctl.HandBack(id, viewerActor, req.LeaseID, req.Message); err != nil {
		controlError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ctl.State(id))
}

// controlGate checks a control route's request: its token grants want,
// a POST comes from the fleet's own origin, and the fleet has a control
// lease. It answers a refusal itself and returns a nil Control.
func (h *Handler) controlGate(w http.ResponseWriter, r *http.Request, want Mode) (string, Control) {
	id := r.PathValue("id")
	w.Header().Set("Cache-Control", "no-store")
	if _, err := h.verify(r, id, want); err != nil {
		h.deny(w, r, err)
		return id, nil
	}
	if r.Method == http.MethodPost && !sameOrigin(r) {
		h.log.Info("control refused: cross-origin", "session", id, "origin", r.Header.Get("Origin"))
		writeError(w, http.StatusForbidden, "bad_origin", "control requests must come from the viewer's own origin")
		return id, nil
	}
	if h.opts.Control == nil {
		writeError(w, http.StatusNotFound, "not_found", "this fleet has no control lease")
		return id, nil
	}
	return id, h.opts.Control
}

// controlError answers a refused takeover or handback.
func controlError(w http.ResponseWriter, err error) {
	if held, ok := errors.AsType[*control.HeldError](err); ok {
		h := held.Holder
		writeErrorDetail(w, http.StatusConflict, apitype.ErrorDetail{Code: apitype.CodeControlHeld, Message: err.Error(),
			Holder: &apitype.Holder{Kind: string(h.Kind), Who: h.Who, Since: h.Since}})
		return
	}
	// The codes are the fleet API's, so a page and a script read the same.
	switch {
	case errors.Is(err, control.ErrBadMessage):
		writeError(w, http.StatusBadRequest, apitype.CodeBadRequest, err.Error())
	case errors.Is(err, control.ErrNoLease):
		writeError(w, http.StatusConflict, apitype.CodeBadLease, err.Error())
	case errors.Is(err, control.ErrNothingHeld):
		writeError(w, http.StatusConflict, apitype.CodeNothingHeld, err.Error())
	default:
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
	}
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
