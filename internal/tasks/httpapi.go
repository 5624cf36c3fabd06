package tasks

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"atelier/internal/control"
)

// The handlers below serve the task routes of the fleet API (DESIGN §5).
// Each is mounted with one line; the path values they read are named in
// their doc comments:
//
//	mux.Handle("POST /sessions/{id}/task", tasks.SubmitHandler(m))
//	mux.Handle("GET /sessions/{id}/tasks", tasks.ListHandler(m))
//	mux.Handle("GET /tasks/{id}", tasks.GetHandler(m))
//	mux.Handle("GET /tasks/{id}/stream", tasks.StreamHandler(m))
//	mux.Handle("POST /tasks/{id}/cancel", tasks.CancelHandler(m))
//	mux.Handle("GET /tasks/{id}/steps/{step}/screenshot", tasks.ScreenshotHandler(m))

// maxBodyBytes bounds a task request body (a script can be long).
const maxBodyBytes = 1 << 20

// SubmitResponse is the 202 body of POST /sessions/{id}/task.
type SubmitResponse struct {
	TaskID    string `json:"task_id"`
	Status    Status `json:"status"`
	StreamURL string `json:"stream_url"`
}

// SubmitHandler serves POST /sessions/{id}/task: 202 with a SubmitResponse,
// 409 task_running while the session runs a task, 409 model_unpriced for a
// model without a price while a cap is set (the same spec runs without
// one), 400 for a bad spec, 404 without a running desktop.
func SubmitHandler(m *Manager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var spec Spec
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", "task body: "+err.Error())
			return
		}
		if dec.More() {
			writeError(w, http.StatusBadRequest, "bad_request", "task body: trailing data after the JSON object")
			return
		}
		t, err := m.Submit(r.Context(), r.PathValue("id"), spec)
		if err != nil {
			m.writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, SubmitResponse{TaskID: t.ID, Status: t.Status, StreamURL: "/tasks/" + t.ID + "/stream"})
	})
}

// GetHandler serves GET /tasks/{id}: the task with its events.
func GetHandler(m *Manager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, err := m.Get(r.Context(), r.PathValue("id"))
		if err != nil {
			m.writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, t)
	})
}

// ListHandler serves GET /sessions/{id}/tasks: {"tasks": [...]}, newest first.
func ListHandler(m *Manager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts, err := m.List(r.Context(), r.PathValue("id"))
		if err != nil {
			m.writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string][]Task{"tasks": ts})
	})
}

// CancelHandler serves POST /tasks/{id}/cancel: 202 once the cancel is
// under way, 409 task_ended if the task already ended.
func CancelHandler(m *Manager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := m.Cancel(r.Context(), id); err != nil {
			m.writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"task_id": id, "status": "cancelling"})
	})
}

// StreamHandler serves GET /tasks/{id}/stream as Server-Sent Events: the
// events so far (after Last-Event-ID, if sent), then live ones, ending
// after the final event. A comment line every 15s keeps proxies from
// closing an idle stream.
func StreamHandler(m *Manager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		after := 0
		if h := r.Header.Get("Last-Event-ID"); h != "" {
			n, err := strconv.Atoi(strings.TrimSpace(h))
			if err != nil || n < 0 {
				writeError(w, http.StatusBadRequest, "bad_request", "Last-Event-ID must be a non-negative event id")
				return
			}
			after = n
		}
		evs, err := m.Subscribe(r.Context(), r.PathValue("id"), after)
		if err != nil {
			m.writeErr(w, err)
			return
		}
		rc := http.NewResponseController(w)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		rc.Flush()
		keepalive := time.NewTicker(15 * time.Second)
		defer keepalive.Stop()
		for {
			select {
			case ev, ok := <-evs:
				if !ok {
					return
				}
				if WriteSSE(w, ev) != nil || rc.Flush() != nil {
					return
				}
			case <-keepalive.C:
				if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
					return
				}
			}
		}
	})
}

// ScreenshotHandler serves GET /tasks/{id}/steps/{step}/screenshot: the
// image the model saw at that step, while retention keeps it.
func ScreenshotHandler(m *Manager) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		step, err := strconv.Atoi(r.PathValue("step"))
		if err != nil {
			writeError(w, http.StatusNotFound, "not_found", "no such step")
			return
		}
		path, err := m.ScreenshotPath(r.PathValue("id"), step)
		if err != nil {
			writeError(w, http.StatusNotFound, "not_found", "no screenshot for this step (never taken, or past retention)")
			return
		}
		w.Header().Set("Cache-Control", "private, max-age=86400")
		http.ServeFile(w, r, path)
	})
}

// writeErr maps a domain error to its status and code; details of an
// internal error go to the log, not the client.
func (m *Manager) writeErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrBusy):
		writeError(w, http.StatusConflict, "task_running", err.Error())
	case errors.Is(err, control.ErrHeld):
		he, ok := errors.AsType[*control.HeldError](err)
		if !ok {
			writeError(w, http.StatusConflict, "control_held", err.Error())
			return
		}
		writeJSON(w, http.StatusConflict, map[string]any{"error": map[string]any{"code": "control_held", "message": err.Error(), "holder": he.Holder}})
	case errors.Is(err, ErrUnpriced):
		writeError(w, http.StatusConflict, "model_unpriced", err.Error())
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, ErrNoDesktop):
		writeError(w, http.StatusNotFound, "session_not_running", err.Error())
	case errors.Is(err, ErrNotRunning):
		writeError(w, http.StatusConflict, "task_ended", err.Error())
	default:
		m.log.Error("task request", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error; see the fleet log")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
