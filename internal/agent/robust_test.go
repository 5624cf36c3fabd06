package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"atelier/internal/agentapi"
)

// TestClientsAtOnce runs several clients together, and one that sends
// garbage, an oversized line and then disconnects mid-request; the others
// are answered correctly throughout.
func TestClientsAtOnce(t *testing.T) {
	e := start(t)
	p := e.openProbe(t)

	// A misbehaving client: garbage, a line over the limit (answered, and
	// the connection keeps working), then a request cut off by a hang-up.
	bad, err := net.Dial("unix", e.sock)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(bad)
	fmt.Fprintf(bad, "\x00\xff garbage {{{\n")
	if resp, err := agentapi.ReadResponse(br); err != nil || resp.Error == nil || resp.Error.Code != agentapi.CodeBadJSON {
		t.Fatalf("garbage: %+v %v", resp.Error, err)
	}
	bad.Write([]byte(strings.Repeat("x", agentapi.MaxRequestBytes+10) + "\n"))
	if resp, err := agentapi.ReadResponse(br); err != nil || resp.Error == nil || resp.Error.Code != agentapi.CodeTooLarge {
		t.Fatalf("oversized: %+v %v", resp.Error, err)
	}
	fmt.Fprintf(bad, `{"v":1,"id":"still-here","action":"cursor_position"}`+"\n")
	if resp, err := agentapi.ReadResponse(br); err != nil || !resp.OK || resp.ID != "still-here" {
		t.Fatalf("after garbage: %+v %v", resp, err)
	}
	fmt.Fprintf(bad, `{"v":1,"action":"wait","duration":5}`+"\n")
	slow, err := net.Dial("unix", e.sock) // one that never reads
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, `{"v":1,"action":"wait","dura`)

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := agentapi.UnixClient(e.sock)
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for j := range 10 {
				id := fmt.Sprintf("c%d-%d", i, j)
				var req agentapi.Request
				switch j % 3 {
				case 0:
					req = agentapi.Request{ID: id, Action: agentapi.Screenshot, Scale: 0.1}
				case 1:
					req = agentapi.Request{ID: id, Action: agentapi.MouseMove, Coordinate: &agentapi.Point{X: 100 + i, Y: 100 + j}}
				default:
					req = agentapi.Request{ID: id, Action: agentapi.StatusVerb}
				}
				resp, err := c.Do(ctx, req)
				if err != nil || resp.ID != id {
					errs <- fmt.Errorf("client %d request %d: id %q, %v", i, j, resp.ID, err)
					return
				}
			}
		}()
	}
	bad.Close() // mid-request: its wait is still running
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Input still works and reaches the terminal.
	e.do(t, agentapi.Request{Action: agentapi.Type, Text: "ok"})
	p.expect(t, "ok")
}

func TestStatusAndWait(t *testing.T) {
	e := start(t)
	resp := e.do(t, agentapi.Request{Action: agentapi.StatusVerb})
	if st := resp.Status; st == nil || st.Width != 1280 || st.Height != 720 || !st.Ready || len(st.Components) != 1 {
		t.Fatalf("status %+v", resp.Status)
	}
	if st := resp.Status; st.AgentVersion == "" || !slices.Equal(st.Verbs, agentapi.Verbs()) {
		t.Errorf("status reports agent %q serving %v; want its version and every verb %v", st.AgentVersion, st.Verbs, agentapi.Verbs())
	}
	t0 := time.Now()
	e.do(t, agentapi.Request{Action: agentapi.Wait, Duration: 0.2})
	if d := time.Since(t0); d < 200*time.Millisecond {
		t.Errorf("wait 0.2 s returned after %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := e.client.Do(ctx, agentapi.Request{Action: agentapi.Wait, Duration: 30}); err == nil {
		t.Error("a cancelled wait succeeded")
	}
}

// TestNoCompositor checks that without a compositor input and screenshots
// answer unavailable, and the agent keeps serving.
func TestNoCompositor(t *testing.T) {
	e := serve(t, filepath.Join(t.TempDir(), "wayland-9"), nil)
	for _, req := range []agentapi.Request{
		{Action: agentapi.Screenshot},
		{Action: agentapi.LeftClick, Coordinate: &agentapi.Point{X: 1, Y: 1}},
		{Action: agentapi.Type, Text: "x"},
	} {
		if code := e.doErr(t, req); code != agentapi.CodeUnavailable {
			t.Errorf("%s without a compositor: code %s, want unavailable", req.Action, code)
		}
	}
	if resp := e.do(t, agentapi.Request{Action: agentapi.CursorPosition}); !resp.OK {
		t.Errorf("cursor_position: %+v", resp)
	}
}

// TestCompositorRestart checks that a lost compositor is reported as
// unavailable and that the agent reconnects once one is back.
func TestCompositorRestart(t *testing.T) {
	e := start(t)
	e.do(t, agentapi.Request{Action: agentapi.MouseMove, Coordinate: &agentapi.Point{X: 5, Y: 5}})
	old := e.sway.WaylandSocket
	e.sway.Restart(t)
	if e.sway.WaylandSocket != old {
		t.Skipf("SKIP: the restarted sway chose another socket (%s, was %s)", e.sway.WaylandSocket, old)
	}
	// The first request may still find the old connection alive for an
	// instant; within a few requests the agent must have reconnected.
	var last error
	for range 50 {
		_, last = e.client.Do(context.Background(), agentapi.Request{Action: agentapi.MouseMove, Coordinate: &agentapi.Point{X: 6, Y: 6}})
		if last == nil {
			break
		}
		if code := last.(*agentapi.Error).Code; code != agentapi.CodeUnavailable {
			t.Fatalf("during the restart: %v, want unavailable", last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("agent did not reconnect: %v", last)
	}
	p := e.openProbe(t)
	e.do(t, agentapi.Request{Action: agentapi.Type, Text: "back"})
	p.expect(t, "back")
}
