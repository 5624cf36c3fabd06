// Package mcp serves a fleet's desktops as Model Context Protocol tools.
// Every tool goes through the fleet's typed API client, so the stdio server
// (atelier mcp) and the streamable HTTP one (/mcp on the fleet) are one
// implementation with the API's rules: auth, control lease, audit.
package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
	"atelier/internal/client"
)

// readyWait bounds how long create_session and start_session wait for the
// desktop to answer.
const readyWait = 2 * time.Minute

// Server is the fleet's MCP server: its tools and resources, and the
// watch that turns the fleet's events into change notifications.
type Server struct {
	*sdk.Server
	watch *watch
}

// NewServer returns an MCP server whose tools act on the fleet c reaches.
// Close stops it.
func NewServer(c *client.Client, version string, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := tools{c: c}
	w := newWatch(t, log)
	s := sdk.NewServer(&sdk.Implementation{Name: "atelier", Title: "Atelier desktops", Version: version}, &sdk.ServerOptions{
		Instructions: "Atelier runs Linux desktops (Sway, a tiling Wayland compositor; super+Return opens a terminal). " +
			"List or create a session, take a screenshot to see it, then drive it with the computer tool. " +
			"Computer actions take the desktop's pixels; a screenshot's result says how its image maps to them.",
		InitializedHandler: w.initialized, SubscribeHandler: w.subscribe, UnsubscribeHandler: w.unsubscribe,
	})
	w.srv = s
	sdk.AddTool(s, &sdk.Tool{Name: "list_sessions", Description: "List the fleet's desktop sessions with their id, label, state (ready, stopped, ...) and resolution."}, t.list)
	sdk.AddTool(s, &sdk.Tool{Name: "create_session", Description: "Create a new desktop session and wait until it is ready for input (up to 2 minutes). Returns the session; use its id with the other tools."}, t.create)
	sdk.AddTool(s, &sdk.Tool{Name: "stop_session", Description: "Stop a session's desktop. Its home directory is kept; start_session runs it again."}, t.stop)
	sdk.AddTool(s, &sdk.Tool{Name: "start_session", Description: "Start a stopped session and wait until its desktop is ready (up to 2 minutes)."}, t.start)
	sdk.AddTool(s, &sdk.Tool{Name: "delete_session", Description: "Delete a session and its desktop for good. With purge, its home directory and audit log go too."}, t.remove)
	sdk.AddTool(s, &sdk.Tool{Name: "screenshot", Description: "Take a screenshot of a session's desktop, or of a region of it, optionally scaled down. " +
		"The result is the image plus its geometry: its width and height, and how its pixels map to the desktop's, " +
		"which computer actions take (desktop x = region x + image x / scale, the same for y)."}, t.screenshot)
	sdk.AddTool(s, &sdk.Tool{Name: "computer", Description: "Drive a session's desktop with protocol-v1 actions: one (action) or several in order (actions). " +
		`Each is an object such as {"action":"key","text":"super+Return"}, {"action":"type","text":"ls\n"}, ` +
		`{"action":"mouse_move","coordinate":[10,20]}, {"action":"left_click","coordinate":[10,20]}, ` +
		`{"action":"scroll","coordinate":[10,20],"scroll_direction":"down","scroll_amount":3}, {"action":"wait","duration":1} ` +
		"(the Anthropic computer-tool vocabulary; coordinates in the desktop's pixels). " +
		"Actions stop at the first that fails. Set screenshot to see the desktop afterwards. " +
		"Refused while a person holds the session's control: wait and try again later (or pass the lease_id of your own take_over)."}, t.computer)
	addTaskTools(s, t)
	addControlTools(s, t)
	addFileTools(s, t)
	addResources(s, t)
	return &Server{Server: s, watch: w}
}

// Close ends the server's MCP sessions and stops its watch of the fleet.
func (s *Server) Close() error {
	s.watch.close()
	return nil
}

// sessionIdle is how long an MCP session over HTTP lives without a request.
const sessionIdle = 30 * time.Minute

// HTTPHandler serves s over MCP's streamable HTTP transport: sessions
// (Mcp-Session-Id) closed after sessionIdle without a request, and
// streams a client may resume from a memory event store.
func (s *Server) HTTPHandler() http.Handler {
	return sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s.Server },
		&sdk.StreamableHTTPOptions{SessionTimeout: sessionIdle, EventStore: sdk.NewMemoryEventStore(nil)})
}

// OpenSessions counts the MCP sessions open, for the fleet's metrics.
func (s *Server) OpenSessions() int {
	n := 0
	for range s.Server.Sessions() {
		n++
	}
	return n
}

type tools struct{ c *client.Client }

// Session is a session as the tools report it.
type Session struct {
	ID         string `json:"id" jsonschema:"the session's id, for the other tools"`
	Label      string `json:"label,omitempty"`
	State      string `json:"state" jsonschema:"ready (takes input), creating, starting, degraded, stopped or failed"`
	Reason     string `json:"reason,omitempty" jsonschema:"why a session is degraded or failed"`
	Resolution string `json:"resolution" jsonschema:"the desktop's size in pixels, WIDTHxHEIGHT"`
}

func sessionOf(s apitype.Session) Session {
	return Session{ID: s.ID, Label: s.Label, State: s.State, Reason: s.Reason, Resolution: s.Resolution}
}

// SessionList is list_sessions' output.
type SessionList struct {
	Sessions []Session `json:"sessions"`
}

func (t tools) list(ctx context.Context, _ *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, SessionList, error) {
	all, err := t.c.Sessions(ctx)
	if err != nil {
		return nil, SessionList{}, explain(err)
	}
	out := SessionList{Sessions: make([]Session, 0, len(all))}
	for _, s := range all {
		out.Sessions = append(out.Sessions, sessionOf(s))
	}
	return nil, out, nil
}

// CreateInput is create_session's input.
type CreateInput struct {
	Label      string `json:"label,omitempty" jsonschema:"a name for people"`
	Resolution string `json:"resolution,omitempty" jsonschema:"the desktop's size, WIDTHxHEIGHT such as 1280x800; the fleet's default if empty"`
	Theme      string `json:"theme,omitempty" jsonschema:"light or dark"`
}

func (t tools) create(ctx context.Context, _ *sdk.CallToolRequest, in CreateInput) (*sdk.CallToolResult, Session, error) {
	s, err := t.c.CreateSession(ctx, apitype.CreateSession{Label: in.Label, Resolution: in.Resolution, Theme: in.Theme}, readyWait)
	if err != nil {
		return nil, Session{}, explain(err)
	}
	return nil, sessionOf(s), nil
}

// SessionInput names one session.
type SessionInput struct {
	SessionID string `json:"session_id" jsonschema:"the session's id, from list_sessions or create_session"`
}

func (t tools) stop(ctx context.Context, _ *sdk.CallToolRequest, in SessionInput) (*sdk.CallToolResult, Session, error) {
	s, err := t.c.StopSession(ctx, in.SessionID)
	if err != nil {
		return nil, Session{}, explain(err)
	}
	return nil, sessionOf(s), nil
}

func (t tools) start(ctx context.Context, _ *sdk.CallToolRequest, in SessionInput) (*sdk.CallToolResult, Session, error) {
	s, err := t.c.StartSession(ctx, in.SessionID, readyWait)
	if err != nil {
		return nil, Session{}, explain(err)
	}
	return nil, sessionOf(s), nil
}

// DeleteInput is delete_session's input.
type DeleteInput struct {
	SessionID string `json:"session_id" jsonschema:"the session to delete"`
	Purge     bool   `json:"purge,omitempty" jsonschema:"delete its home directory and audit log too"`
}

// Deleted is delete_session's output.
type Deleted struct {
	Deleted string `json:"deleted" jsonschema:"the id of the deleted session"`
}

func (t tools) remove(ctx context.Context, _ *sdk.CallToolRequest, in DeleteInput) (*sdk.CallToolResult, Deleted, error) {
	if err := t.c.DeleteSession(ctx, in.SessionID, in.Purge); err != nil {
		return nil, Deleted{}, explain(err)
	}
	return nil, Deleted{Deleted: in.SessionID}, nil
}

// ScreenshotInput is screenshot's input.
type ScreenshotInput struct {
	SessionID string  `json:"session_id" jsonschema:"the session to look at"`
	Scale     float64 `json:"scale,omitempty" jsonschema:"shrink the image by this factor, 0.05 to 1 (default 1)"`
	Region    *Region `json:"region,omitempty" jsonschema:"only this part of the desktop, in the desktop's pixels (default: all of it)"`
}

// Region is a rectangle of the desktop, in its pixels.
type Region struct {
	X      int `json:"x" jsonschema:"the left edge"`
	Y      int `json:"y" jsonschema:"the top edge"`
	Width  int `json:"width"`
	Height int `json:"height"`
}

// ImageInfo is the geometry of an image a tool returned.
type ImageInfo struct {
	Format string  `json:"format"`
	Width  int     `json:"width" jsonschema:"the image's width in its own pixels"`
	Height int     `json:"height" jsonschema:"the image's height in its own pixels"`
	Scale  float64 `json:"scale" jsonschema:"image pixels per desktop pixel"`
	Region Region  `json:"region" jsonschema:"the part of the desktop the image shows, in the desktop's pixels: desktop x = region.x + image x / scale"`
}

func (t tools) screenshot(ctx context.Context, _ *sdk.CallToolRequest, in ScreenshotInput) (*sdk.CallToolResult, ImageInfo, error) {
	o := client.ScreenshotOptions{Scale: in.Scale}
	if g := in.Region; g != nil {
		o.Region = &agentapi.Region{X: g.X, Y: g.Y, Width: g.Width, Height: g.Height}
	}
	im, err := t.c.Screenshot(ctx, in.SessionID, o)
	if err != nil {
		return nil, ImageInfo{}, explain(err)
	}
	info, content := imageContent(im, in.Region)
	return &sdk.CallToolResult{Content: content}, info, nil
}

// imageContent returns an image's geometry and the content that shows it
// to a model: the image, then how its pixels map to the desktop's, which
// the computer tool takes. g is the region shown; nil for all the desktop.
func imageContent(im apitype.Image, g *Region) (ImageInfo, []sdk.Content) {
	info := ImageInfo{Format: im.Format, Width: im.Width, Height: im.Height, Scale: im.Scale}
	if im.Scale <= 0 {
		info.Scale = 1
	}
	if g != nil {
		info.Region = *g
	} else {
		info.Region = Region{Width: int(math.Round(float64(im.Width) / info.Scale)), Height: int(math.Round(float64(im.Height) / info.Scale))}
	}
	r := info.Region
	text := fmt.Sprintf("Screenshot %dx%d pixels, the whole desktop: computer actions take these coordinates, 0..%d x 0..%d.",
		im.Width, im.Height, im.Width-1, im.Height-1)
	if g != nil || info.Scale != 1 {
		text = fmt.Sprintf("Screenshot %dx%d pixels of the desktop's region %dx%d at (%d, %d), scale %g: "+
			"the image's point (px, py) is the desktop's (%d + px/%g, %d + py/%g), the coordinates computer actions take.",
			im.Width, im.Height, r.Width, r.Height, r.X, r.Y, info.Scale, r.X, info.Scale, r.Y, info.Scale)
	}
	return info, []sdk.Content{&sdk.ImageContent{Data: im.Data, MIMEType: "image/" + im.Format}, &sdk.TextContent{Text: text}}
}

// ComputerInput is computer's input.
type ComputerInput struct {
	SessionID string           `json:"session_id" jsonschema:"the session to drive"`
	Action    map[string]any   `json:"action,omitempty" jsonschema:"one protocol-v1 action object, such as {\"action\":\"type\",\"text\":\"hello\"}"`
	Actions   []map[string]any `json:"actions,omitempty" jsonschema:"several actions, run in order; give action or actions, not both"`
	LeaseID   string           `json:"lease_id,omitempty" jsonschema:"your lease from take_over, while you hold the session's control"`
	// Screenshot asks for the desktop as it is after the actions.
	Screenshot bool `json:"screenshot,omitempty" jsonschema:"take a screenshot after the actions"`
}

// ComputerOutput is computer's output.
type ComputerOutput struct {
	OK      bool           `json:"ok" jsonschema:"whether every action succeeded"`
	Results []ActionResult `json:"results" jsonschema:"one per action run; actions stop at the first that fails"`
	// Screenshot is the observation's geometry, when one was asked for.
	Screenshot *ImageInfo `json:"screenshot,omitempty"`
}

// ActionResult is the outcome of one action.
type ActionResult struct {
	Action string  `json:"action"`
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Cursor []int   `json:"cursor,omitempty" jsonschema:"the pointer's position afterwards, [x, y]"`
	TookMS float64 `json:"took_ms"`
}

func (t tools) computer(ctx context.Context, _ *sdk.CallToolRequest, in ComputerInput) (*sdk.CallToolResult, ComputerOutput, error) {
	list := in.Actions
	switch {
	case in.Action != nil && len(in.Actions) > 0:
		return nil, ComputerOutput{}, errors.New("give either action or actions, not both")
	case in.Action != nil:
		list = []map[string]any{in.Action}
	case len(list) == 0:
		return nil, ComputerOutput{}, errors.New(`give an action, such as {"action":"key","text":"super+Return"}, or a list of actions`)
	}
	actions, err := rawActions(list)
	if err != nil {
		return nil, ComputerOutput{}, err
	}
	r, err := t.c.ActWithLease(ctx, in.SessionID, in.LeaseID, apitype.Actions{Observe: in.Screenshot, Actions: actions})
	if err != nil {
		return nil, ComputerOutput{}, explain(err)
	}
	out := ComputerOutput{OK: r.OK, Results: make([]ActionResult, 0, len(r.Results))}
	res := &sdk.CallToolResult{IsError: !r.OK}
	for _, ar := range r.Results {
		x := ActionResult{Action: ar.Action, OK: ar.OK, TookMS: ar.TookMS}
		if ar.Error != nil {
			x.Error = ar.Error.Code + ": " + ar.Error.Message
		}
		if ar.Cursor != nil {
			x.Cursor = ar.Cursor[:]
		}
		out.Results = append(out.Results, x)
	}
	summary := fmt.Sprintf("%d of %d actions done", len(out.Results), len(list))
	if n := len(out.Results); !r.OK && n > 0 {
		summary += "; action " + fmt.Sprint(n) + " failed: " + out.Results[n-1].Error
	}
	res.Content = []sdk.Content{&sdk.TextContent{Text: summary}}
	if r.Observation != nil {
		info, content := imageContent(*r.Observation, nil)
		out.Screenshot = &info
		res.Content = append(res.Content, content...)
	}
	return res, out, nil
}

// rawActions returns the actions a model gave as objects as the API takes
// them; the fleet validates each.
func rawActions(list []map[string]any) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(list))
	for _, a := range list {
		b, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("action %v: %w", a, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// explain turns a fleet's refusal into a tool error a model can act on.
func explain(err error) error {
	var e *client.Error
	if !errors.As(err, &e) {
		return err
	}
	switch e.Code {
	case apitype.CodeControlHeld:
		who := "someone"
		if e.Holder != nil {
			who = e.Holder.Kind
		}
		return fmt.Errorf("refused: %s holds this session's control, so input is not accepted now; wait until it is handed back and try again (%s)", who, e.Message)
	case apitype.CodeNotFound:
		return fmt.Errorf("%s: %s (list_sessions shows the sessions' ids)", e.Code, e.Message)
	}
	return fmt.Errorf("%s: %s", e.Code, e.Message)
}
