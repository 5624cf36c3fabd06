package mcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"atelier/internal/audit"
	"atelier/internal/fleettest"
	"atelier/internal/mcp"
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

// connect opens an MCP session with the SDK's client over one transport:
// streamable HTTP at the fleet's /mcp, or the in-memory transport around
// the server atelier mcp runs on stdio (its CLI test runs the command).
func connect(t *testing.T, f *fleettest.Fleet, transport string, progress chan<- *sdk.ProgressNotificationParams) *sdk.ClientSession {
	t.Helper()
	var tr sdk.Transport
	switch transport {
	case "http":
		tr = &sdk.StreamableClientTransport{Endpoint: f.URL + "/mcp", HTTPClient: &http.Client{Transport: bearer{token}}, MaxRetries: -1}
	case "stdio":
		st, ct := sdk.NewInMemoryTransports()
		ss, err := mcp.NewServer(f.Client, "test").Connect(t.Context(), st, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ss.Close() })
		tr = ct
	}
	opts := &sdk.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *sdk.ProgressNotificationClientRequest) {
		progress <- r.Params
	}}
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
// transports in turn.
func TestTools(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short: MCP tests need a real desktop")
	}
	fleettest.RequireDesktops(t)
	f := fleettest.New(t, fleettest.Options{Token: token})
	var id string
	for _, transport := range []string{"http", "stdio"} {
		t.Run(transport, func(t *testing.T) {
			progress := make(chan *sdk.ProgressNotificationParams, 100)
			cs := connect(t, f, transport, progress)
			if id == "" {
				var s mcp.Session
				ok(t, cs, "create_session", map[string]any{"label": "mcp", "resolution": "1024x768"}, &s)
				if s.State != "ready" || s.Resolution != "1024x768" {
					t.Fatalf("create_session answered %+v, want a ready 1024x768 session", s)
				}
				id = s.ID
			}
			var list mcp.SessionList
			ok(t, cs, "list_sessions", nil, &list)
			if len(list.Sessions) != 1 || list.Sessions[0].ID != id {
				t.Fatalf("list_sessions: %+v, want just %s", list, id)
			}

			screenshot(t, cs, id)
			typeIntoTerminal(t, f, cs, id, transport)
			// Over HTTP the fleet calls its own API in process, as mcp;
			// atelier mcp is a client of the API with the token.
			checkAudited(t, f, id, "typed-over-"+transport, map[string]string{"http": audit.ActorMCP, "stdio": "token:api"}[transport])
			readResources(t, cs, id, "typed-over-"+transport)
			runTask(t, f, cs, id, transport, progress)
			leaseRefusesInput(t, f, cs, id)
			badArguments(t, cs, id)
		})
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

	var half mcp.ImageInfo
	ok(t, cs, "screenshot", map[string]any{"session_id": id, "scale": 0.5}, &half)
	if half.Width != 512 || half.Height != 384 {
		t.Errorf("screenshot at scale 0.5 states %dx%d, want 512x384", half.Width, half.Height)
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
func runTask(t *testing.T, f *fleettest.Fleet, cs *sdk.ClientSession, id, transport string, progress <-chan *sdk.ProgressNotificationParams) {
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

// TestHTTPNeedsToken checks /mcp sits behind the API's bearer token.
func TestHTTPNeedsToken(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short")
	}
	fleettest.RequireDesktops(t)
	f := fleettest.New(t, fleettest.Options{Token: token})
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
