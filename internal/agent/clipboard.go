package agent

import (
	"context"
	"encoding/base64"
	"errors"
	"unicode/utf8"

	"atelier/internal/agentapi"
	"atelier/internal/wayland"
)

// clipboard serves clipboard_get and clipboard_set through the
// compositor's data-control protocol.
func (s *Server) clipboard(ctx context.Context, req *agentapi.Request, resp *agentapi.Response) error {
	d, _, err := s.display(ctx)
	if err != nil {
		return err
	}
	mime := req.Mime
	if mime == "" {
		mime = agentapi.MimeText
	}
	if req.Action == agentapi.ClipboardSet {
		b, err := req.ClipboardBytes()
		if err != nil {
			return err
		}
		if err := d.SetClipboard(mime, b); err != nil {
			return clipErr(d, req.Action, err)
		}
		// Answer once the compositor holds the selection.
		return wlErr(d, d.Roundtrip(ctx))
	}
	b, _, err := d.ReadClipboard(ctx, mime, agentapi.MaxClipboardBytes)
	switch {
	case errors.Is(err, wayland.ErrEmpty):
		b, err = nil, nil // an empty clipboard is an answer, not a fault
	case errors.Is(err, wayland.ErrTooLarge):
		return agentapi.Errorf(agentapi.CodeTooLarge, "clipboard_get: the clipboard holds over %d bytes", agentapi.MaxClipboardBytes)
	case err != nil:
		return clipErr(d, req.Action, err)
	}
	c := &agentapi.Clipboard{Mime: mime, Size: len(b)}
	switch {
	case mime == agentapi.MimePNG:
		c.Data = base64.StdEncoding.EncodeToString(b)
	case !utf8.Valid(b):
		return agentapi.Errorf(agentapi.CodeBadField, "clipboard_get: the clipboard's text is not UTF-8; its owner sent %d bytes of something else", len(b))
	default:
		c.Data = string(b)
	}
	resp.Clipboard = c
	return nil
}

func clipErr(d *wayland.Display, verb agentapi.Verb, err error) error {
	if errors.Is(err, wayland.ErrNoClipboard) {
		return agentapi.Errorf(agentapi.CodeUnavailable, "%s: %v", verb, err)
	}
	return wlErr(d, err)
}
