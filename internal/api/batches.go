package api

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/batches"
)

// batchList is how many batches GET /batches reports, newest first.
const batchList = 50

func (s *Server) batchManager() (*batches.Manager, error) {
	if s.opts.Batches == nil {
		return nil, &apiError{status: http.StatusServiceUnavailable, code: apitype.CodeUnavailable, msg: "this fleet runs no tasks"}
	}
	return s.opts.Batches, nil
}

// handleDispatch serves POST /tasks: one task per selected session; 201
// with each session's outcome, even when none could start.
func (s *Server) handleDispatch(w http.ResponseWriter, r *http.Request) error {
	m, err := s.batchManager()
	if err != nil {
		return err
	}
	body, err := decode[apitype.Dispatch](w, r, maxTaskBody)
	if err != nil {
		return err
	}
	spec, err := taskSpec(body.TaskSpec)
	if err != nil {
		return err
	}
	b, err := m.Dispatch(r.Context(), batches.Selection{SessionIDs: body.SessionIDs, Label: body.Label}, spec)
	if err != nil {
		return err
	}
	encode(w, http.StatusCreated, batchToAPI(b))
	return nil
}

// handleGetBatch serves GET /batches/{id}.
func (s *Server) handleGetBatch(w http.ResponseWriter, r *http.Request) error {
	m, err := s.batchManager()
	if err != nil {
		return err
	}
	b, err := m.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, batchToAPI(b))
	return nil
}

// handleListBatches serves GET /batches, newest first.
func (s *Server) handleListBatches(w http.ResponseWriter, r *http.Request) error {
	m, err := s.batchManager()
	if err != nil {
		return err
	}
	bs, err := m.List(r.Context(), batchList)
	if err != nil {
		return err
	}
	out := apitype.BatchList{Batches: make([]apitype.Batch, 0, len(bs))}
	for _, b := range bs {
		out.Batches = append(out.Batches, batchToAPI(b))
	}
	encode(w, http.StatusOK, out)
	return nil
}

// handleBatchEvents serves GET /batches/{id}/events as Server-Sent Events:
// every member task's events from the first, merged ("task"), then the
// batch as it ended ("end").
func (s *Server) handleBatchEvents(w http.ResponseWriter, r *http.Request) error {
	m, err := s.batchManager()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	evs, err := m.Follow(r.Context(), id)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	startSSE(w, rc)
	n := 0
	ended := pump(w, rc, evs, func(ev batches.Event) error {
		te := eventToAPI(ev.Event)
		n++
		return apitype.WriteSSE(w, strconv.Itoa(n), apitype.BatchEventTask, apitype.BatchEvent{SessionID: ev.SessionID, TaskID: ev.TaskID, Event: &te})
	})
	if !ended || r.Context().Err() != nil {
		return nil
	}
	b, err := m.Get(r.Context(), id)
	if err != nil {
		s.log.ErrorContext(r.Context(), "batch stream: read the batch", "batch", id, "err", err)
		return nil
	}
	out := batchToAPI(b)
	apitype.WriteSSE(w, strconv.Itoa(n+1), apitype.BatchEventEnd, apitype.BatchEvent{Batch: &out})
	rc.Flush()
	return nil
}

// startSSE writes the headers of an event stream.
func startSSE(w http.ResponseWriter, rc *http.ResponseController) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
}

// pump writes each value of evs with write, and a comment line while
// idle so proxies keep the stream open, until evs closes (true) or the
// client is gone (false).
func pump[T any](w http.ResponseWriter, rc *http.ResponseController, evs <-chan T, write func(T) error) bool {
	tick := time.NewTicker(keepalive)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				return true
			}
			if write(ev) != nil || rc.Flush() != nil {
				return false
			}
		case <-tick.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return false
			}
		}
	}
}

func batchToAPI(b batches.Batch) apitype.Batch {
	out := apitype.Batch{ID: b.ID, Goal: b.Goal, Selector: b.Selector, CreatedAt: b.CreatedAt, Live: b.Live(),
		Counts: map[string]int{}, Members: make([]apitype.BatchMember, 0, len(b.Members))}
	for _, mb := range b.Members {
		am := apitype.BatchMember{SessionID: mb.SessionID, Outcome: mb.Outcome, Message: mb.Message}
		where := mb.Outcome
		if mb.Task != nil {
			t := taskToAPI(*mb.Task)
			am.Task, where = &t, string(t.Status)
		}
		if mb.LastStep != nil {
			ev := eventToAPI(*mb.LastStep)
			am.LastStep = &ev
		}
		out.Counts[where]++
		out.Members = append(out.Members, am)
	}
	return out
}
