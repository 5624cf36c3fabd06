package fleettest_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"atelier/internal/apitype"
	"atelier/internal/client"
	"atelier/internal/fleettest"
)

func TestSocketRedirect(t *testing.T) { fleettest.EachRuntime(t, testSocketRedirect) }

// testSocketRedirect: desktop a, typing into its own terminal, replaces
// its agent.sock and vnc.sock with links to desktop b's. Through the API,
// a's view and, after a fleet restart (fresh dials), its actions fail with
// a clear error; nothing reaches b, whose audit stays as it was.
func testSocketRedirect(t *testing.T, runtime string) {
	f := fleettest.New(t, fleettest.Options{Runtime: runtime})
	ctx := t.Context()
	a, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "attacker"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "victim", Resolution: "1024x768"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	brun := filepath.Join(f.DataDir, "desktops", b.ID, "run")
	home := f.Home(a.ID)
	typeCommand(t, f.Client, home, a.ID, "", fmt.Sprintf(
		`cd /run/atelier && for n in agent.sock vnc.sock; do ln -sfn %s/$n .l$n && mv -T .l$n $n; done; cd; echo planted > ~/planted`, brun))
	home.WaitFile(t, "planted", "planted\n")
	before := auditLines(t, f, b.ID)

	// The view dials afresh: it must not carry b's screen.
	u, err := url.Parse(a.EmbedURL)
	if err != nil {
		t.Fatal(err)
	}
	vnc := "ws" + strings.TrimPrefix(f.URL, "http") + "/sessions/" + a.ID + "/vnc?token=" + u.Query().Get("token")
	if ws, _, err := websocket.Dial(ctx, vnc, &websocket.DialOptions{Subprotocols: []string{"binary"}}); err == nil {
		_, msg, err := ws.Read(ctx)
		ws.CloseNow()
		if err == nil {
			t.Errorf("a's view carried %q from a socket planted in a's run dir", msg)
		} else {
			t.Logf("a's view: %v", err)
		}
	} else {
		t.Logf("a's view: %v", err)
	}

	// A restarted fleet holds no connection to a's agent from before.
	f.Close()
	f2 := fleettest.New(t, fleettest.Options{Runtime: runtime, DataDir: f.DataDir})
	_, err = f2.Client.Act(ctx, a.ID, map[string]any{"action": "type", "text": "echo pwned > ~/pwned\n"})
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Code == "" || ae.Status < 400 {
		t.Errorf("a's actions through planted links: %v, want an API error", err)
	} else {
		t.Logf("a's action: %d %s: %s", ae.Status, ae.Code, ae.Message)
	}
	if im, err := f2.Client.Screenshot(ctx, a.ID, client.ScreenshotOptions{}); err == nil {
		t.Errorf("a's screenshot through planted links: %dx%d, want an error", im.Width, im.Height)
	}
	if after := auditLines(t, f2, b.ID); after != before {
		t.Errorf("b's audit changed: %d entries, then %d", before, after)
	}
	// b still answers, as itself.
	if im, err := f2.Client.Screenshot(ctx, b.ID, client.ScreenshotOptions{}); err != nil || im.Width != 1024 {
		t.Errorf("b's screenshot: %+v %v", im.Width, err)
	}
}

func auditLines(t *testing.T, f *fleettest.Fleet, id string) int {
	t.Helper()
	status, body := apiCall(t, t.Context(), f, http.MethodGet, "/sessions/"+id+"/audit", nil)
	if status != http.StatusOK {
		t.Fatalf("audit of %s: %d %s", id, status, body)
	}
	return len(decodeEntries(t, body))
}
