// Package apitype holds the JSON types of the fleet's HTTP API, shared by
// the server (internal/api) and its Go client (internal/client).
package apitype

import (
	"encoding/json"
	"slices"
	"time"
)

// Error is the body of every error answer: {"error":{"code","message"}}.
type Error struct {
	Err ErrorDetail `json:"error"`
}

// ErrorDetail is a stable code and a message for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Holder says who holds the session's control, when that is why the
	// request was refused (control_held).
	Holder *Holder `json:"holder,omitempty"`
}

// Error codes of the fleet API. They never change meaning.
const (
	CodeBadRequest    = "bad_request"    // malformed JSON, unknown field, bad value
	CodeBadID         = "bad_id"         // not the shape of a session id
	CodeBadTheme      = "bad_theme"      // unknown theme
	CodeBadResolution = "bad_resolution" // resolution out of bounds or malformed
	CodeBadAction     = "bad_action"     // an action refused before anything ran
	CodeTooLarge      = "too_large"      // body over its limit
	CodeUnauthorized  = "unauthorized"   // missing or wrong bearer token
	CodeNotFound      = "not_found"      // no such session or route
	CodeNotRunning    = "not_running"    // the session is stopped
	CodeNotReady      = "not_ready"      // the desktop did not become ready in time
	CodeBusy          = "busy"           // another operation holds the session
	CodeUnavailable   = "unavailable"    // the desktop does not answer
	CodeMethod        = "method_not_allowed"
	CodeInternal      = "internal"             // a fault in the fleet; details in its log
	CodeControlHeld   = "control_held"         // someone else holds the session's control lease
	CodeBadLease      = "lease_invalid"        // the lease named is not (or no longer) held
	CodeNothingHeld   = "nothing_to_hand_back" // a hand-back with nobody holding control
	CodeShuttingDown  = "shutting_down"        // the fleet is stopping and takes no new work

	// Tasks.
	CodeTaskRunning = "task_running" // the session already runs a task
	CodeTaskEnded   = "task_ended"   // the task has already ended
	// CodeModelUnpriced refuses a task whose model has no price while a
	// cap (daily or the task's max_usd) is set: its spend could not be held
	// to it. MODEL_PRICES prices it (or declares it free).
	CodeModelUnpriced = "model_unpriced"

	// The live view: its embed token and its control requests.
	CodeTokenMissing = "token_missing" // no embed token in the URL
	CodeTokenInvalid = "token_invalid" // not a token of this fleet, or for another session
	CodeTokenExpired = "token_expired" // the token's lifetime is over
	CodeTokenMode    = "token_mode"    // a view token where control is needed
	CodeBadViewer    = "bad_viewer"    // a malformed viewer id
	CodeBadOrigin    = "bad_origin"    // a control request from another site's page

	// Refusals of the desktop's agent, passed on unchanged (protocol v1).
	CodeBadJSON       = "bad_json"       // an action that is not one JSON object
	CodeBadVersion    = "bad_version"    // "v" missing or not supported
	CodeUnknownAction = "unknown_action" // "action" missing or not a verb
	CodeUnknownField  = "unknown_field"  // a field the protocol does not define
	CodeBadField      = "bad_field"      // a field of the wrong type, or not used by the verb
	CodeMissingField  = "missing_field"  // a field the verb needs is absent
	CodeBadCoordinate = "bad_coordinate" // outside the desktop's output
	CodeBadKey        = "bad_key"        // an unknown key or modifier name
	CodeTimeout       = "timeout"        // the desktop did not answer in time (an action's result)
	CodeAgentOutdated = "agent_outdated" // the desktop's agent predates the verb: stop and start the session

	// Admission: 429s. Nothing was made or opened.
	CodeTooManySessions = "too_many_sessions" // the fleet runs as many sessions as it admits
	CodeTooManyStreams  = "too_many_streams"  // the token (or the session's views) holds as many streams as allowed
	CodeRequestTimeout  = "request_timeout"   // the request's body did not arrive in time
)

// EmbedRevocation is the answer of POST /sessions/{id}/embed-tokens/revoke:
// every embed token minted for the session before is refused from now on,
// and its open views were closed.
type EmbedRevocation struct {
	SessionID   string `json:"session_id"`
	Generation  uint64 `json:"generation"`
	ClosedViews int    `json:"closed_views"`
}

// Health is the body of GET /health.
type Health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
}

// Ready is the answer of GET /ready when the fleet can serve: the checks
// it passed, by name.
type Ready struct {
	Status string   `json:"status"`
	Checks []string `json:"checks"`
}

// CreateSession is the body of POST /sessions. Every field is optional.
type CreateSession struct {
	Label      string `json:"label,omitempty"`
	Theme      string `json:"theme,omitempty"`
	Resolution string `json:"resolution,omitempty"` // WIDTHxHEIGHT
	SnapshotID string `json:"snapshot_id,omitempty"`
	// Egress, if set, is the session's own egress policy instead of the
	// fleet's; it is kept across fleet restarts.
	Egress *Egress `json:"egress,omitempty"`
}

// Egress is what a desktop may reach through the fleet's egress gateway.
type Egress struct {
	// Mode is open (the public internet), allowlist or none.
	Mode string `json:"mode"`
	// Allow holds the allowlist's patterns: github.com, *.example.org, an
	// IP address. Only for mode allowlist.
	Allow []string `json:"allow,omitempty"`
	// Source, in responses, is "session" for a session's own policy and
	// "fleet" for the fleet's; ignored in requests.
	Source string `json:"source,omitempty"`
}

// Session states.
const (
	StateCreating = "creating"
	StateStarting = "starting"
	StateReady    = "ready"
	StateDegraded = "degraded"
	StateStopped  = "stopped"
	StateFailed   = "failed"
)

// Session is one session as the API shows it.
type Session struct {
	ID string `json:"id"`
	// SessionID repeats ID for clients of the seed's API.
	SessionID  string `json:"session_id"`
	Label      string `json:"label"`
	Theme      string `json:"theme"`
	Resolution string `json:"resolution"`
	// State is one of the State constants; Desired is running or stopped.
	State   string `json:"state"`
	Desired string `json:"desired"`
	// Reason says why a session is degraded or failed.
	Reason string `json:"reason,omitempty"`
	// Detail is the runtime's, for people: a pid, a container id.
	Detail string `json:"detail,omitempty"`
	// AgentVersion is the build of the agent in the running desktop; one
	// older than the fleet's may lack verbs (agent_outdated) until the
	// session is stopped and started.
	AgentVersion string    `json:"agent_version,omitempty"`
	Runtime      string    `json:"runtime"`
	SnapshotID   string    `json:"snapshot_id,omitempty"`
	Egress       Egress    `json:"egress"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// EmbedURL and ViewURL point at the live view (empty until it exists).
	EmbedURL string `json:"embed_url"`
	ViewURL  string `json:"view_url"`
	// Home is how full the session's home is; absent when the home has no
	// disk quota.
	Home *SessionHome `json:"home,omitempty"`
}

// SessionHome is how full a session's home is, in bytes. Writes past the
// quota fail inside the desktop. The filesystem's own bookkeeping takes a
// few percent of the quota, so used and free add up to less.
type SessionHome struct {
	UsedBytes  int64 `json:"used_bytes"`
	FreeBytes  int64 `json:"free_bytes"`
	QuotaBytes int64 `json:"quota_bytes"`
}

// SessionList is the body of GET /sessions.
type SessionList struct {
	Sessions []Session `json:"sessions"`
}

// SessionEvent is one line of GET /events: a session's lifecycle event
// (created, started, stopped, deleted, restarted), as it happens.
type SessionEvent struct {
	Session string `json:"session"`
	Event   string `json:"event"`
}

// SetTheme is the body of PUT /sessions/{id}/theme.
type SetTheme struct {
	Theme string `json:"theme"`
}

// SetResolution is the body of PUT /sessions/{id}/resolution.
type SetResolution struct {
	Resolution string `json:"resolution"` // WIDTHxHEIGHT
}

// Actions is the body of POST /sessions/{id}/actions in its long form. The
// short forms are one action object, or a JSON array of them.
type Actions struct {
	Actions []json.RawMessage `json:"actions"`
	// Observe asks for a screenshot after the actions, once the desktop
	// had Settle seconds to react (a default when 0).
	Observe bool    `json:"observe,omitempty"`
	Settle  float64 `json:"settle,omitempty"`
	// Format, Scale and Quality shape the observation, as for a screenshot.
	Format  string  `json:"format,omitempty"`
	Scale   float64 `json:"scale,omitempty"`
	Quality int     `json:"quality,omitempty"`
}

// ActionsResult is the answer of POST /sessions/{id}/actions: one result
// per action run, in order. Actions stop at the first that fails, so
// len(Results) < the number sent exactly when one failed.
type ActionsResult struct {
	OK          bool           `json:"ok"`
	Results     []ActionResult `json:"results"`
	Observation *Image         `json:"observation,omitempty"`
}

// ActionResult is the outcome of one action.
type ActionResult struct {
	Action string       `json:"action"`
	ID     string       `json:"id,omitempty"`
	OK     bool         `json:"ok"`
	Error  *ErrorDetail `json:"error,omitempty"`
	// Cursor is the pointer position afterwards, [x, y] in output pixels.
	Cursor *[2]int `json:"cursor,omitempty"`
	// Image is set for a screenshot action.
	Image *Image `json:"image,omitempty"`
	// Clipboard is set for a clipboard_get action.
	Clipboard *Clipboard `json:"clipboard,omitempty"`
	// TookMS is how long the desktop took.
	TookMS float64 `json:"took_ms"`
}

// Image is a screenshot. Width and Height are the image's pixels; Scale is
// image pixels per desktop pixel, so a desktop coordinate is the image's
// divided by Scale. Data is base64 in JSON.
type Image struct {
	Format string  `json:"format"`
	Width  int     `json:"width"`
	Height int     `json:"height"`
	Scale  float64 `json:"scale"`
	Data   []byte  `json:"data"`
}

// Headers of GET /sessions/{id}/screenshot, so a caller of the raw image
// knows its geometry without decoding it.
const (
	HeaderWidth  = "X-Image-Width"
	HeaderHeight = "X-Image-Height"
	HeaderScale  = "X-Image-Scale"
	// HeaderRegion is the part of the desktop the image shows,
	// x,y,width,height in the desktop's pixels; absent for all of it.
	HeaderRegion = "X-Image-Region"
)

// Budget is the body of GET /budget.
type Budget struct {
	Day         string  `json:"day"`
	SpentUSD    float64 `json:"spent_usd"`
	ReservedUSD float64 `json:"reserved_usd"`
	CapUSD      float64 `json:"cap_usd"` // 0: no cap
}

// Codes lists every error code above, sorted. (A test parses this package
// to keep the list whole.)
func Codes() []string {
	codes := []string{
		CodeBadRequest, CodeBadID, CodeBadTheme, CodeBadResolution, CodeBadAction, CodeTooLarge, CodeUnauthorized,
		CodeNotFound, CodeNotRunning, CodeNotReady, CodeBusy, CodeUnavailable, CodeMethod, CodeInternal,
		CodeControlHeld, CodeBadLease, CodeNothingHeld, CodeShuttingDown, CodeTaskRunning, CodeTaskEnded, CodeModelUnpriced,
		CodeTokenMissing, CodeTokenInvalid, CodeTokenExpired, CodeTokenMode, CodeBadViewer, CodeBadOrigin,
		CodeBadJSON, CodeBadVersion, CodeUnknownAction, CodeUnknownField, CodeBadField, CodeMissingField,
		CodeBadCoordinate, CodeBadKey, CodeTimeout, CodeAgentOutdated,
		CodeTooManySessions, CodeTooManyStreams, CodeRequestTimeout,
		CodeSnapshotInUse, CodeBadSnapshot,
		CodeBadPath, CodeNotFile, CodeNotDir, CodeNotEmpty, CodeHomeFull,
	}
	slices.Sort(codes)
	return codes
}
