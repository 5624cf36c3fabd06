package api

import (
	"errors"
	"net/http"
	"os"
	"strings"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
	"atelier/internal/batches"
	"atelier/internal/control"
	"atelier/internal/sessions"
	"atelier/internal/snapshot"
	"atelier/internal/snapshot/archive"
	"atelier/internal/tasks"
	"atelier/internal/view"
)

// apiError is an error with its status and code decided where it arose
// (in decoding, in reading parameters).
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(code, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: msg}
}

// classify maps an error to the status, code and message the client gets.
// It is the one place domain errors become HTTP. Internal errors are
// reported as such and their detail is left to the log.
func classify(err error) (status int, code, msg string) {
	msg = err.Error()
	if ae, ok := errors.AsType[*apiError](err); ok {
		return ae.status, ae.code, ae.msg
	}
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return http.StatusRequestEntityTooLarge, apitype.CodeTooLarge, "request body is over its limit of " + limitText(err)
	}
	switch {
	case errors.Is(err, sessions.ErrBadID):
		return http.StatusBadRequest, apitype.CodeBadID, msg
	case errors.Is(err, sessions.ErrNoSession):
		return http.StatusNotFound, apitype.CodeNotFound, msg
	case errors.Is(err, sessions.ErrBadTheme):
		return http.StatusBadRequest, apitype.CodeBadTheme, msg
	case errors.Is(err, sessions.ErrBadResolution):
		return http.StatusBadRequest, apitype.CodeBadResolution, msg
	case errors.Is(err, sessions.ErrBadAction):
		// A refusal the protocol names (bad_coordinate, missing_field, …)
		// keeps its code, as it would from the agent.
		if pe, ok := errors.AsType[*agentapi.Error](err); ok {
			return http.StatusBadRequest, string(pe.Code), msg
		}
		return http.StatusBadRequest, apitype.CodeBadAction, msg
	case errors.Is(err, snapshot.ErrInUse):
		return http.StatusConflict, apitype.CodeSnapshotInUse, msg
	case errors.Is(err, snapshot.ErrNotFound):
		return http.StatusNotFound, apitype.CodeNotFound, msg
	case errors.Is(err, snapshot.ErrBadID):
		return http.StatusBadRequest, apitype.CodeBadID, msg
	case errors.Is(err, archive.ErrUnsafe):
		return http.StatusBadRequest, apitype.CodeBadSnapshot, msg
	case errors.Is(err, sessions.ErrBadInput):
		return http.StatusBadRequest, apitype.CodeBadRequest, msg
	case errors.Is(err, sessions.ErrNotRunning), errors.Is(err, tasks.ErrNoDesktop):
		return http.StatusConflict, apitype.CodeNotRunning, msg
	case errors.Is(err, sessions.ErrBusy):
		return http.StatusConflict, apitype.CodeBusy, msg
	case errors.Is(err, sessions.ErrNotReady):
		return http.StatusGatewayTimeout, apitype.CodeNotReady, msg
	case errors.Is(err, sessions.ErrTooMany):
		// No Retry-After: a place frees only when a session is stopped
		// or deleted, which waiting does not bring about.
		return http.StatusTooManyRequests, apitype.CodeTooManySessions, msg
	case errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusRequestTimeout, apitype.CodeRequestTimeout, "the request was not read in time (its body is too slow)"
	case errors.Is(err, sessions.ErrUnavailable):
		return http.StatusServiceUnavailable, apitype.CodeUnavailable, msg
	case errors.Is(err, control.ErrBadMessage):
		return http.StatusBadRequest, apitype.CodeBadRequest, msg
	case errors.Is(err, control.ErrHeld):
		return http.StatusConflict, apitype.CodeControlHeld, msg
	case errors.Is(err, control.ErrNoLease), errors.Is(err, control.ErrNotTask):
		return http.StatusConflict, apitype.CodeBadLease, msg
	case errors.Is(err, control.ErrNothingHeld):
		return http.StatusConflict, apitype.CodeNothingHeld, msg
	case errors.Is(err, tasks.ErrBusy), errors.Is(err, control.ErrTaskRunning):
		return http.StatusConflict, apitype.CodeTaskRunning, msg
	case errors.Is(err, tasks.ErrUnpriced):
		return http.StatusConflict, apitype.CodeModelUnpriced, msg
	case errors.Is(err, tasks.ErrInvalid):
		return http.StatusBadRequest, apitype.CodeBadRequest, msg
	case errors.Is(err, tasks.ErrNotFound):
		return http.StatusNotFound, apitype.CodeNotFound, msg
	case errors.Is(err, tasks.ErrNotRunning):
		return http.StatusConflict, apitype.CodeTaskEnded, msg
	case errors.Is(err, batches.ErrInvalid):
		return http.StatusBadRequest, apitype.CodeBadRequest, msg
	case errors.Is(err, batches.ErrNotFound), errors.Is(err, batches.ErrNoMatch):
		return http.StatusNotFound, apitype.CodeNotFound, msg
	case errors.Is(err, tasks.ErrClosed), errors.Is(err, view.ErrClosed):
		return http.StatusServiceUnavailable, apitype.CodeShuttingDown, msg
	}
	if status, code, ok := classifyFile(err); ok {
		return status, code, msg
	}
	if status, code, ok := classifyView(err); ok {
		return status, code, msg
	}
	if pe, ok := errors.AsType[*agentapi.Error](err); ok {
		if pe.Code == agentapi.CodeAgentOutdated {
			return http.StatusConflict, apitype.CodeAgentOutdated, msg
		}
		if strings.HasPrefix(string(pe.Code), "bad_") || pe.Code == agentapi.CodeTooLarge || pe.Code == agentapi.CodeUnknownAction || pe.Code == agentapi.CodeUnknownField || pe.Code == agentapi.CodeMissingField {
			return http.StatusBadRequest, string(pe.Code), msg
		}
		return http.StatusBadGateway, apitype.CodeUnavailable, msg
	}
	return http.StatusInternalServerError, apitype.CodeInternal, "internal error; the fleet's log has the details"
}

func limitText(err error) string {
	e, _ := errors.AsType[*http.MaxBytesError](err)
	return formatBytes(e.Limit)
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return itoa(n>>10) + " KiB"
	}
	return itoa(n) + " bytes"
}

// writeError writes the API's one error shape.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeErrorDetail(w, status, apitype.ErrorDetail{Code: code, Message: msg})
}

func writeErrorDetail(w http.ResponseWriter, status int, d apitype.ErrorDetail) {
	encode(w, status, apitype.Error{Err: d})
}

// classifyView maps the live view's refusals: its token, its viewer id, a
// control request's origin, a fleet without control leases.
func classifyView(err error) (status int, code string, ok bool) {
	if _, isToken := errors.AsType[*view.TokenError](err); isToken {
		switch {
		case errors.Is(err, view.ErrNoToken):
			return http.StatusForbidden, apitype.CodeTokenMissing, true
		case errors.Is(err, view.ErrExpiredToken):
			return http.StatusForbidden, apitype.CodeTokenExpired, true
		case errors.Is(err, view.ErrModeDenied):
			return http.StatusForbidden, apitype.CodeTokenMode, true
		}
		return http.StatusForbidden, apitype.CodeTokenInvalid, true
	}
	switch {
	case errors.Is(err, view.ErrBadViewer):
		return http.StatusBadRequest, apitype.CodeBadViewer, true
	case errors.Is(err, view.ErrTooManyViews):
		return http.StatusTooManyRequests, apitype.CodeTooManyStreams, true
	case errors.Is(err, view.ErrBadOrigin):
		return http.StatusForbidden, apitype.CodeBadOrigin, true
	case errors.Is(err, view.ErrBadRequest):
		return http.StatusBadRequest, apitype.CodeBadRequest, true
	case errors.Is(err, view.ErrNoControl):
		return http.StatusNotFound, apitype.CodeNotFound, true
	}
	return 0, "", false
}
