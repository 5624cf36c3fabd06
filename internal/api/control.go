package api

import (
	"errors"
	"net/http"

	"atelier/internal/apitype"
	"atelier/internal/audit"
	"atelier/internal/control"
)

// controlLeases returns the fleet's control leases, or the error a route
// answers without them.
func (s *Server) controlLeases() (*control.Leases, error) {
	if s.opts.Control == nil {
		return nil, &apiError{status: http.StatusNotFound, code: apitype.CodeNotFound, msg: "this fleet has no control leases"}
	}
	return s.opts.Control, nil
}

// handleControl serves GET /sessions/{id}/control: who holds the session's
// control and where its task stands.
func (s *Server) handleControl(w http.ResponseWriter, r *http.Request) error {
	leases, err := s.controlLeases()
	if err != nil {
		return err
	}
	se, err := s.sessions.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	encode(w, http.StatusOK, leases.State(se.ID).API())
	return nil
}

// handleTakeover serves POST /sessions/{id}/takeover: 200 with a person's
// lease once the task holding the session (if any) has finished its action
// in flight and paused; 409 control_held if another person holds it.
func (s *Server) handleTakeover(w http.ResponseWriter, r *http.Request) error {
	leases, err := s.controlLeases()
	if err != nil {
		return err
	}
	if _, err := decode[struct{}](w, r, maxBody); err != nil {
		return err
	}
	se, err := s.sessions.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	lease, err := leases.TakeOver(r.Context(), se.ID, audit.ActorFrom(r.Context()), "")
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	encode(w, http.StatusOK, lease.API())
	return nil
}

// handleHandback serves POST /sessions/{id}/handback {"lease_id",
// "message"}: the lease ends and the session's task resumes, hearing the
// message (the answer, if it asked for help). 200 with the new state.
func (s *Server) handleHandback(w http.ResponseWriter, r *http.Request) error {
	leases, err := s.controlLeases()
	if err != nil {
		return err
	}
	body, err := decode[apitype.Handback](w, r, maxBody)
	if err != nil {
		return err
	}
	lease := body.LeaseID
	if h := r.Header.Get(apitype.HeaderLease); h != "" {
		if lease != "" && lease != h {
			return badRequest(apitype.CodeBadRequest, "lease_id and the "+apitype.HeaderLease+" header name different leases")
		}
		lease = h
	}
	se, err := s.sessions.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if _, err := leases.HandBack(se.ID, audit.ActorFrom(r.Context()), lease, body.Message); err != nil {
		return err
	}
	encode(w, http.StatusOK, leases.State(se.ID).API())
	return nil
}

// holderOf returns who holds control when err is a refusal for that.
func holderOf(err error) *apitype.Holder {
	he, ok := errors.AsType[*control.HeldError](err)
	if !ok {
		return nil
	}
	h := he.Holder.API()
	return &h
}
