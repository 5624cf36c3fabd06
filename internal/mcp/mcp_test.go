package mcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/png"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"atelier/internal/apitype"
	"atelier/internal/audit"
	"atelier/internal/cli"
	"atelier/internal/config"
	"atelier/internal/fleettest"
	"atelier/internal/mcp"
	"atelier/internal/model/modeltest"
)

const token = "mcp-test-token"

// bearer adds the fleet's token to every request, as an MCP client's
// configured header does.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// notes collects the notifications a client receives.
type notes struct {
	progress    chan *sdk.ProgressNotificationParams
	updated     chan string // URIs
	listChanged chan struct{}
}

func newNotes() *notes {
	return &notes{progress: make(chan *sdk.ProgressNotificationParams, 100), updated: make(chan string, 1000), listChanged: make(chan struct{}, 100)}
}

// connect opens an MCP session with the SDK's client over one transport:
// streamable HTTP at the fleet's /mcp, or stdio to atelier mcp (run in
// process, its stdin and stdout piped), a client of the fleet's API.
func connect(t *testing.T, f *fleettest.Fleet, transport string, n *notes) *sdk.ClientSession {
	t.Helper()
	var tr sdk.Transport
	switch transport {
	case "http":
		tr = &sdk.StreamableClientTransport{Endpoint: f.URL + "/mcp", HTTPClient: &http.Client{Transport: bearer{token}}, MaxRetries: -1}
	case "stdio":
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		var stderr fleettest.SyncWriter
		env := &cli.Env{Getenv: func(k string) string {
			return map[string]string{"ATELIER_URL": f.URL, "ATELIER_API_TOKEN": token}[k]
		}, Stdin: inR, Stdout: outW, Stderr: &stderr}
		done := make(chan error, 1)
		go func() {
			done <- cli.Run(context.WithoutCancel(t.Context()), []string{"mcp"}, env)
			outW.Close()
		}()
		t.Cleanup(func() {
			inW.Close() // its stdin ends: atelier mcp ends
			// (or its stdout closed as it wrote: the client left first)
			if err := <-done; (err != nil && !errors.Is(err, io.ErrClosedPipe)) || t.Failed() {
				t.Errorf("atelier mcp: %v (stderr %q)", err, stderr.String())
			}
		})
		tr = &sdk.IOTransport{Reader: outR, Writer: inW}
	}
	opts := &sdk.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *sdk.ProgressNotificationClientRequest) { n.progress <- r.Params },
		ResourceUpdatedHandler:      func(_ context.Context, r *sdk.ResourceUpdatedNotificationRequest) { n.updated <- r.Params.URI },
		ResourceListChangedHandler:  func(context.Context, *sdk.ResourceListChangedRequest) { n.listChanged <- struct{}{} },
	}
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, opts).Connect(t.Context(), tr, nil)
	if err != nil {
		t.Fatalf("connect over %s: %v", transport, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// call calls a tool and fails the test on a protocol error; the result
// may be a tool error.
func call(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any) *sdk.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s %v: protocol error: %v", name, args, err)
	}
	return res
}

// ok calls a tool that must succeed and decodes its structured output.
func ok(t *testing.T, cs *sdk.ClientSession, name string, args map[string]any, out any) *sdk.CallToolResult {
	t.Helper()
	res := call(t, cs, name, args)
	if res.IsError {
		t.Fatalf("%s %v: tool error: %s", name, args, text(res))
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: structured output %s: %v", name, b, err)
		}
	}
	return res
}

func text(res *sdk.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, " | ")
}

// TestTools drives one real desktop through the tools, over both
// transports in turn, then spends the fleet's daily cap through them.
func TestTools(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short: MCP tests need a real desktop")
	}
	fleettest.RequireDesktops(t)
	// One model call of a million input tokens: $3, over the $1 cap.
	model := modeltest.AnthropicSteps(t, []modeltest.AnthropicStep{{Content: []json.RawMessage{json.RawMessage(`{"type":"text","text":"all done"}`)},
		Usage: modeltest.AnthropicUsage{InputTokens: 1_000_000, OutputTokens: 10}}})
	f := fleettest.New(t, fleettest.Options{Token: token, MaxUSDPerDay: 1,
		Model: config.Model{Backend: "scripted", AnthropicKey: "test-key", AnthropicBaseURL: model.URL}})
	t.Run("http needs the token", func(t *testing.T) { httpNeedsToken(t, f) })
	var id string
	for _, transport := range []string{"http", "stdio"} {
		t.Run(transport, func(t *testing.T) {
			n := newNotes()
			cs := connect(t, f, transport, n)
			if id == "" {
				var s mcp.Session
				ok(t, cs, "create_session", map[string]any{"label": "mcp", "resolution": "1024x768"}, &s)
				if s.State != "ready" || s.Resolution != "1024x768" {
					t.Fatalf("create_session answered %+v, want a ready 1024x768 session", s)
				}
				id = s.ID
			}
			describedTools(t, cs)
			var list mcp.SessionList
			ok(t, cs, "list_sessions", nil, &list)
			if len(list.Sessions) != 1 || list.Sessions[0].ID != id {
				t.Fatalf("list_sessions: %+v, want just %s", list, id)
			}
			for _, uri := range []string{sessionsURI, auditURI(id)} {
				if err := cs.Subscribe(t.Context(), &sdk.SubscribeParams{URI: uri}); err != nil {
					t.Fatalf("subscribe to %s: %v", uri, err)
				}
			}

			screenshot(t, cs, id)
			drain(n.updated)
			typeIntoTerminal(t, f, cs, id, transport)
			waitUpdated(t, n, auditURI(id), "the audit of the typing")
			// Over HTTP the fleet calls its own API in process, as mcp;
			// atelier mcp, a client of the API, says it is the MCP's.
			checkAudited(t, f, id, "typed-over-"+transport, audit.ActorMCP)
			readResources(t, cs, id, "typed-over-"+transport)
			runTask(t, f, cs, id, transport, n.progress)
			cancelTask(t, f, cs, id)
			leaseRefusesInput(t, f, cs, id)
			badArguments(t, cs, id)
			lifecycle(t, f, cs, n, id)
		})
	}
	t.Run("http sessions and resumption", func(t *testing.T) { httpSessionsAndResumption(t, f, id) })
	t.Run("daily cap", func(t *testing.T) {
		cs := connect(t, f, "http", newNotes())
		dailyCap(t, f, cs, id, model)
	})
}

// describedTools checks every tool the issue names is there, with a
// description and an input and output schema.
func describedTools(t *testing.T, cs *sdk.ClientSession) {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		if len(tool.Description) < 40 || tool.InputSchema == nil || tool.OutputSchema == nil {
			t.Errorf("tool %s: description %q, input schema %v, output schema %v; want all three", tool.Name, tool.Description, tool.InputSchema != nil, tool.OutputSchema != nil)
		}
	}
	slices.Sort(names)
	want := []string{"cancel_task", "computer", "create_session", "delete_session", "get_clipboard", "hand_back", "list_files",
		"list_sessions", "read_file", "run_task", "screenshot", "set_clipboard", "start_session", "stop_session", "take_over",
		"task_status", "write_file"}
	if !slices.Equal(names, want) {
		t.Errorf("tools %v, want %v", names, want)
	}
}

const sessionsURI = "atelier://sessions"

func auditURI(id string) string { return sessionsURI + "/" + id + "/audit" }

// drain empties ch of what came before.
func drain[T any](ch chan T) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// waitUpdated waits for a notification that uri changed.
func waitUpdated(t *testing.T, n *notes, uri, what string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case got := <-n.updated:
			if got == uri {
				return
			}
		case <-deadline:
			t.Fatalf("no notification that %s changed (%s)", uri, what)
		}
	}
}

// waitList waits until the listed resources include uri (or, with
// !present, do not), checking at each list_changed notification.
func waitList(t *testing.T, cs *sdk.ClientSession, n *notes, uri string, present bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case <-n.listChanged:
		case <-deadline:
			t.Fatalf("no list_changed notification after which %s is listed = %v", uri, present)
		}
		res, err := cs.ListResources(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(res.Resources, func(r *sdk.Resource) bool { return r.URI == uri }) == present {
			return
		}
	}
}

// lifecycle stops and starts the session through the tools, which the
// session list's subscribers hear of; a session made and deleted changes
// the resource list.
func lifecycle(t *testing.T, f *fleettest.Fleet, cs *sdk.ClientSession, n *notes, id string) {
	t.Helper()
	drain(n.updated)
	var s mcp.Session
	if ok(t, cs, "stop_session", map[string]any{"session_id": id}, &s); s.State != "stopped" || s.ID != id {
		t.Errorf("stop_session: %+v, want %s stopped", s, id)
	}
	waitUpdated(t, n, sessionsURI, "a session stopped")
	if ok(t, cs, "start_session", map[string]any{"session_id": id}, &s); s.State != "ready" {
		t.Errorf("start_session: %+v, want it ready", s)
	}
	waitUpdated(t, n, sessionsURI, "a session started")

	drain(n.listChanged)
	other, err := f.Client.CreateSession(t.Context(), apitype.CreateSession{Label: "other"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitList(t, cs, n, auditURI(other.ID), true)
	var d mcp.Deleted
	if ok(t, cs, "delete_session", map[string]any{"session_id": other.ID, "purge": true}, &d); d.Deleted != other.ID {
		t.Errorf("delete_session: %+v, want %s", d, other.ID)
	}
	waitList(t, cs, n, auditURI(other.ID), false)
	var list mcp.SessionList
	if ok(t, cs, "list_sessions", nil, &list); len(list.Sessions) != 1 || list.Sessions[0].ID != id {
		t.Errorf("after delete_session: %+v, want just %s", list, id)
	}
}

// cancelTask cancels a long scripted task with cancel_task; it ends
// cancelled, and a second cancel is a tool error.
func cancelTask(t *testing.T, f *fleettest.Fleet, cs *sdk.ClientSession, id string) {
	t.Helper()
	script := make([]json.RawMessage, 20)
	for i := range script {
		script[i] = json.RawMessage(`{"action":"wait","duration":1}`)
	}
	sub, err := f.Client.SubmitTask(t.Context(), id, apitype.TaskSpec{Goal: "wait", Backend: "scripted", Script: script})
	if err != nil {
		t.Fatal(err)
	}
	var out mcp.TaskResult
	ok(t, cs, "cancel_task", map[string]any{"task_id": sub.TaskID}, &out)
	for deadline := time.Now().Add(15 * time.Second); out.Status != "cancelled"; {
		if time.Now().After(deadline) {
			t.Fatalf("task %s is %s 15s after cancel_task, want cancelled", sub.TaskID, out.Status)
		}
		time.Sleep(200 * time.Millisecond)
		ok(t, cs, "task_status", map[string]any{"task_id": sub.TaskID}, &out)
	}
	if out.Steps >= len(script) {
		t.Errorf("the cancelled task ran all its %d steps", out.Steps)
	}
	if res := call(t, cs, "cancel_task", map[string]any{"task_id": sub.TaskID}); !res.IsError {
		t.Errorf("cancel_task of an ended task: %q, want a tool error", text(res))
	}
}

// dailyCap runs a model task through run_task: its spend is the fleet's
// (GET /budget), and once the cap is spent the next is a tool error that
// never reaches the model.
func dailyCap(t *testing.T, f *fleettest.Fleet, cs *sdk.ClientSession, id string, model *modeltest.Server) {
	t.Helper()
	before, err := f.Client.Budget(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out mcp.TaskResult
	ok(t, cs, "run_task", map[string]any{"session_id": id, "goal": "say all done", "backend": "anthropic"}, &out)
	if out.Status != "done" || out.Answer != "all done" || out.CostUSD < 2.9 {
		t.Errorf("run_task: %+v, want done with the answer, costing about $3", out)
	}
	after, err := f.Client.Budget(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if spent := after.SpentUSD - before.SpentUSD; math.Abs(spent-out.CostUSD) > 1e-9 || after.CapUSD != 1 {
		t.Errorf("the fleet's budget: %+v after %+v, want the task's $%g spent against the $1 cap", after, before, out.CostUSD)
	}
	res := call(t, cs, "run_task", map[string]any{"session_id": id, "goal": "again", "backend": "anthropic"})
	if !res.IsError || !strings.Contains(text(res), "budget_exhausted") {
		t.Errorf("run_task past the daily cap: error %v, %q; want a tool error saying budget_exhausted", res.IsError, text(res))
	}
	if n := len(model.Requests()); n != 1 {
		t.Errorf("the model had %d requests, want 1: none past the cap", n)
	}
}

// screenshot checks the image is a PNG of the size the result states.
func screenshot(t *testing.T, cs *sdk.ClientSession, id string) {
	t.Helper()
	var info mcp.ImageInfo
	res := ok(t, cs, "screenshot", map[string]any{"session_id": id}, &info)
	if info.Width != 1024 || info.Height != 768 {
		t.Errorf("screenshot states %dx%d, want the desktop's 1024x768", info.Width, info.Height)
	}
	if !strings.Contains(text(res), fmt.Sprintf("%dx%d", info.Width, info.Height)) {
		t.Errorf("screenshot's text %q does not state the size %dx%d", text(res), info.Width, info.Height)
	}
	var im *sdk.ImageContent
	for _, c := range res.Content {
		if c, is := c.(*sdk.ImageContent); is {
			im = c
		}
	}
	if im == nil || im.MIMEType != "image/png" {
		t.Fatalf("screenshot has no PNG image content: %+v", res.Content)
	}
	img, format, err := image.Decode(bytes.NewReader(im.Data))
	if err != nil || format != "png" {
		t.Fatalf("screenshot image: %v (format %q)", err, format)
	}
	if b := img.Bounds(); b.Dx() != info.Width || b.Dy() != info.Height {
		t.Errorf("image is %dx%d, stated %dx%d", b.Dx(), b.Dy(), info.Width, info.Height)
	}

	if info.Region != (mcp.Region{Width: 1024, Height: 768}) || info.Scale != 1 {
		t.Errorf("screenshot states region %+v at scale %g, want all the desktop at 1", info.Region, info.Scale)
	}

	var half mcp.ImageInfo
	ok(t, cs, "screenshot", map[string]any{"session_id": id, "scale": 0.5}, &half)
	if half.Width != 512 || half.Height != 384 || half.Region != info.Region {
		t.Errorf("screenshot at scale 0.5 states %+v, want 512x384 of all the desktop", half)
	}

	var part mcp.ImageInfo
	region := mcp.Region{X: 100, Y: 50, Width: 300, Height: 200}
	res = ok(t, cs, "screenshot", map[string]any{"session_id": id, "scale": 0.5, "region": region}, &part)
	if part.Width != 150 || part.Height != 100 || part.Region != region {
		t.Errorf("screenshot of %+v at scale 0.5 states %+v, want 150x100 of that region", region, part)
	}
	if want := "(100 + px/0.5, 50 + py/0.5)"; !strings.Contains(text(res), want) {
		t.Errorf("screenshot's text %q does not map the image to the desktop as %s", text(res), want)
	}
	for _, c := range res.Content {
		if c, is := c.(*sdk.ImageContent); is {
			img, _, err := image.Decode(bytes.NewReader(c.Data))
			if err != nil || img.Bounds().Dx() != 150 || img.Bounds().Dy() != 100 {
				t.Errorf("the region's image: %v, %v; want 150x100", err, img.Bounds())
			}
		}
	}
}

// typeIntoTerminal opens a terminal with computer and types a command
// into it; its file appears in the home. Keys typed before the shell reads
// are lost, so a marker file tells when it does.
func typeIntoTerminal(t *testing.T, f *fleettest.Fleet, cs *sdk.ClientSession, id, transport string) {
	t.Helper()
	home := f.Home(id)
	ok(t, cs, "computer", map[string]any{"session_id": id, "action": map[string]any{"action": "key", "text": "super+Return"}}, nil)
	marker := fmt.Sprintf(".ready-%s-%d", transport, time.Now().UnixNano())
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok(t, cs, "computer", map[string]any{"session_id": id, "action": map[string]any{"action": "type", "text": "touch ~/" + marker + "\n"}}, nil)
		if _, err := home.ReadFile(t, marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no shell in a terminal within 30s of super+Return")
		}
		time.Sleep(300 * time.Millisecond)
	}
	// A batch, with a screenshot after.
	var out mcp.ComputerOutput
	res := ok(t, cs, "computer", map[string]any{"session_id": id, "screenshot": true, "actions": []any{
		map[string]any{"action": "type", "text": "echo typed-over-" + transport + " > ~/mcp-" + transport + ".txt"},
		map[string]any{"action": "key", "text": "Return"},
	}}, &out)
	if !out.OK || len(out.Results) != 2 || out.Screenshot == nil || out.Screenshot.Width != 1024 {
		t.Errorf("computer batch answered %+v, want 2 results and a 1024-wide screenshot", out)
	}
	if !strings.Contains(text(res), "2 of 2") {
		t.Errorf("computer's text %q does not say both actions ran", text(res))
	}
	home.WaitFile(t, "mcp-"+transport+".txt", "typed-over-"+transport+"\n")
}

// checkAudited checks the action that typed text is in the session's
// audit under actor.
func checkAudited(t *testing.T, f *fleettest.Fleet, id, text, actor string) {
	t.Helper()
	var found []string
	err := f.Client.Audit(t.Context(), id, url.Values{audit.ParamKind: {string(audit.KindAction)}}, func(line []byte) error {
		var e audit.Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return err
		}
		if strings.Contains(string(e.Action), text) {
			found = append(found, e.Actor)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0] != actor {
		t.Errorf("actions typing %q audited under %v, want once under %s", text, found, actor)
	}
}

// readResources reads the session list and the session's audit, whose
// recent entries hold the action that typed text.
func readResources(t *testing.T, cs *sdk.ClientSession, id, typed string) {
	t.Helper()
	res, err := cs.ReadResource(t.Context(), &sdk.ReadResourceParams{URI: "atelier://sessions"})
	if err != nil || len(res.Contents) != 1 || !strings.Contains(res.Contents[0].Text, id) {
		t.Errorf("sessions resource: %v %+v, want the session %s", err, res, id)
	}
	res, err = cs.ReadResource(t.Context(), &sdk.ReadResourceParams{URI: "atelier://sessions/" + id + "/audit"})
	if err != nil || len(res.Contents) != 1 || !strings.Contains(res.Contents[0].Text, typed) {
		t.Errorf("audit resource: %v %+v, want the action that typed %q", err, res, typed)
	} else if lines := strings.Count(res.Contents[0].Text, "\n"); lines == 0 || lines > 100 {
		t.Errorf("audit resource has %d entries, want 1 to 100", lines)
	}
	if _, err := cs.ReadResource(t.Context(), &sdk.ReadResourceParams{URI: "atelier://sessions/sess_" + strings.Repeat("b", 26) + "/audit"}); err == nil {
		t.Error("the audit of no session was read")
	}
}

// runTask runs a scripted task through run_task: a progress notification
// per step, then its answer; its typed command ran in the desktop.
func runTask(t *testing.T, f *fleettest.Fleet, cs *sdk.ClientSession, id, transport string, progress chan *sdk.ProgressNotificationParams) {
	t.Helper()
	script := []any{
		map[string]any{"action": "key", "text": "super+Return"},
		map[string]any{"action": "wait", "duration": 1},
		map[string]any{"action": "type", "text": "echo task-over-" + transport + " > ~/task-" + transport + ".txt\n"},
	}
	params := &sdk.CallToolParams{Name: "run_task", Arguments: map[string]any{"session_id": id, "goal": "write a file", "backend": "scripted", "script": script}}
	params.SetProgressToken("task-" + transport)
	res, err := cs.CallTool(t.Context(), params)
	if err != nil {
		t.Fatalf("run_task: %v", err)
	}
	var out mcp.TaskResult
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil || res.IsError || out.Status != "done" || out.Steps == 0 || out.TaskID == "" {
		t.Fatalf("run_task: %s (error %v, %q), want a task done", b, res.IsError, text(res))
	}
	// Notifications are handled apart from the result: wait for them, and
	// a moment for any extra one.
	var steps []string
	for wait := time.After(10 * time.Second); len(steps) <= out.Steps; {
		if len(steps) == out.Steps {
			wait = time.After(200 * time.Millisecond)
		}
		select {
		case p := <-progress:
			if p.ProgressToken != "task-"+transport || p.Progress != float64(len(steps)+1) {
				t.Errorf("progress %+v, want token task-%s, step %d", p, transport, len(steps)+1)
			}
			steps = append(steps, p.Message)
			continue
		case <-wait:
		}
		break
	}
	if len(steps) != out.Steps {
		t.Errorf("%d progress notifications %q for %d steps, want one per step", len(steps), steps, out.Steps)
	}
	f.Home(id).WaitFile(t, "task-"+transport+".txt", "task-over-"+transport+"\n")

	var status mcp.TaskResult
	ok(t, cs, "task_status", map[string]any{"task_id": out.TaskID}, &status)
	if status != out {
		t.Errorf("task_status %+v, want %+v", status, out)
	}
}

// leaseRefusesInput checks a person's lease makes computer a tool error,
// and that input is accepted again once handed back.
func leaseRefusesInput(t *testing.T, f *fleettest.Fleet, cs *sdk.ClientSession, id string) {
	t.Helper()
	lease, err := f.Client.TakeOver(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	move := map[string]any{"session_id": id, "action": map[string]any{"action": "mouse_move", "coordinate": []int{5, 5}}}
	res := call(t, cs, "computer", move)
	if !res.IsError || !strings.Contains(text(res), "holds this session's control") {
		t.Errorf("computer under a person's lease: error %v, %q; want a tool error saying who holds control", res.IsError, text(res))
	}
	if _, err := f.Client.HandBack(t.Context(), id, lease.ID, ""); err != nil {
		t.Fatal(err)
	}
	ok(t, cs, "computer", move, nil)

	// An agent may hold control itself: its own lease admits its input.
	var c mcp.Control
	ok(t, cs, "take_over", map[string]any{"session_id": id}, &c)
	if c.LeaseID == "" || c.Holder != "person" {
		t.Fatalf("take_over: %+v, want a person's lease", c)
	}
	if res := call(t, cs, "computer", move); !res.IsError {
		t.Errorf("computer without the lease while take_over holds control: %q, want a tool error", text(res))
	}
	withLease := map[string]any{"session_id": id, "lease_id": c.LeaseID, "action": move["action"]}
	ok(t, cs, "computer", withLease, nil)
	var back mcp.Control
	ok(t, cs, "hand_back", map[string]any{"session_id": id, "lease_id": c.LeaseID}, &back)
	if back.Holder != "" || back.SessionID != id {
		t.Errorf("hand_back: %+v, want nobody holding control", back)
	}
	ok(t, cs, "computer", move, nil)
}

// badArguments checks bad arguments are tool errors, not protocol ones.
func badArguments(t *testing.T, cs *sdk.ClientSession, id string) {
	t.Helper()
	for _, c := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"computer", map[string]any{"session_id": id}, "give an action"},
		{"computer", map[string]any{"session_id": id, "action": map[string]any{"action": "key"}, "actions": []any{map[string]any{"action": "key"}}}, "not both"},
		{"computer", map[string]any{"session_id": id, "action": map[string]any{"action": "fly"}}, "fly"},
		{"computer", map[string]any{"session_id": id, "action": "key"}, "action"},
		{"computer", map[string]any{"action": map[string]any{"action": "key", "text": "a"}}, "session_id"},
		{"screenshot", map[string]any{"session_id": id, "scale": "big"}, "scale"},
		{"screenshot", map[string]any{"session_id": id, "scale": 7}, "scale"},
		{"screenshot", map[string]any{"session_id": "nope"}, "session"},
		{"screenshot", map[string]any{"session_id": id, "region": map[string]any{"x": 1000, "y": 0, "width": 100, "height": 100}}, "outside"},
		{"screenshot", map[string]any{"session_id": id, "region": map[string]any{"x": 0, "y": 0, "width": 0, "height": 100}}, "positive"},
		{"screenshot", map[string]any{"session_id": id, "region": "top"}, "region"},
		{"stop_session", map[string]any{"session_id": "s-none"}, "malformed session id"},
		{"stop_session", map[string]any{"session_id": "sess_" + strings.Repeat("a", 26)}, "not_found"},
		{"run_task", map[string]any{"session_id": id}, "goal"},
		{"task_status", map[string]any{"task_id": "nope"}, "not_found"},
	} {
		res := call(t, cs, c.tool, c.args)
		if !res.IsError || !strings.Contains(strings.ToLower(text(res)), strings.ToLower(c.want)) {
			t.Errorf("%s %v: error %v, %q; want a tool error mentioning %q", c.tool, c.args, res.IsError, text(res), c.want)
		}
	}
}

// httpNeedsToken checks /mcp sits behind the API's bearer token, which
// a query string cannot carry.
func httpNeedsToken(t *testing.T, f *fleettest.Fleet) {
	tr := &sdk.StreamableClientTransport{Endpoint: f.URL + "/mcp", MaxRetries: -1}
	if _, err := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil).Connect(t.Context(), tr, nil); err == nil {
		t.Fatal("an MCP client without the token connected")
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, f.URL+"/mcp?token="+token, strings.NewReader("{}"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("token in the query: %d, want 401", resp.StatusCode)
	}
}

// rawMCP speaks MCP's streamable HTTP by hand, to see what the SDK's
// client hides: the session header and the streams' event ids.
type rawMCP struct {
	t       *testing.T
	url     string
	session string
}

// post sends one JSON-RPC message and returns the answer's status and its
// SSE events (id and data), or its JSON body as one event.
func (m *rawMCP) post(msg string) (int, [][2]string) {
	m.t.Helper()
	req, _ := http.NewRequestWithContext(m.t.Context(), http.MethodPost, m.url, strings.NewReader(msg))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	return m.send(req)
}

func (m *rawMCP) send(req *http.Request) (int, [][2]string) {
	m.t.Helper()
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("MCP-Protocol-Version", "2025-06-18")
	if m.session != "" {
		req.Header.Set("Mcp-Session-Id", m.session)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		m.t.Fatal(err)
	}
	defer resp.Body.Close()
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		m.session = id
	}
	b, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, [][2]string{{"", string(b)}}
	}
	var evs [][2]string
	for block := range strings.SplitSeq(string(b), "\n\n") {
		var ev [2]string
		for line := range strings.SplitSeq(block, "\n") {
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				ev[0] = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				ev[1] += v
			}
		}
		if ev[1] != "" {
			evs = append(evs, ev)
		}
	}
	return resp.StatusCode, evs
}

// httpSessionsAndResumption checks /mcp's sessions and resumability as
// the spec defines them: initialize names a session, a stream's events
// carry ids, a GET with Last-Event-ID replays the events after one, and a
// deleted session is gone.
func httpSessionsAndResumption(t *testing.T, f *fleettest.Fleet, id string) {
	m := &rawMCP{t: t, url: f.URL + "/mcp"}
	st, _ := m.post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	if st != http.StatusOK || m.session == "" {
		t.Fatalf("initialize: %d, session %q; want 200 and a session", st, m.session)
	}
	if st, _ := m.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`); st != http.StatusAccepted {
		t.Fatalf("initialized: %d, want 202", st)
	}
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"run_task","_meta":{"progressToken":"raw"},"arguments":{"session_id":"` + id +
		`","goal":"wait","backend":"scripted","script":[{"action":"wait","duration":0.1},{"action":"wait","duration":0.1},{"action":"wait","duration":0.1}]}}}`
	st, evs := m.post(call)
	if st != http.StatusOK || len(evs) < 4 || !strings.Contains(evs[len(evs)-1][1], `"status":"done"`) {
		t.Fatalf("run_task: %d %q; want a progress event per step, then the result", st, evs)
	}
	for _, ev := range evs {
		if ev[0] == "" {
			t.Fatalf("an event without an id: %q", evs)
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, m.url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", evs[0][0])
	st, replay := m.send(req)
	if st != http.StatusOK || !slices.Equal(replay, evs[1:]) {
		t.Errorf("resumed after %s: %d %q; want the events after it, %q", evs[0][0], st, replay, evs[1:])
	}
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodDelete, m.url, nil)
	if st, _ := m.send(req); st != http.StatusNoContent {
		t.Errorf("DELETE the session: %d, want 204", st)
	}
	if st, _ := m.post(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`); st != http.StatusNotFound {
		t.Errorf("a deleted session's request: %d, want 404", st)
	}
}
