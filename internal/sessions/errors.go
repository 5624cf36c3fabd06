package sessions

import (
	"errors"

	"atelier/internal/runtime"
)

// Errors the manager returns and callers branch on; the API maps each to a
// status and a stable code. Most come wrapped with details for people.
var (
	ErrNoSession     = errors.New("no such session")
	ErrBadID         = runtime.ErrBadID
	ErrBadInput      = errors.New("bad input")
	ErrBadTheme      = errors.New("unknown theme")
	ErrBadResolution = errors.New("bad resolution")
	ErrBadAction     = errors.New("bad action")
	ErrNotRunning    = errors.New("session is stopped")
	ErrNotReady      = errors.New("desktop not ready")
	ErrBusy          = errors.New("session is busy")
	ErrUnavailable   = errors.New("desktop does not answer")
	// ErrEarlierFailed is why an action did not run after one that
	// failed (ActionResult.NotRun).
	ErrEarlierFailed = errors.New("not run: an earlier action failed")
	// ErrTooMany refuses a create or start past Options.MaxSessions.
	ErrTooMany = errors.New("too many sessions")
)
