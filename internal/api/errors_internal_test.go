package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
	"atelier/internal/sessions"
	"atelier/internal/snapshot"
	"atelier/internal/snapshot/archive"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("%w: x", sessions.ErrBadID), 400, apitype.CodeBadID},
		{fmt.Errorf("%w: x", sessions.ErrNoSession), 404, apitype.CodeNotFound},
		{fmt.Errorf("%w: x", sessions.ErrBadTheme), 400, apitype.CodeBadTheme},
		{fmt.Errorf("%w: x", sessions.ErrBadResolution), 400, apitype.CodeBadResolution},
		{fmt.Errorf("%w: x", sessions.ErrBadAction), 400, apitype.CodeBadAction},
		// The protocol's code of a refused action reaches the client
		// unchanged, not as bad_action.
		{fmt.Errorf("%w: action 1: %w", sessions.ErrBadAction, agentapi.Errorf(agentapi.CodeBadCoordinate, "off")), 400, apitype.CodeBadCoordinate},
		{fmt.Errorf("%w: action 0: %w", sessions.ErrBadAction, agentapi.Errorf(agentapi.CodeMissingField, "text")), 400, apitype.CodeMissingField},
		{fmt.Errorf("%w: x", sessions.ErrBadInput), 400, apitype.CodeBadRequest},
		{fmt.Errorf("%w: x", sessions.ErrNotRunning), 409, apitype.CodeNotRunning},
		{fmt.Errorf("%w: x", sessions.ErrBusy), 409, apitype.CodeBusy},
		{fmt.Errorf("%w: x", sessions.ErrNotReady), 504, apitype.CodeNotReady},
		{fmt.Errorf("%w: x", sessions.ErrUnavailable), 503, apitype.CodeUnavailable},
		{fmt.Errorf("shot: %w", agentapi.Errorf(agentapi.CodeBadCoordinate, "off")), 400, "bad_coordinate"},
		{fmt.Errorf("shot: %w", agentapi.Errorf(agentapi.CodeInternal, "oops")), 502, apitype.CodeUnavailable},
		{fmt.Errorf("delete: %w", snapshot.ErrInUse), 409, apitype.CodeSnapshotInUse},
		{fmt.Errorf("get: %w", snapshot.ErrNotFound), 404, apitype.CodeNotFound},
		{fmt.Errorf("get: %w", snapshot.ErrBadID), 400, apitype.CodeBadID},
		{fmt.Errorf("extract: %w", &archive.EntryError{Name: "../x", Reason: "escapes"}), 400, apitype.CodeBadSnapshot},
		{&http.MaxBytesError{Limit: 64 << 10}, 413, apitype.CodeTooLarge},
		{badRequest("x", "y"), 400, "x"},
		{errors.New("disk on fire at /var/lib/atelier"), 500, apitype.CodeInternal},
	}
	for _, tt := range tests {
		status, code, msg := classify(tt.err)
		if status != tt.status || code != tt.code {
			t.Errorf("classify(%v) = %d %s, want %d %s", tt.err, status, code, tt.status, tt.code)
		}
		if status == 500 && strings.Contains(msg, "/var/lib") {
			t.Errorf("an internal detail reached the client: %q", msg)
		}
	}
}

func TestRecover(t *testing.T) {
	var logged strings.Builder
	s := &Server{log: slog.New(slog.NewTextHandler(&logged, nil))}
	h := s.recover(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), apitype.CodeInternal) {
		t.Errorf("after a panic: %d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(logged.String(), "boom") {
		t.Errorf("the panic was not logged: %s", logged.String())
	}
}
