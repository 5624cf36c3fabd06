package api

import (
	"net/http"

	"atelier/internal/apitype"
	"atelier/internal/store"
)

func snapshotToAPI(sn store.Snapshot) apitype.Snapshot {
	return apitype.Snapshot{ID: sn.ID, SessionID: sn.SessionID, Runtime: sn.Runtime, CreatedAt: sn.CreatedAt,
		Size: sn.Size, SHA256: sn.SHA256, Files: sn.Files, Image: sn.Image}
}

// noSnapshots answers the snapshot routes of a fleet built without them.
var noSnapshots = &apiError{status: http.StatusNotFound, code: apitype.CodeNotFound, msg: "this fleet keeps no snapshots"}

// handleTakeSnapshot serves POST /sessions/{id}/snapshot: 201 with the
// snapshot of the session's home.
func (s *Server) handleTakeSnapshot(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Snapshots == nil {
		return noSnapshots
	}
	se, err := s.sessions.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	sn, err := s.opts.Snapshots.Take(r.Context(), s.opts.Desktops, se.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/snapshots/"+sn.ID)
	encode(w, http.StatusCreated, snapshotToAPI(sn))
	return nil
}

// handleListSnapshots serves GET /snapshots.
func (s *Server) handleListSnapshots(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Snapshots == nil {
		return noSnapshots
	}
	list, err := s.opts.Snapshots.List(r.Context())
	if err != nil {
		return err
	}
	out := apitype.SnapshotList{Snapshots: make([]apitype.Snapshot, 0, len(list))}
	for _, sn := range list {
		out.Snapshots = append(out.Snapshots, snapshotToAPI(sn))
	}
	encode(w, http.StatusOK, out)
	return nil
}

// handleDeleteSnapshot serves DELETE /snapshots/{id}: 204, or 409 while a
// session is being created from it.
func (s *Server) handleDeleteSnapshot(w http.ResponseWriter, r *http.Request) error {
	if s.opts.Snapshots == nil {
		return noSnapshots
	}
	if err := s.opts.Snapshots.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
