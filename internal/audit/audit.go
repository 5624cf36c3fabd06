// Package audit is the fleet's audit log: one append-only JSONL file per
// session, each line hash-chained to the one before it, written before the
// caller answers and fsync'd on a configurable policy. Verify walks a file
// offline and names the first broken link; a torn last line left by a crash
// is moved aside and recorded when the file is next opened, never dropped.
//
// File format (one entry per line, "\n"-terminated, UTF-8 JSON):
//
//	{"time":"2026-08-01T10:00:00.123456789Z","seq":1,"session":"sess_…","actor":"token:ops",
//	 "kind":"action","action":{"v":1,"action":"left_click","coordinate":[10,20]},
//	 "result":{"code":"ok","duration_ms":12.5},"prev":"0000…0000"}
//
// seq counts from 1 in each file; prev is the hex SHA-256 of the previous
// line's exact bytes (without its newline), Genesis for the first line. A
// line does not store its own hash: it would add nothing, since a verifier
// recomputes it from the bytes anyway.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Genesis is the prev of every file's first entry.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// MaxLineBytes bounds one line of an audit file. Append refuses a larger
// entry; Verify and Read report a longer line as damage.
const MaxLineBytes = 4 << 20

// Kind says what an entry records.
type Kind string

// Entry kinds.
const (
	KindAction  Kind = "action"  // one protocol-v1 action and its result
	KindCost    Kind = "cost"    // one model call's spend
	KindSession Kind = "session" // lifecycle: created, started, stopped, deleted…
	KindTask    Kind = "task"    // a task's start, steps and end
	KindView    Kind = "view"    // a viewer connected or left
	// KindControl entries record each change of a session's control
	// holder and summarise each person's period of control.
	KindControl Kind = "control"
	// KindEgress entries record each connection a desktop asked the
	// fleet's egress gateway for, allowed or not.
	KindEgress Kind = "egress"
	// KindFile entries record each file read, written, listed or deleted
	// in a home through the API: the path, bytes and SHA-256.
	KindFile Kind = "file"
	// KindAudit entries are written by the log itself: a repair of a torn
	// tail (Detail["event"] == "repair") is one.
	KindAudit Kind = "audit"
)

// Kinds lists every kind, in the order above.
var Kinds = []Kind{KindAction, KindCost, KindSession, KindTask, KindView, KindControl, KindEgress, KindFile, KindAudit}

func (k Kind) valid() bool {
	for _, v := range Kinds {
		if k == v {
			return true
		}
	}
	return false
}

// Actors that are not prefixed with an id.
const (
	ActorCLI     = "cli"     // the atelier command, acting on the data dir or a socket
	ActorFleet   = "fleet"   // the fleet itself: reconciliation, repairs
	ActorDesktop = "desktop" // the desktop itself: its egress connections
	ActorMCP     = "mcp"     // an MCP server: the fleet's /mcp, or atelier mcp
	ActorConsole = "console" // a person signed in to the web console
)

// Actor prefixes, each followed by an id: "token:ops", "task:t_12".
const (
	ActorToken  = "token:"
	ActorTask   = "task:"
	ActorViewer = "viewer:"
)

// Result is how an action ended.
type Result struct {
	// Code is "ok" or the protocol's error code.
	Code       string  `json:"code"`
	Message    string  `json:"message,omitempty"`
	DurationMS float64 `json:"duration_ms"`
}

// Result codes of the fleet's own (the rest are the protocol's).
const (
	CodeOK     = "ok"      // the action succeeded
	CodeNotRun = "not_run" // the action was not run: an earlier one failed, or the control lease refused it
)

// Cost is one model call's spend.
type Cost struct {
	USD          float64 `json:"usd"`
	Model        string  `json:"model"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
}

// Egress is one connection through the egress gateway.
type Egress struct {
	Method string `json:"method,omitempty"`
	Host   string `json:"host"` // empty for a request that did not parse
	Port   int    `json:"port"`
	Addr   string `json:"addr,omitempty"` // the address dialed
	// Decision is "allowed", "refused" or "failed" (allowed, but the
	// host did not resolve or answer).
	Decision   string  `json:"decision"`
	Reason     string  `json:"reason,omitempty"`
	BytesUp    int64   `json:"bytes_up"`
	BytesDown  int64   `json:"bytes_down"`
	DurationMS float64 `json:"duration_ms"`
}

// Entry is one line of an audit file. Append fills Time, Seq and Prev.
type Entry struct {
	Time    time.Time `json:"time"`
	Seq     int64     `json:"seq"`
	Session string    `json:"session"`
	Actor   string    `json:"actor"`
	Kind    Kind      `json:"kind"`
	// Action is the protocol-v1 request as sent (kind action).
	Action json.RawMessage `json:"action,omitempty"`
	// Result is set for kind action.
	Result *Result `json:"result,omitempty"`
	// Cost is set for kind cost.
	Cost *Cost `json:"cost,omitempty"`
	// Egress is set for kind egress.
	Egress *Egress `json:"egress,omitempty"`
	// Detail is free-form facts of session, task, view and audit events.
	Detail map[string]any `json:"detail,omitempty"`
	// RequestID names the API request that caused the entry, if any
	// (WithRequestID); lines written before it existed have none.
	RequestID string `json:"request_id,omitempty"`
	Prev      string `json:"prev"`
}

// Errors callers branch on.
var (
	ErrBadEntry   = errors.New("bad audit entry")
	ErrBadSession = errors.New("bad session id")
	ErrNotFound   = errors.New("no audit for session")
	ErrClosed     = errors.New("audit log closed")
	ErrLocked     = errors.New("audit dir in use by another process")
)

// CheckSession reports ErrBadSession unless id can name an audit file:
// 1 to 128 ASCII letters, digits, '_', '-' or '.', not starting with '.'.
func CheckSession(id string) error {
	if !safeID(id, 128, "_-.") || id[0] == '.' {
		return fmt.Errorf("%w: %q: want 1-128 letters, digits, '_', '-' or '.', not starting with '.'", ErrBadSession, id)
	}
	return nil
}

// CheckActor reports ErrBadEntry unless a is "cli", "fleet", or one of the
// prefixes followed by a non-empty id.
func CheckActor(a string) error {
	switch a {
	case ActorCLI, ActorFleet, ActorDesktop, ActorMCP, ActorConsole:
		return nil
	}
	for _, p := range []string{ActorToken, ActorTask, ActorViewer} {
		if id, ok := strings.CutPrefix(a, p); ok && id != "" && len(id) <= 128 {
			return nil
		}
	}
	return fmt.Errorf("%w: actor %q: want cli, fleet, desktop, mcp, console, token:<id>, task:<id> or viewer:<id>", ErrBadEntry, a)
}

// check validates what a caller provides, the same rules on write and read.
func (e *Entry) check() error {
	if err := CheckSession(e.Session); err != nil {
		return err
	}
	if err := CheckActor(e.Actor); err != nil {
		return err
	}
	if e.RequestID != "" && !ValidRequestID(e.RequestID) {
		return fmt.Errorf("%w: request_id %q: want 1-%d letters, digits, '_', '-', '.' or ':'", ErrBadEntry, e.RequestID, MaxRequestID)
	}
	if !e.Kind.valid() {
		return fmt.Errorf("%w: kind %q: want one of %v", ErrBadEntry, e.Kind, Kinds)
	}
	switch {
	case e.Kind == KindAction && (len(e.Action) == 0 || e.Result == nil):
		return fmt.Errorf("%w: an action entry needs action and result", ErrBadEntry)
	case e.Kind == KindCost && e.Cost == nil:
		return fmt.Errorf("%w: a cost entry needs cost", ErrBadEntry)
	case e.Kind == KindEgress && e.Egress == nil:
		return fmt.Errorf("%w: an egress entry needs egress", ErrBadEntry)
	case e.Egress != nil && !e.Egress.valid():
		return fmt.Errorf("%w: egress needs a decision (allowed, refused, failed), a port from 0 to 65535, bytes and duration_ms >= 0", ErrBadEntry)
	case e.Result != nil && (e.Result.Code == "" || !finite(e.Result.DurationMS) || e.Result.DurationMS < 0):
		return fmt.Errorf("%w: result needs a code and a duration_ms >= 0", ErrBadEntry)
	case e.Cost != nil && (!finite(e.Cost.USD) || e.Cost.USD < 0 || e.Cost.InputTokens < 0 || e.Cost.OutputTokens < 0):
		return fmt.Errorf("%w: cost needs usd and tokens >= 0", ErrBadEntry)
	}
	return nil
}

func (e *Egress) valid() bool {
	switch e.Decision {
	case "allowed", "refused", "failed":
	default:
		return false
	}
	return e.Port >= 0 && e.Port <= 65535 && e.BytesUp >= 0 && e.BytesDown >= 0 && finite(e.DurationMS) && e.DurationMS >= 0 &&
		(e.Decision != "allowed" || e.Host != "")
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

type actorKey struct{}

// WithActor returns ctx carrying the actor of the request it serves
// ("token:ops", "task:t_1"): Append uses it for entries that name none, so
// the API's auth middleware can set it once for everything a request does.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor WithActor stored in ctx, or "".
func ActorFrom(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// MaxRequestID bounds a request id's length.
const MaxRequestID = 64

// ValidRequestID reports whether id is fit to carry into logs and audit
// lines: 1 to MaxRequestID letters, digits, '_', '-', '.' or ':'.
func ValidRequestID(id string) bool { return safeID(id, MaxRequestID, "_-.:") }

// safeID reports whether id is 1 to max ASCII letters, digits or bytes of
// extra.
func safeID(id string, max int, extra string) bool {
	if len(id) < 1 || len(id) > max {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying the id of the API request it serves:
// Append records it in the entries that request causes.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the id WithRequestID stored in ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
