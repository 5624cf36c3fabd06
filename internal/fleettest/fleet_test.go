package fleettest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"atelier/internal/apitype"
	"atelier/internal/cli"
	"atelier/internal/client"
	"atelier/internal/fleettest"
)

func TestMain(m *testing.M) { fleettest.Main(m) }

const token = "fleettest-token-0123456789abcdef"

// act sends actions through the API and fails the test unless all ran.
func act(t *testing.T, c *client.Client, id string, body any) apitype.ActionsResult {
	t.Helper()
	return actWithLease(t, c, id, "", body)
}

// actWithLease is act naming a control lease.
func actWithLease(t *testing.T, c *client.Client, id, lease string, body any) apitype.ActionsResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := c.ActWithLease(ctx, id, lease, body)
	if err != nil {
		t.Fatalf("act %v: %v", body, err)
	}
	if !res.OK {
		t.Fatalf("act %v: %+v", body, res.Results)
	}
	return res
}

// typeCommand opens a terminal through the API and types cmdline into its
// shell, holding lease if one is given, and returns how many input actions
// it sent. Keys typed before the shell reads are lost, so a marker file
// tells when it does.
func typeCommand(t *testing.T, c *client.Client, home fleettest.Home, id, lease, cmdline string) (inputs int) {
	t.Helper()
	act := func(t *testing.T, c *client.Client, id string, body any) {
		t.Helper()
		actWithLease(t, c, id, lease, body)
		inputs++
	}
	act(t, c, id, map[string]any{"action": "key", "text": "super+Return"})
	marker := ".ready-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	deadline := time.Now().Add(20 * time.Second)
	for {
		act(t, c, id, map[string]any{"action": "type", "text": "touch ~/" + marker + "\n"})
		if _, err := home.ReadFile(t, marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			shot := filepath.Join(os.TempDir(), "fleettest-"+id+".png")
			if im, err := c.Screenshot(t.Context(), id, client.ScreenshotOptions{}); err == nil {
				os.WriteFile(shot, im.Data, 0o644)
			}
			t.Fatalf("no shell in a terminal within 20s of super+Return (screen: %s)", shot)
		}
		time.Sleep(300 * time.Millisecond)
	}
	act(t, c, id, map[string]any{"action": "type", "text": cmdline + "\n"})
	return inputs
}

func decodeImage(t *testing.T, im apitype.Image) image.Image {
	t.Helper()
	img, format, err := image.Decode(bytes.NewReader(im.Data))
	if err != nil {
		t.Fatalf("decode %s image: %v", im.Format, err)
	}
	if format != im.Format {
		t.Errorf("image is %s, labelled %s", format, im.Format)
	}
	if b := img.Bounds(); b.Dx() != im.Width || b.Dy() != im.Height {
		t.Errorf("image is %dx%d, labelled %dx%d", b.Dx(), b.Dy(), im.Width, im.Height)
	}
	return img
}

func hex(c color.Color) string {
	r, g, b, _ := c.RGBA()
	return fmt.Sprintf("#%02x%02x%02x", r>>8, g>>8, b>>8)
}

func TestSessionLifecycle(t *testing.T) { fleettest.EachRuntime(t, testSessionLifecycle) }

func testSessionLifecycle(t *testing.T, runtime string) {
	f := fleettest.New(t, fleettest.Options{Token: token, Runtime: runtime})
	c := f.Client
	ctx := t.Context()

	t0 := time.Now()
	s, err := c.CreateSession(ctx, apitype.CreateSession{Label: "e2e"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("create → ready in %v", time.Since(t0))
	if s.State != apitype.StateReady || s.Resolution != "1280x720" || s.Theme != "terracotta" {
		t.Fatalf("created %+v", s)
	}

	// A screenshot: a PNG of the whole output, its geometry in headers.
	im, err := c.Screenshot(ctx, s.ID, client.ScreenshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	img := decodeImage(t, im)
	if im.Width != 1280 || im.Height != 720 || im.Scale != 1 {
		t.Errorf("screenshot %dx%d scale %v", im.Width, im.Height, im.Scale)
	}
	// The middle of an empty desktop shows the theme's wallpaper.
	if got := hex(img.At(640, 400)); got != "#b5654a" {
		t.Errorf("wallpaper pixel %s, want terracotta's #b5654a", got)
	}
	// The CLI's screenshot of a session goes through the same API.
	shot := filepath.Join(t.TempDir(), "cli.png")
	var out bytes.Buffer
	vars := map[string]string{"ATELIER_URL": f.URL, "ATELIER_API_TOKEN": token}
	env := &cli.Env{Getenv: func(k string) string { return vars[k] }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
	if err := cli.Run(ctx, []string{"screenshot", s.ID, "-o", shot}, env); err != nil {
		t.Fatalf("atelier screenshot %s: %v\n%s", s.ID, err, out.String())
	}
	if b, err := os.ReadFile(shot); err != nil {
		t.Error(err)
	} else if cfg, err := png.DecodeConfig(bytes.NewReader(b)); err != nil || cfg.Width != 1280 || cfg.Height != 720 {
		t.Errorf("atelier screenshot wrote a %dx%d PNG (%v)", cfg.Width, cfg.Height, err)
	}
	small, err := c.Screenshot(ctx, s.ID, client.ScreenshotOptions{Format: "jpeg", Scale: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	decodeImage(t, small)
	if small.Width != 640 || small.Height != 360 || small.Scale != 0.5 {
		t.Errorf("scaled jpeg %dx%d scale %v", small.Width, small.Height, small.Scale)
	}

	// Act: type into a terminal; the text arrives in a file in the home.
	home := f.Home(s.ID)
	typeCommand(t, c, home, s.ID, "", "echo typed-through-the-fleet > ~/e2e.txt")
	home.WaitFile(t, "e2e.txt", "typed-through-the-fleet\n")

	// Theme, live: the wallpaper changes colour, the desktop is not restarted.
	// (After it, keys are left with super held: a desktop bug, reported; so
	// the terminal is driven first.)
	before := s.Detail
	if _, err := c.SetTheme(ctx, s.ID, "graphite"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		im, err := c.Screenshot(ctx, s.ID, client.ScreenshotOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := hex(decodeImage(t, im).At(2, 400)); got == "#16191d" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("wallpaper pixel %s 15s after the theme change, want graphite's #16191d", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got, _ := c.Session(ctx, s.ID, 0); got.Detail != before || got.Theme != "graphite" {
		t.Errorf("after a theme change: detail %q → %q, theme %q", before, got.Detail, got.Theme)
	}

	// Act and look in one round trip.
	res := act(t, c, s.ID, apitype.Actions{Actions: []json.RawMessage{raw(`{"action":"mouse_move","coordinate":[100,200]}`), raw(`{"action":"cursor_position"}`)}, Observe: true, Scale: 0.5})
	if len(res.Results) != 2 || res.Results[1].Cursor == nil || *res.Results[1].Cursor != [2]int{100, 200} {
		t.Errorf("results %+v", res.Results)
	}
	if o := res.Observation; o == nil || o.Width != 640 || o.Height != 360 || o.Scale != 0.5 {
		t.Errorf("observation %+v", res.Observation)
	} else {
		decodeImage(t, *o)
	}
	// A refused action stops the list and says why; what ran is reported.
	res, err = c.Act(ctx, s.ID, []json.RawMessage{raw(`{"action":"wait","duration":0.01}`), raw(`{"action":"key","text":"ctrl+nosuchkey"}`), raw(`{"action":"wait","duration":0.01}`)})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || len(res.Results) != 2 || res.Results[1].Error == nil || res.Results[1].Error.Code != "bad_key" {
		t.Errorf("a bad key: %+v", res)
	}

	// Stop and start keep the home.
	if s, err = c.StopSession(ctx, s.ID); err != nil || s.State != apitype.StateStopped {
		t.Fatalf("stop: %+v %v", s, err)
	}
	if _, err := c.Screenshot(ctx, s.ID, client.ScreenshotOptions{}); !isCode(err, apitype.CodeNotRunning) {
		t.Errorf("screenshot of a stopped session: %v", err)
	}
	if s, err = c.StartSession(ctx, s.ID, 60*time.Second); err != nil || s.State != apitype.StateReady {
		t.Fatalf("start: %+v %v", s, err)
	}
	home.WaitFile(t, "e2e.txt", "typed-through-the-fleet\n")
	if s.Theme != "graphite" {
		t.Errorf("theme after restart %q", s.Theme)
	}

	// Delete keeps the home; purge removes it.
	if err := c.DeleteSession(ctx, s.ID, false); err != nil {
		t.Fatal(err)
	}
	if got, err := home.ReadFile(t, "e2e.txt"); err != nil || got != "typed-through-the-fleet\n" {
		t.Errorf("home after delete: %q, %v", got, err)
	}
	if _, err := c.Session(ctx, s.ID, 0); !isCode(err, apitype.CodeNotFound) {
		t.Errorf("a deleted session: %v", err)
	}
	s2, err := c.CreateSession(ctx, apitype.CreateSession{Label: "purged"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Home(s2.ID).Exists(t) {
		t.Fatalf("a new session %s has no home", s2.ID)
	}
	if err := c.DeleteSession(ctx, s2.ID, true); err != nil {
		t.Fatal(err)
	}
	if f.Home(s2.ID).Exists(t) {
		t.Errorf("the home of %s outlived its purge", s2.ID)
	}
}

func isCode(err error, code string) bool {
	ce, ok := errors.AsType[*client.Error](err)
	return ok && ce.Code == code
}

// descendants returns the pids of the processes descending from root whose
// command name is comm (any name if comm is empty).
func descendants(t testing.TB, root int, comm string) []int {
	t.Helper()
	procs, err := fleettest.Procs()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for pid, p := range procs {
		if (comm == "" || p.Comm == comm) && fleettest.Descends(procs, pid, root, nil) {
			out = append(out, pid)
		}
	}
	return out
}

func sandboxPID(t testing.TB, s apitype.Session) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimPrefix(s.Detail, "pid "))
	if err != nil {
		t.Fatalf("session detail %q names no pid", s.Detail)
	}
	return pid
}

// TestCrashedSwayRecovers runs on the local runtime only: it finds sway
// under the sandbox whose pid the session's detail names. A docker
// desktop's detail names its container, and the same agent supervises sway
// inside it.
func TestCrashedSwayRecovers(t *testing.T) {
	f := fleettest.New(t, fleettest.Options{})
	ctx := t.Context()
	s, err := f.Client.CreateSession(ctx, apitype.CreateSession{}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sways := descendants(t, sandboxPID(t, s), "sway")
	if len(sways) != 1 {
		t.Fatalf("found sway pids %v under the sandbox of %s", sways, s.ID)
	}
	if err := syscall.Kill(sways[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Bounded polling: the desktop's supervisor announces nothing to us.
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := f.Client.Session(ctx, s.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		now := descendants(t, sandboxPID(t, got), "sway")
		if got.State == apitype.StateReady && len(now) == 1 && now[0] != sways[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s after sway was killed: state %s (%s), sway pids %v", got.State, got.Reason, now)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := f.Client.Screenshot(ctx, s.ID, client.ScreenshotOptions{}); err != nil {
		t.Errorf("screenshot after recovery: %v", err)
	}
}

func TestFleetRestartReadopts(t *testing.T) { fleettest.EachRuntime(t, testFleetRestartReadopts) }

func testFleetRestartReadopts(t *testing.T, runtime string) {
	ctx := t.Context()
	p1 := fleettest.Serve(t, fleettest.Options{Token: token, Runtime: runtime})
	running, err := p1.Client.CreateSession(ctx, apitype.CreateSession{Label: "keeps running"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	stopped, err := p1.Client.CreateSession(ctx, apitype.CreateSession{Label: "stopped"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p1.Client.StopSession(ctx, stopped.ID); err != nil {
		t.Fatal(err)
	}
	// A file in the home, written from inside the desktop.
	home := p1.Home(running.ID)
	act(t, p1.Client, running.ID, map[string]any{"action": "key", "text": "super+Return"})
	deadline := time.Now().Add(20 * time.Second)
	for {
		act(t, p1.Client, running.ID, map[string]any{"action": "type", "text": "echo before-the-crash > ~/note.txt\n"})
		if got, _ := home.ReadFile(t, "note.txt"); got == "before-the-crash\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the note was not written within 20s")
		}
		time.Sleep(300 * time.Millisecond)
	}

	p1.Kill(t)

	p2 := fleettest.Serve(t, fleettest.Options{Token: token, Runtime: runtime, DataDir: p1.DataDir})
	list, err := p2.Client.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != running.ID || list[1].ID != stopped.ID {
		t.Fatalf("after the restart the fleet lists %+v", list)
	}
	got, err := p2.Client.Session(ctx, running.ID, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != apitype.StateReady || got.Detail != running.Detail {
		t.Errorf("re-adopted session: state %s, detail %q, want ready and %q (the same process, not restarted)", got.State, got.Detail, running.Detail)
	}
	if list[1].State != apitype.StateStopped {
		t.Errorf("the stopped session is %s", list[1].State)
	}
	if got, err := p2.Home(running.ID).ReadFile(t, "note.txt"); got != "before-the-crash\n" {
		t.Errorf("note after the restart: %q, %v", got, err)
	}
	if _, err := p2.Client.Screenshot(ctx, running.ID, client.ScreenshotOptions{}); err != nil {
		t.Errorf("screenshot after the restart: %v", err)
	}
	if !strings.Contains(p2.Log.String(), "session adopted") {
		t.Errorf("the fleet did not log an adoption:\n%s", p2.Log)
	}
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

func TestDesktopsAreIsolated(t *testing.T) { fleettest.EachRuntime(t, testDesktopsAreIsolated) }

func testDesktopsAreIsolated(t *testing.T, runtime string) {
	f := fleettest.New(t, fleettest.Options{Runtime: runtime})
	ctx := t.Context()
	a, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "a"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "b"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f.Home(b.ID).WriteFile(t, "secret.txt", "b-secret")
	secret := filepath.Join(f.Home(b.ID).HostPath(t), "secret.txt")
	db := filepath.Join(f.DataDir, "atelier.db")
	// From a's terminal, try both paths as the host names them and through
	// /proc; every attempt must fail.
	var script strings.Builder
	for _, p := range []string{secret, db, "/proc/1/root" + secret, "/proc/1/root" + db} {
		fmt.Fprintf(&script, "head -c 64 %s >> ~/leak.txt 2>/dev/null || echo refused >> ~/leak.txt; ", p)
	}
	script.WriteString("echo done > ~/done.txt")
	home := f.Home(a.ID)
	typeCommand(t, f.Client, home, a.ID, "", script.String())
	home.WaitFile(t, "done.txt", "done\n")
	if got, _ := home.ReadFile(t, "leak.txt"); got != strings.Repeat("refused\n", 4) {
		t.Errorf("desktop a read outside its sandbox: %q", got)
	}
}
