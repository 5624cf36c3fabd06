package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
	"atelier/internal/audit"
	"atelier/internal/control"
	"atelier/internal/egress"
	"atelier/internal/sessions"
)

// Waiting for a desktop: the default and the most a request may ask for.
const (
	defaultWait = 60 * time.Second
	maxWait     = 10 * time.Minute
)

// toAPI shows a session as the API does, with live-view links minted
// afresh for this response.
func (s *Server) toAPI(ctx context.Context, se sessions.Session) apitype.Session {
	out := apitype.Session{
		ID: se.ID, SessionID: se.ID, Label: se.Label, Theme: se.Theme, Resolution: se.Resolution.String(),
		State: string(se.State), Desired: se.Desired, Reason: se.Reason, Detail: se.Detail, Runtime: se.Runtime, SnapshotID: se.SnapshotID,
		AgentVersion: se.AgentVersion, CreatedAt: se.CreatedAt, UpdatedAt: se.UpdatedAt,
	}
	out.Egress = apitype.Egress{Mode: string(se.Egress.Mode), Allow: se.Egress.Allow, Source: "fleet"}
	if se.EgressOwn {
		out.Egress.Source = "session"
	}
	if h := se.Home; h != nil {
		out.Home = &apitype.SessionHome{UsedBytes: h.Used, FreeBytes: h.Free, QuotaBytes: h.Quota}
	}
	out.EmbedURL, out.ViewURL = s.viewLinks(ctx, se.ID)
	return out
}

// waitParams reads ?wait=ready and &timeout= (a Go duration or seconds).
func waitParams(r *http.Request) (wait bool, timeout time.Duration, err error) {
	q := r.URL.Query()
	switch q.Get("wait") {
	case "":
	case "ready":
		wait = true
	default:
		return false, 0, badRequest(apitype.CodeBadRequest, fmt.Sprintf("wait=%q: the only value is ready", q.Get("wait")))
	}
	timeout = defaultWait
	if v := q.Get("timeout"); v != "" {
		d, derr := time.ParseDuration(v)
		if secs, serr := strconv.ParseFloat(v, 64); serr == nil {
			d, derr = time.Duration(secs*float64(time.Second)), nil
		}
		if derr != nil || d <= 0 || d > maxWait {
			return false, 0, badRequest(apitype.CodeBadRequest, fmt.Sprintf("timeout=%q: want a duration such as 30s, up to %v", v, maxWait))
		}
		timeout = d
	}
	return wait, timeout, nil
}

// handleCreateSession serves POST /sessions: 201 with the session; with
// ?wait=ready, once its desktop answers (504 not_ready after the timeout).
func (s *Server) handleCreateSession(w http.ResponseWriter, r *http.Request) error {
	wait, timeout, err := waitParams(r)
	if err != nil {
		return err
	}
	body, err := decode[apitype.CreateSession](w, r, maxBody)
	if err != nil {
		return err
	}
	o := sessions.CreateOptions{Label: body.Label, Theme: body.Theme, Resolution: body.Resolution, SnapshotID: body.SnapshotID}
	if e := body.Egress; e != nil {
		o.Egress = &egress.Policy{Mode: egress.Mode(e.Mode), Allow: e.Allow}
	}
	se, err := s.sessions.Create(r.Context(), o)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/sessions/"+se.ID)
	if wait {
		if se, err = s.sessions.WaitReady(r.Context(), se.ID, timeout); err != nil {
			return err
		}
	}
	encode(w, http.StatusCreated, s.toAPI(r.Context(), se))
	return nil
}

// handleListSessions serves GET /sessions.
func (s *Server) handleListSessions(w http.ResponseWriter, r *http.Request) error {
	list, err := s.sessions.List(r.Context())
	if err != nil {
		return err
	}
	out := apitype.SessionList{Sessions: make([]apitype.Session, 0, len(list))}
	for _, se := range list {
		out.Sessions = append(out.Sessions, s.toAPI(r.Context(), se))
	}
	encode(w, http.StatusOK, out)
	return nil
}

// handleGetSession serves GET /sessions/{id}; ?wait=ready waits as create does.
func (s *Server) handleGetSession(w http.ResponseWriter, r *http.Request) error {
	wait, timeout, err := waitParams(r)
	if err != nil {
		return err
	}
	var se sessions.Session
	if wait {
		se, err = s.sessions.WaitReady(r.Context(), r.PathValue("id"), timeout)
	} else {
		se, err = s.sessions.Get(r.Context(), r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, s.toAPI(r.Context(), se))
	return nil
}

// handleDeleteSession serves DELETE /sessions/{id}: 204; ?purge=true also
// deletes the home.
func (s *Server) handleDeleteSession(w http.ResponseWriter, r *http.Request) error {
	purge := false
	if v := r.URL.Query().Get("purge"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return badRequest(apitype.CodeBadRequest, fmt.Sprintf("purge=%q: want true or false", v))
		}
		purge = b
	}
	if err := s.sessions.Delete(r.Context(), r.PathValue("id"), purge); err != nil {
		return err
	}
	if purge && s.opts.Audit != nil {
		if err := s.opts.Audit.Purge(r.PathValue("id")); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleStopSession serves POST /sessions/{id}/stop.
func (s *Server) handleStopSession(w http.ResponseWriter, r *http.Request) error {
	se, err := s.sessions.Stop(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, s.toAPI(r.Context(), se))
	return nil
}

// handleStartSession serves POST /sessions/{id}/start; ?wait=ready waits.
func (s *Server) handleStartSession(w http.ResponseWriter, r *http.Request) error {
	wait, timeout, err := waitParams(r)
	if err != nil {
		return err
	}
	se, err := s.sessions.Start(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if wait {
		if se, err = s.sessions.WaitReady(r.Context(), se.ID, timeout); err != nil {
			return err
		}
	}
	encode(w, http.StatusOK, s.toAPI(r.Context(), se))
	return nil
}

// handleSetResolution serves PUT /sessions/{id}/resolution {"resolution": "WxH"}.
func (s *Server) handleSetResolution(w http.ResponseWriter, r *http.Request) error {
	body, err := decode[apitype.SetResolution](w, r, maxBody)
	if err != nil {
		return err
	}
	se, err := s.sessions.SetResolution(r.Context(), r.PathValue("id"), body.Resolution)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, s.toAPI(r.Context(), se))
	return nil
}

// handleSetTheme serves PUT (or POST) /sessions/{id}/theme {"theme": name}.
func (s *Server) handleSetTheme(w http.ResponseWriter, r *http.Request) error {
	body, err := decode[apitype.SetTheme](w, r, maxBody)
	if err != nil {
		return err
	}
	if body.Theme == "" {
		return badRequest(apitype.CodeBadTheme, `"theme" is missing`)
	}
	se, err := s.sessions.SetTheme(r.Context(), r.PathValue("id"), body.Theme)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, s.toAPI(r.Context(), se))
	return nil
}

// shotParams reads ?format=, &scale=, &quality= of a screenshot.
func shotParams(r *http.Request) (sessions.ScreenshotOptions, error) {
	q := r.URL.Query()
	o := sessions.ScreenshotOptions{Format: q.Get("format")}
	if v := q.Get("scale"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return o, badRequest(apitype.CodeBadRequest, fmt.Sprintf("scale=%q: want a number from 0.05 to 1", v))
		}
		o.Scale = f
	}
	if v := q.Get("quality"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return o, badRequest(apitype.CodeBadRequest, fmt.Sprintf("quality=%q: want 1 to 100", v))
		}
		o.Quality = n
	}
	if v := q.Get("region"); v != "" {
		g, err := agentapi.ParseRegion(v)
		if err != nil {
			return o, badRequest(apitype.CodeBadRequest, err.Error())
		}
		o.Region = &g
	}
	return o, nil
}

// handleScreenshot serves GET /sessions/{id}/screenshot: the image itself,
// its geometry in headers.
func (s *Server) handleScreenshot(w http.ResponseWriter, r *http.Request) error {
	o, err := shotParams(r)
	if err != nil {
		return err
	}
	im, err := s.sessions.Screenshot(r.Context(), r.PathValue("id"), o)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "image/"+im.Format)
	h.Set("Content-Length", strconv.Itoa(len(im.Data)))
	h.Set("Cache-Control", "no-store")
	h.Set(apitype.HeaderWidth, strconv.Itoa(im.Width))
	h.Set(apitype.HeaderHeight, strconv.Itoa(im.Height))
	h.Set(apitype.HeaderScale, strconv.FormatFloat(im.Scale, 'f', -1, 64))
	if im.Region != nil {
		h.Set(apitype.HeaderRegion, im.Region.String())
	}
	w.WriteHeader(http.StatusOK)
	w.Write(im.Data)
	return nil
}

// parseActions reads an actions body in any of its three forms: one action
// object, an array of them, or {"actions": [...], "observe": …}.
func parseActions(r *http.Request, body []byte) ([]agentapi.Request, *sessions.Observe, error) {
	body = bytes.TrimSpace(body)
	var long apitype.Actions
	var raws []json.RawMessage
	switch {
	case len(body) == 0:
		return nil, nil, badRequest(apitype.CodeBadAction, "the body is empty: send an action, a list of actions or {\"actions\": [...]}")
	case body[0] == '[':
		if err := decodeBytes(body, &raws); err != nil {
			return nil, nil, err
		}
	case body[0] == '{':
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(body, &probe); err != nil {
			return nil, nil, badRequest(apitype.CodeBadRequest, "request body: "+jsonProblem(err))
		}
		if _, ok := probe["actions"]; ok {
			if err := decodeBytes(body, &long); err != nil {
				return nil, nil, err
			}
			raws = long.Actions
		} else {
			raws = []json.RawMessage{body}
		}
	default:
		return nil, nil, badRequest(apitype.CodeBadRequest, "request body: want a JSON object or array")
	}
	reqs := make([]agentapi.Request, len(raws))
	for i, raw := range raws {
		// "v" may be left out: the fleet speaks protocol v1 for the caller.
		reqs[i].V = agentapi.Version
		if err := decodeBytes(raw, &reqs[i]); err != nil {
			ae := err.(*apiError)
			ae.code, ae.msg = apitype.CodeBadAction, fmt.Sprintf("action %d: %s", i, ae.msg)
			return nil, nil, ae
		}
	}
	q := r.URL.Query()
	if v := q.Get("observe"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, nil, badRequest(apitype.CodeBadRequest, fmt.Sprintf("observe=%q: want true or false", v))
		}
		long.Observe = long.Observe || b
	}
	if !long.Observe {
		return reqs, nil, nil
	}
	if long.Settle < 0 || long.Settle > sessions.MaxSettle.Seconds() {
		return nil, nil, badRequest(apitype.CodeBadRequest, fmt.Sprintf("settle %v: want seconds from 0 to %v", long.Settle, sessions.MaxSettle.Seconds()))
	}
	return reqs, &sessions.Observe{
		Settle: time.Duration(long.Settle * float64(time.Second)),
		Shot:   sessions.ScreenshotOptions{Format: long.Format, Scale: long.Scale, Quality: long.Quality},
	}, nil
}

func imageToAPI(im *agentapi.Image) *apitype.Image {
	if im == nil {
		return nil
	}
	return &apitype.Image{Format: im.Format, Width: im.Width, Height: im.Height, Scale: im.Scale, Data: im.Data}
}

// inputActor is who sends a request's input: its credential, with the
// control lease it names.
func inputActor(r *http.Request) sessions.Actor {
	return sessions.Actor{Name: audit.ActorFrom(r.Context()), Claim: control.Claim{Lease: r.Header.Get(apitype.HeaderLease)}}
}

// handleActions serves POST /sessions/{id}/actions: results per action,
// and the observation if asked.
func (s *Server) handleActions(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxActionsBody))
	if err != nil {
		return err
	}
	reqs, obs, err := parseActions(r, body)
	if err != nil {
		return err
	}
	res, err := s.sessions.Act(r.Context(), r.PathValue("id"), inputActor(r), reqs, obs)
	if err != nil {
		return err
	}
	out := apitype.ActionsResult{OK: res.OK(), Results: make([]apitype.ActionResult, 0, len(res.Results)), Observation: imageToAPI(res.Observation)}
	// The results stop at the first action that failed or that the
	// control lease refused; the rest did not run.
	for _, ar := range res.Results {
		if errors.Is(ar.NotRun, sessions.ErrEarlierFailed) {
			break
		}
		o := apitype.ActionResult{Action: string(ar.Request.Action), ID: ar.Request.ID, OK: ar.Err == nil && ar.NotRun == nil,
			Image: imageToAPI(ar.Response.Image), TookMS: float64(ar.Took.Microseconds()) / 1000}
		switch {
		case ar.NotRun != nil:
			_, code, msg := classify(ar.NotRun)
			o.Error = &apitype.ErrorDetail{Code: code, Message: msg, Holder: holderOf(ar.NotRun)}
		case ar.Err != nil:
			o.Error = &apitype.ErrorDetail{Code: string(ar.Err.Code), Message: ar.Err.Message}
		}
		if c := ar.Response.Cursor; c != nil {
			o.Cursor = &[2]int{c.X, c.Y}
		}
		o.Clipboard = clipboardToAPI(ar.Response.Clipboard)
		out.Results = append(out.Results, o)
	}
	encode(w, http.StatusOK, out)
	return nil
}

// handleEvents serves GET /events: every session's lifecycle events as
// JSON lines from now on, until the client leaves or the fleet closes
// (a reader that falls far behind is cut off: it should list the
// sessions again).
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) error {
	changes := s.opts.Sessions.Watch(r.Context())
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", mediaJSONL)
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return nil
	}
	enc := json.NewEncoder(w)
	tick := time.NewTicker(keepalive)
	defer tick.Stop()
	for {
		select {
		case c, ok := <-changes:
			if !ok || enc.Encode(apitype.SessionEvent{Session: c.Session, Event: c.Event}) != nil || rc.Flush() != nil {
				return nil
			}
		case <-tick.C:
			if _, err := io.WriteString(w, "\n"); err != nil || rc.Flush() != nil {
				return nil
			}
		}
	}
}
