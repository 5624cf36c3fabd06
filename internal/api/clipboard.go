package api

import (
	"net/http"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
)

// handleGetClipboard serves GET /sessions/{id}/clipboard (?mime=image/png
// for an image): the desktop's clipboard, through the input pipeline.
func (s *Server) handleGetClipboard(w http.ResponseWriter, r *http.Request) error {
	resp, err := s.actClipboard(r, agentapi.Request{Action: agentapi.ClipboardGet, Mime: r.URL.Query().Get("mime")})
	if err != nil {
		return err
	}
	c := clipboardToAPI(resp.Clipboard)
	if c == nil {
		c = &apitype.Clipboard{Mime: apitype.MimeText}
	}
	encode(w, http.StatusOK, c)
	return nil
}

// handleSetClipboard serves PUT /sessions/{id}/clipboard: set it, as
// input (the control lease decides, as for keys).
func (s *Server) handleSetClipboard(w http.ResponseWriter, r *http.Request) error {
	body, err := decode[apitype.Clipboard](w, r, maxActionsBody)
	if err != nil {
		return err
	}
	if body.Data == "" {
		return badRequest(apitype.CodeMissingField, `"data" is missing: the clipboard is set to something`)
	}
	if _, err := s.actClipboard(r, agentapi.Request{Action: agentapi.ClipboardSet, Mime: body.Mime, Data: body.Data}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// actClipboard runs one clipboard verb through sessions.Act and returns
// its response, or the refusal as the call's error.
func (s *Server) actClipboard(r *http.Request, req agentapi.Request) (agentapi.Response, error) {
	res, err := s.sessions.Act(r.Context(), r.PathValue("id"), inputActor(r), []agentapi.Request{req}, nil)
	if err != nil {
		return agentapi.Response{}, err
	}
	ar := res.Results[0]
	if ar.Err != nil {
		return agentapi.Response{}, ar.Err
	}
	return ar.Response, nil
}

func clipboardToAPI(c *agentapi.Clipboard) *apitype.Clipboard {
	if c == nil {
		return nil
	}
	return &apitype.Clipboard{Mime: c.Mime, Data: c.Data, Size: c.Size}
}
