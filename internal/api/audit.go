package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"

	"atelier/internal/apitype"
	"atelier/internal/audit"
)

// actorAPI is the audit actor of every request the API serves: it names
// the credential class, never the token itself.
const actorAPI = audit.ActorToken + "api"

// handleAudit serves GET /sessions/{id}/audit: the session's audit entries
// as JSONL, filtered by audit.ParseFilter's parameters; follow=1 keeps the
// response open and streams new entries. It stays readable after the
// session is deleted, until the log is purged.
func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Audit == nil {
		return &apiError{status: http.StatusServiceUnavailable, code: apitype.CodeUnavailable, msg: "this fleet keeps no audit log"}
	}
	id := r.PathValue("id")
	if err := audit.CheckSession(id); err != nil {
		return badRequest(apitype.CodeBadID, err.Error())
	}
	q := r.URL.Query()
	f, err := audit.ParseFilter(q)
	if err != nil {
		return badRequest(apitype.CodeBadRequest, err.Error())
	}
	follow := q.Get(audit.ParamFollow) == "1" || q.Get(audit.ParamFollow) == "true"
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	started := false
	write := func(e audit.Entry) error {
		if !started {
			w.Header().Set("Content-Type", "application/jsonl")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if err := enc.Encode(e); err != nil {
			return err
		}
		if follow {
			return rc.Flush()
		}
		return nil
	}
	if follow {
		// Follow waits for a log that does not exist yet; an unknown
		// session is a 404 instead.
		if _, err := os.Stat(s.opts.Audit.Path(id)); err != nil {
			return &apiError{status: http.StatusNotFound, code: apitype.CodeNotFound, msg: "no audit for session " + id}
		}
		release, err := s.stream(w, r)
		if err != nil {
			return err
		}
		defer release()
		w.Header().Set("Content-Type", "application/jsonl")
		w.WriteHeader(http.StatusOK)
		started = true
		if err := rc.Flush(); err != nil {
			return nil
		}
		err = s.opts.Audit.Follow(r.Context(), id, f, write)
		if err != nil && r.Context().Err() == nil {
			s.log.WarnContext(r.Context(), "audit follow ended", "session", id, "err", err)
		}
		return nil
	}
	for e, err := range s.opts.Audit.Read(r.Context(), id, f) {
		if err != nil {
			return s.auditErr(err, started)
		}
		if err := write(e); err != nil {
			return nil // the client left
		}
	}
	if !started {
		w.Header().Set("Content-Type", "application/jsonl")
		w.WriteHeader(http.StatusOK)
	}
	return nil
}

// auditErr maps a read error: before the first line it is the response;
// after, the status is sent and the error can only be logged.
func (s *Server) auditErr(err error, started bool) error {
	if !started {
		if errors.Is(err, audit.ErrNotFound) {
			return &apiError{status: http.StatusNotFound, code: apitype.CodeNotFound, msg: err.Error()}
		}
		return err
	}
	s.log.Error("audit read", "err", err)
	return nil
}
