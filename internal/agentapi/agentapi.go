// Package agentapi defines protocol v1 between the fleet (or the CLI) and the
// in-desktop agent on agent.sock: the request and response types, the verbs,
// the stable error codes, strict decoding, the binary framing of images, and a
// client.
//
// Framing: each request is one JSON object on one line. Each response is one
// JSON object on one line, in request order; when it carries an image, exactly
// image.size raw bytes follow the newline, so screenshots never go through
// base64.
package agentapi

import "fmt"

// Version is the only protocol version this build speaks.
//
// History:
//
//	1 (2026-11): screenshot, cursor_position, pointer and button verbs, drag,
//	             scroll, type, key, hold_key, wait, status.
//	  2026-12-04: status reports agent_version and verbs; clients turn an
//	             unknown_action for a verb they know into agent_outdated.
//	  2026-12-04: settle (quiet, duration): wait until the screen shows no
//	             change for quiet seconds, at most duration seconds; its
//	             response carries "settle". An older agent answers it
//	             unknown_action (a client: agent_outdated).
//	  2026-12-04: clipboard_get (mime) and clipboard_set (mime, data): the
//	             seat's clipboard, text (text/plain;charset=utf-8, the
//	             default) or image/png (data in base64), up to
//	             MaxClipboardBytes; clipboard_get's response carries
//	             "clipboard". An older agent answers unknown_action.
//
// CHANGELOG.md keeps the dated history of every change.
const Version = 1

// SupportedVersions lists every version this build accepts; errors name them.
var SupportedVersions = []int{Version}

// Verb names one action.
type Verb string

// The verbs of protocol v1. They are the union of what computer-use models
// emit, named as the Anthropic computer tool names them.
const (
	Screenshot     Verb = "screenshot"
	CursorPosition Verb = "cursor_position"
	MouseMove      Verb = "mouse_move"
	LeftClick      Verb = "left_click"
	RightClick     Verb = "right_click"
	MiddleClick    Verb = "middle_click"
	DoubleClick    Verb = "double_click"
	TripleClick    Verb = "triple_click"
	LeftMouseDown  Verb = "left_mouse_down"
	LeftMouseUp    Verb = "left_mouse_up"
	LeftClickDrag  Verb = "left_click_drag"
	Scroll         Verb = "scroll"
	Type           Verb = "type"
	Key            Verb = "key"
	HoldKey        Verb = "hold_key"
	Wait           Verb = "wait"
	Settle         Verb = "settle"
	ClipboardGet   Verb = "clipboard_get"
	ClipboardSet   Verb = "clipboard_set"
	StatusVerb     Verb = "status"
)

// Code is a stable, machine-readable error code.
type Code string

// Error codes. They never change meaning; new ones may be added.
const (
	CodeBadJSON       Code = "bad_json"       // not one well-formed JSON object
	CodeBadVersion    Code = "bad_version"    // "v" missing or not supported
	CodeUnknownAction Code = "unknown_action" // "action" missing or not a verb
	CodeUnknownField  Code = "unknown_field"  // a field this protocol does not define
	CodeBadField      Code = "bad_field"      // a field of the wrong type, or not used by this verb
	CodeMissingField  Code = "missing_field"  // a field this verb needs is absent
	CodeBadCoordinate Code = "bad_coordinate" // outside the desktop's output
	CodeBadKey        Code = "bad_key"        // an unknown key or modifier name
	CodeTooLarge      Code = "too_large"      // request or value over its limit
	CodeUnavailable   Code = "unavailable"    // the desktop component needed is not running
	CodeTimeout       Code = "timeout"        // the desktop did not answer in time
	CodeInternal      Code = "internal"       // a fault in the agent; details in its log
	// CodeAgentOutdated is the client's, never an agent's: the agent
	// refused a verb this build of the protocol has, so it is older than
	// its fleet (a desktop re-adopted across a fleet upgrade).
	CodeAgentOutdated Code = "agent_outdated"
)

// Error is a protocol error: what went wrong, with a stable code.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf returns an *Error with the given code.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
