package fleettest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
	"atelier/internal/audit"
	"atelier/internal/fleettest"
	"atelier/internal/tasks"
)

// openView opens a live view of session id with an embed token, through
// the fleet, and reads the desktop's RFB banner. It returns the WebSocket,
// or the HTTP status that refused it.
func openView(t *testing.T, ctx context.Context, fleetURL, id, token string) (*websocket.Conn, int) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(fleetURL, "http") + "/sessions/" + id + "/vnc?token=" + url.QueryEscape(token)
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{Subprotocols: []string{"binary"}})
	if err != nil {
		if resp != nil {
			return nil, resp.StatusCode
		}
		t.Fatalf("dial the view: %v", err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	if _, banner, err := ws.Read(ctx); err != nil || !strings.HasPrefix(string(banner), "RFB 003.") {
		t.Fatalf("first message %q (%v), want an RFB banner", banner, err)
	}
	return ws, http.StatusSwitchingProtocols
}

// waitClosedBy reads a view until the fleet closes it and checks the close:
// 1008 (policy violation) with a reason naming why.
func waitClosedBy(t *testing.T, ctx context.Context, ws *websocket.Conn, why string) time.Duration {
	t.Helper()
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, _, err := ws.Read(ctx)
		if err == nil {
			continue // frames the desktop sent
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, why) {
			t.Fatalf("the view ended with %v after %v; want a 1008 close saying %q", err, time.Since(t0), why)
		}
		return time.Since(t0)
	}
}

// pageStatus is the status of the viewer page for a token.
func pageStatus(t *testing.T, fleetURL, id, token string) int {
	t.Helper()
	resp, err := http.Get(fleetURL + "/sessions/" + id + "/embed?token=" + url.QueryEscape(token))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestLiveViewEndsWithItsToken opens real views of a real desktop through
// the fleet: one is closed when its token expires; the session's views are
// limited; revoking the session's tokens closes the open views at once and
// refuses the old links, also after a fleet restart; the audit says so.
func TestLiveViewEndsWithItsToken(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{Token: token, MaxStreams: 2})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "view-tokens"}, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	short, err := f.Client.EmbedLink(ctx, s.ID, "view", 2)
	if err != nil {
		t.Fatal(err)
	}
	ws, _ := openView(t, ctx, f.URL, s.ID, short.Token)
	took := waitClosedBy(t, ctx, ws, "expired")
	if left := time.Until(short.ExpiresAt); left > 0 {
		t.Errorf("the view was closed %v before its token expired", left)
	}
	t.Logf("a 2s token's view was closed after %v", took.Round(time.Millisecond))

	long, err := f.Client.EmbedLink(ctx, s.ID, "control", 3600)
	if err != nil {
		t.Fatal(err)
	}
	// The expired view's place is free the moment it was closed.
	a, sa := openView(t, ctx, f.URL, s.ID, long.Token)
	b, sb := openView(t, ctx, f.URL, s.ID, long.Token)
	if a == nil || b == nil {
		t.Fatalf("two views of a session limited to 2, after the first closed: %d and %d, want both open", sa, sb)
	}
	if _, status := openView(t, ctx, f.URL, s.ID, long.Token); status != http.StatusTooManyRequests {
		t.Errorf("a third view of a session limited to 2: %d, want 429", status)
	}

	rv, err := f.Client.RevokeEmbedTokens(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rv.ClosedViews != 2 || rv.Generation != 1 {
		t.Errorf("revocation %+v, want 2 views closed, generation 1", rv)
	}
	waitClosedBy(t, ctx, a, "revoked")
	waitClosedBy(t, ctx, b, "revoked")
	if got := pageStatus(t, f.URL, s.ID, long.Token); got != http.StatusForbidden {
		t.Errorf("a revoked link's page: %d, want 403", got)
	}
	if _, status := openView(t, ctx, f.URL, s.ID, long.Token); status != http.StatusForbidden {
		t.Errorf("a revoked link's view: %d, want 403", status)
	}
	fresh, err := f.Client.EmbedLink(ctx, s.ID, "view", 3600)
	if err != nil {
		t.Fatal(err)
	}
	c, status := openView(t, ctx, f.URL, s.ID, fresh.Token)
	if c == nil {
		t.Fatalf("a view with a link minted after the revocation: %d, want it open", status)
	}
	c.Close(websocket.StatusNormalClosure, "")

	// The revocation is the store's: a restarted fleet refuses the old link.
	f.Close()
	f2 := fleettest.New(t, fleettest.Options{Token: token, DataDir: f.DataDir})
	if got := pageStatus(t, f2.URL, s.ID, long.Token); got != http.StatusForbidden {
		t.Errorf("a revoked link after a restart: %d, want 403", got)
	}
	if got := pageStatus(t, f2.URL, s.ID, fresh.Token); got != http.StatusOK {
		t.Errorf("a link minted after the revocation, after a restart: %d, want 200", got)
	}

	closes := map[string]int{}
	revokes := 0
	status, body := apiCall(t, ctx, f2, http.MethodGet, "/sessions/"+s.ID+"/audit?kind=view", nil)
	if status != http.StatusOK {
		t.Fatalf("audit: %d %s", status, body)
	}
	for line := range strings.Lines(string(body)) {
		var e audit.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		switch e.Detail["event"] {
		case "close":
			why, _ := e.Detail["why"].(string)
			closes[why]++
		case "revoke":
			revokes++
		}
	}
	if closes["expired"] != 1 || closes["revoked"] != 2 || revokes != 1 {
		t.Errorf("audit: view closes by why %v and %d revocations; want 1 expired, 2 revoked, 1 revocation", closes, revokes)
	}
}

// TestDataDirIsPrivate runs a fleet under umask 0 through a desktop, a
// task with step screenshots, a snapshot, a live view and the audit log,
// then walks its data dir: every file the fleet wrote is 0600 and every
// directory 0700, but the ones the desktop user must traverse to reach its
// home and run dir (0711, never readable). Homes and run dirs are the
// desktop user's and the runtime's, and left out.
func TestDataDirIsPrivate(t *testing.T) {
	fleettest.RequireDesktops(t)
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	f := fleettest.New(t, fleettest.Options{Token: token})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "modes"}, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	spec := tasks.Spec{Goal: "look", Backend: "scripted", Script: []agentapi.Request{{Action: agentapi.Key, Text: "super+Return"}}}
	status, body := apiCall(t, ctx, f, http.MethodPost, "/sessions/"+s.ID+"/task", spec)
	if status != http.StatusAccepted {
		t.Fatalf("submit: %d %s", status, body)
	}
	waitTasksDone(t, ctx, f, s.ID)
	if _, err := f.Client.TakeSnapshot(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	link, err := f.Client.EmbedLink(ctx, s.ID, "view", 60)
	if err != nil {
		t.Fatal(err)
	}
	ws, _ := openView(t, ctx, f.URL, s.ID, link.Token)
	ws.Close(websocket.StatusNormalClosure, "")
	// Walked while the fleet runs: a clean close checkpoints and removes
	// the database's -wal and -shm.

	// The desktop user passes through these on its way to its home, its
	// run dir and the egress gate's socket (whose dir it may not list).
	desk := filepath.Join(f.DataDir, "desktops", s.ID)
	traversed := map[string]bool{f.DataDir: true, filepath.Join(f.DataDir, "desktops"): true, desk: true,
		filepath.Join(desk, "home.fs"): true, filepath.Join(desk, "gate"): true}
	seen := map[string]bool{}
	err = filepath.WalkDir(f.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(f.DataDir, p)
		// Homes (plain, or in their own filesystem) and run dirs are the
		// desktop user's, not the fleet's.
		if p == filepath.Join(desk, "home") || p == filepath.Join(desk, "run") || p == filepath.Join(desk, "home.fs", "home") ||
			p == filepath.Join(desk, "home.fs", "lost+found") {
			return fs.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		perm := fi.Mode().Perm()
		seen[strings.SplitN(rel, string(filepath.Separator), 2)[0]] = true
		switch {
		case d.IsDir() && traversed[p]:
			if perm != 0o711 {
				t.Errorf("%s/: mode %o, want 711 (traversable, not readable)", rel, perm)
			}
		case d.IsDir():
			if perm != 0o700 {
				t.Errorf("%s/: mode %o, want 700", rel, perm)
			}
		case fi.Mode().IsRegular() && perm != 0o600:
			t.Errorf("%s: mode %o, want 600", rel, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"atelier.db", "atelier.db-wal", "audit", "snapshots", "tasks", "embed.key", "desktops"} {
		if !seen[want] {
			t.Errorf("the data dir has no %s: the walk proves less than it should (saw %v)", want, seen)
		}
	}
}

// waitTasksDone waits until every task of session id has ended.
func waitTasksDone(t *testing.T, ctx context.Context, f *fleettest.Fleet, id string) {
	t.Helper()
	for {
		status, body := apiCall(t, ctx, f, http.MethodGet, "/sessions/"+id+"/tasks", nil)
		if status == http.StatusOK && strings.Contains(string(body), `"ended_at"`) && !strings.Contains(string(body), `"status":"running"`) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the task did not end: %d %s", status, body)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestTokenlessNeedsTheFlag: `atelier serve` without a token refuses to
// start unless told to, refuses to listen beyond loopback even then, and
// warns loudly when it runs.
func TestTokenlessNeedsTheFlag(t *testing.T) {
	fleettest.RequireDesktops(t)
	bin := fleettest.Binary(t, "atelier")
	env := func() []string {
		var out []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "ATELIER_API_TOKEN=") && !strings.HasPrefix(kv, "ATELIER_INSECURE_NO_TOKEN=") {
				out = append(out, kv)
			}
		}
		return out
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no token":                 {nil, "--insecure-no-token"},
		"no token, all interfaces": {[]string{"--insecure-no-token", "--addr", "0.0.0.0:0"}, "beyond loopback"},
	} {
		cmd := exec.CommandContext(t.Context(), bin, append([]string{"serve", "--data-dir", fleettest.DataDir(t)}, tc.args...)...)
		cmd.Env = env()
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: serve ended with %v:\n%s\nwant a refusal naming %q", name, err, out, tc.want)
		}
	}
	p := fleettest.Serve(t, fleettest.Options{})
	if !strings.HasPrefix(p.URL, "http://127.0.0.1:") || !strings.Contains(p.Log.String(), "INSECURE") {
		t.Errorf("a tokenless fleet at %s, log:\n%s\nwant loopback and a loud warning", p.URL, p.Log)
	}
}
