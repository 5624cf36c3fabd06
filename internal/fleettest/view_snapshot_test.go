package fleettest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"atelier/internal/apitype"
	"atelier/internal/cli"
	"atelier/internal/client"
	"atelier/internal/fleettest"
)

// TestLiveViewThroughFleet follows a session's embed_url as a browser
// would: the page, then the WebSocket to the desktop's RFB server.
func TestLiveViewThroughFleet(t *testing.T) { fleettest.EachRuntime(t, testLiveViewThroughFleet) }

func testLiveViewThroughFleet(t *testing.T, runtime string) {
	f := fleettest.New(t, fleettest.Options{Token: token, Runtime: runtime})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "view"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.EmbedURL, "/sessions/"+s.ID+"/embed?token=") || !strings.Contains(s.ViewURL, "/sessions/"+s.ID+"/embed?token=") || s.EmbedURL == s.ViewURL {
		t.Fatalf("embed_url %q, view_url %q: want two distinct links to the viewer", s.EmbedURL, s.ViewURL)
	}
	again, err := f.Client.Session(ctx, s.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if again.EmbedURL == s.EmbedURL {
		t.Errorf("the same embed_url in two responses: tokens are not minted afresh")
	}

	resp, err := http.Get(f.URL + s.EmbedURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET embed_url: %d %q: %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), page)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors *") {
		t.Errorf("Content-Security-Policy %q: want frame-ancestors *", csp)
	}
	if rp := resp.Header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("Referrer-Policy %q, want no-referrer", rp)
	}

	u, err := url.Parse(s.EmbedURL)
	if err != nil {
		t.Fatal(err)
	}
	vnc := "ws" + strings.TrimPrefix(f.URL, "http") + "/sessions/" + s.ID + "/vnc?token="
	ws, _, err := websocket.Dial(ctx, vnc+u.Query().Get("token"), &websocket.DialOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		t.Fatalf("dial the view: %v", err)
	}
	defer ws.CloseNow()
	_, banner, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("read the RFB banner: %v", err)
	}
	if !strings.HasPrefix(string(banner), "RFB 003.") {
		t.Errorf("first message %q, want an RFB banner", banner)
	}
	ws.Close(websocket.StatusNormalClosure, "")

	for name, tok := range map[string]string{"bad token": "not-a-token", "API token": token, "no token": ""} {
		_, resp, err := websocket.Dial(ctx, vnc+url.QueryEscape(tok), nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: dial %v, %v; want 403", name, err, resp)
		}
	}

	// The audit records the control view opening and closing; refused
	// dials leave no entry. The close is written as the proxy winds down.
	var events []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		status, body := apiCall(t, ctx, f, http.MethodGet, "/sessions/"+s.ID+"/audit?kind=view", nil)
		if status != http.StatusOK {
			t.Fatalf("audit: %d %s", status, body)
		}
		events = events[:0]
		for _, e := range decodeEntries(t, body) {
			events = append(events, e.Actor+" "+e.Detail["event"].(string))
		}
		if len(events) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if want := []string{"viewer:control open", "viewer:control close"}; strings.Join(events, ",") != strings.Join(want, ",") {
		t.Errorf("view audit entries %q, want %q", events, want)
	}

	link, err := f.Client.EmbedLink(ctx, s.ID, "view", 60)
	if err != nil || link.Mode != "view" || time.Until(link.ExpiresAt) > 61*time.Second {
		t.Errorf("embed-token: %+v, %v", link, err)
	}
	if _, err := f.Client.EmbedLink(ctx, unknownSession, "view", 0); !isStatus(err, http.StatusNotFound) {
		t.Errorf("embed-token for an unknown session: %v, want 404", err)
	}
	if _, err := f.Client.EmbedLink(ctx, s.ID, "admin", 0); !isStatus(err, http.StatusBadRequest) {
		t.Errorf("embed-token with a bad mode: %v, want 400", err)
	}
}

// TestSnapshotCloneThroughFleet snapshots a session's home and creates a
// clone from it: the file is in the clone's home.
func TestSnapshotCloneThroughFleet(t *testing.T) {
	fleettest.EachRuntime(t, testSnapshotCloneThroughFleet)
}

func testSnapshotCloneThroughFleet(t *testing.T, runtime string) {
	f := fleettest.New(t, fleettest.Options{Token: token, Runtime: runtime})
	c := f.Client
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	s, err := c.CreateSession(ctx, apitype.CreateSession{Label: "original"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := "kept across a snapshot " + strconv.FormatInt(time.Now().UnixNano(), 36)
	f.Home(s.ID).WriteFile(t, "notes.txt", want)

	sn, err := c.TakeSnapshot(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if sn.ID == "" || sn.Size <= 0 || len(sn.SHA256) != 64 || sn.SessionID != s.ID {
		t.Fatalf("snapshot %+v", sn)
	}
	list, err := c.Snapshots(ctx)
	if err != nil || len(list) != 1 || list[0].ID != sn.ID {
		t.Fatalf("snapshots: %+v, %v", list, err)
	}

	clone, err := c.CreateSession(ctx, apitype.CreateSession{Label: "clone", SnapshotID: sn.ID}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if clone.SnapshotID != sn.ID || clone.State != apitype.StateReady {
		t.Errorf("clone %+v", clone)
	}
	if got, err := f.Home(clone.ID).ReadFile(t, "notes.txt"); err != nil || got != want {
		t.Errorf("clone's notes.txt: %q, %v; want %q", got, err, want)
	}

	// The same through the CLI: ls, create --from, rm.
	atelier := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		vars := map[string]string{"ATELIER_URL": f.URL, "ATELIER_API_TOKEN": token}
		env := &cli.Env{Getenv: func(k string) string { return vars[k] }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}
		if err := cli.Run(ctx, args, env); err != nil {
			t.Fatalf("atelier %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String()
	}
	if out := atelier("snapshot", "ls"); !strings.Contains(out, sn.ID) || !strings.Contains(out, s.ID) {
		t.Errorf("atelier snapshot ls:\n%s", out)
	}
	var cliClone apitype.Session
	if err := json.Unmarshal([]byte(atelier("session", "create", "--from", sn.ID, "--json")), &cliClone); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Home(cliClone.ID).ReadFile(t, "notes.txt"); err != nil || got != want {
		t.Errorf("CLI clone's notes.txt: %q, %v; want %q", got, err, want)
	}
	// Where snapshots carry an image (docker), the clones run from it, and
	// the engine does not remove it from under them: deleting the snapshot
	// is refused, changing nothing, until they go.
	if sn.Image != "" {
		if err := c.DeleteSnapshot(ctx, sn.ID); !isStatus(err, http.StatusConflict) {
			t.Errorf("delete while clones run from it: %v, want 409", err)
		}
		if list, err := c.Snapshots(ctx); err != nil || len(list) != 1 {
			t.Errorf("snapshots after a refused delete: %+v, %v; want it kept", list, err)
		}
	}
	for _, id := range []string{clone.ID, cliClone.ID} {
		if err := c.DeleteSession(ctx, id, true); err != nil {
			t.Fatal(err)
		}
	}
	atelier("snapshot", "rm", sn.ID)
	if err := c.DeleteSnapshot(ctx, sn.ID); !isStatus(err, http.StatusNotFound) {
		t.Errorf("delete twice: %v, want 404", err)
	}
	if list, err := c.Snapshots(ctx); err != nil || len(list) != 0 {
		t.Errorf("snapshots after delete: %+v, %v", list, err)
	}
	for _, bad := range []string{"NOT-AN-ID", "../etc", "x"} {
		if err := c.DeleteSnapshot(ctx, bad); !isStatus(err, http.StatusBadRequest) && !isStatus(err, http.StatusNotFound) {
			t.Errorf("delete %q: %v, want 4xx", bad, err)
		}
	}
	if _, err := c.CreateSession(ctx, apitype.CreateSession{SnapshotID: "NOT-AN-ID"}, 0); !isStatus(err, http.StatusBadRequest) {
		t.Errorf("create from a bad snapshot id: %v, want 400", err)
	}
	// The body names a snapshot that is gone: 404, as for any missing thing.
	if _, err := c.CreateSession(ctx, apitype.CreateSession{SnapshotID: sn.ID}, 0); !isStatus(err, http.StatusNotFound) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("create from a deleted snapshot: %v, want 404 saying it is not found", err)
	}
	if _, err := c.TakeSnapshot(ctx, unknownSession); !isStatus(err, http.StatusNotFound) {
		t.Errorf("snapshot of an unknown session: %v, want 404", err)
	}
}

// isStatus reports whether err is the API's answer with status.
func isStatus(err error, status int) bool {
	ae, ok := errors.AsType[*client.Error](err)
	return ok && ae.Status == status
}

// unknownSession is shaped like a session id but names none.
const unknownSession = "sess_aaaaaaaaaaaaaaaaaaaaaaaaaa"
