// Package desktoptest starts real desktops for tests: a bare headless sway
// (StartSway) for the agent's own tests, and the full desktop for end-to-end
// tests. Everything started is stopped by t.Cleanup.
package desktoptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"atelier/desktop"
)

// DesktopUser is the unprivileged system user desktops run as: sway refuses
// to run as root.
const DesktopUser = "atelier"

// Sway is a bare headless sway (no wayvnc, no waybar) running as
// DesktopUser with a single output of the requested size.
type Sway struct {
	// Dir is the sway's XDG_RUNTIME_DIR and HOME: its sockets live here, and
	// programs it runs may write here.
	Dir string
	// WaylandSocket and IPCSocket are the paths of the compositor's Wayland
	// and sway IPC sockets.
	WaylandSocket string
	SwayIPC
	Res desktop.Resolution

	uid, gid int
	cfg      string
	cmd      *exec.Cmd
	exited   chan struct{}
}

// StartSway starts a headless sway at res and stops it when the test ends.
// It skips the test only when sway is not installed.
func StartSway(t testing.TB, res desktop.Resolution) *Sway {
	t.Helper()
	if _, err := exec.LookPath("sway"); err != nil {
		t.Skip("SKIP: sway is not installed (run desktop/install-deps.sh); desktop tests cannot run")
	}
	u, err := user.Lookup(DesktopUser)
	if err != nil {
		t.Fatalf("user %s: %v (run desktop/install-deps.sh)", DesktopUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	// Not t.TempDir: its parent is private to root, and sway runs as DesktopUser.
	dir, err := os.MkdirTemp("", "atelier-sway-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sway{Dir: dir, Res: res, uid: uid, gid: gid}
	t.Cleanup(s.stop)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf("output HEADLESS-1 mode %dx%d position 0 0\n"+
		"output HEADLESS-1 bg #202020 solid_color\n"+
		"seat seat0 hide_cursor 0\n"+
		"focus_follows_mouse no\n"+
		// No borders or title bars: a lone window fills the output exactly,
		// so tests know where its content is.
		"default_border none\n"+
		"default_floating_border none\n", res.Width, res.Height)
	cfgPath := filepath.Join(dir, "sway.conf")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	s.cfg = cfgPath
	// The clock every desktop's sway runs with (see atelier-agent).
	if err := BuildFrameClock(dir); err != nil {
		t.Fatal(err)
	}
	s.launch(t)
	return s
}

// launch starts sway and waits until its output has the requested size.
func (s *Sway) launch(t testing.TB) {
	t.Helper()
	logf, err := os.Create(filepath.Join(s.Dir, "sway.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()

	cmd := exec.Command("sway", "-c", s.cfg)
	cmd.Dir = s.Dir
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + s.Dir,
		"USER=" + DesktopUser,
		"XDG_RUNTIME_DIR=" + s.Dir,
		"WLR_BACKENDS=headless",
		"WLR_RENDERER=pixman",
		"WLR_LIBINPUT_NO_DEVICES=1",
		"WLR_HEADLESS_OUTPUTS=1",
		"LANG=C.UTF-8",
		"LD_PRELOAD=" + filepath.Join(s.Dir, desktop.FrameClockFile),
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.gid)},
		Setpgid:    true, // so cleanup also ends the programs sway started
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sway: %v", err)
	}
	s.cmd = cmd
	exited := make(chan struct{})
	s.exited = exited
	go func() { cmd.Wait(); close(exited) }()

	// Bounded polling: sway is an external process that announces nothing.
	deadline := time.Now().Add(15 * time.Second)
	s.WaylandSocket, s.IPCSocket = "", ""
	for s.WaylandSocket == "" || s.IPCSocket == "" {
		select {
		case <-exited:
			t.Fatalf("sway exited at start:\n%s", s.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sway did not create its sockets in 15s:\n%s", s.log())
		}
		time.Sleep(20 * time.Millisecond)
		s.WaylandSocket = firstMatch(filepath.Join(s.Dir, "wayland-[0-9]"))
		s.IPCSocket = firstMatch(filepath.Join(s.Dir, "sway-ipc.*.sock"))
	}
	for {
		out, err := exec.Command("swaymsg", "-s", s.IPCSocket, "-t", "get_outputs", "-r").Output()
		if err == nil && bytes.Contains(out, []byte(fmt.Sprintf(`"width": %d`, s.Res.Width))) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sway output did not reach %v: %v %s\n%s", s.Res, err, out, s.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart kills sway and everything it started, then starts it again in
// the same run dir, as a supervisor does after a crash.
func (s *Sway) Restart(t testing.TB) {
	t.Helper()
	s.kill()
	s.launch(t)
}

func (s *Sway) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
		// A killed sway leaves its IPC socket behind; the next one must not
		// be mistaken for it.
		os.Remove(s.IPCSocket)
	}
}

func firstMatch(pattern string) string {
	m, _ := filepath.Glob(pattern)
	if len(m) == 0 {
		return ""
	}
	return m[0]
}

func (s *Sway) log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "sway.log"))
	return string(b)
}

func (s *Sway) stop() {
	s.kill()
	os.RemoveAll(s.Dir)
}

// SwayIPC drives a running sway through its IPC socket; Sway and Desktop
// both embed it.
type SwayIPC struct {
	// IPCSocket is the path of sway's IPC socket.
	IPCSocket string
}

// Msg runs swaymsg with args against this sway and returns its output.
func (c SwayIPC) Msg(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := exec.Command("swaymsg", append([]string{"-s", c.IPCSocket}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("swaymsg %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// Exec runs a shell command line inside the desktop (as sway's exec does:
// as the desktop's user, with WAYLAND_DISPLAY set).
func (c SwayIPC) Exec(t testing.TB, cmdline string) {
	t.Helper()
	c.Msg(t, "exec", "--", cmdline)
}

// Terminal opens foot (with no padding) running cmdline (with sh -c) under
// the app id appID, waits until its window is mapped and focused, and
// returns the window's content rectangle in output pixels.
func (c SwayIPC) Terminal(t testing.TB, appID, cmdline string) Rect {
	t.Helper()
	c.Exec(t, fmt.Sprintf("foot --app-id=%s -o pad=0x0 -- sh -c %s", appID, shellQuote(cmdline)))
	return c.WaitWindow(t, appID)
}

// Rect is a window's rectangle in output pixels.
type Rect struct{ X, Y, Width, Height int }

// tree returns sway's layout tree.
func (c SwayIPC) tree(t testing.TB) node {
	t.Helper()
	var tree node
	if err := json.Unmarshal(c.Msg(t, "-t", "get_tree", "-r"), &tree); err != nil {
		t.Fatalf("decode sway tree: %v", err)
	}
	return tree
}

// WaitWindow waits (15 s at most) until a focused window with appID exists
// and returns its content rectangle.
func (c SwayIPC) WaitWindow(t testing.TB, appID string) Rect {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		tree := c.tree(t)
		if n := tree.find(appID); n != nil && n.Focused {
			return Rect{n.Rect.X + n.WindowRect.X, n.Rect.Y + n.WindowRect.Y, n.WindowRect.Width, n.WindowRect.Height}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no focused window %q after 15s", appID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FileOwnedByDesktop creates an empty file in Dir that programs in the
// desktop can write, and returns its path.
func (s *Sway) FileOwnedByDesktop(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(s.Dir, name)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, s.uid, s.gid); err != nil {
		t.Fatal(err)
	}
	return p
}

type rect struct{ X, Y, Width, Height int }

type node struct {
	AppID         string `json:"app_id"`
	Focused       bool   `json:"focused"`
	Rect          rect   `json:"rect"`
	WindowRect    rect   `json:"window_rect"`
	Nodes         []node `json:"nodes"`
	FloatingNodes []node `json:"floating_nodes"`
}

func (n *node) find(appID string) *node {
	if n.AppID == appID {
		return n
	}
	for _, list := range [][]node{n.Nodes, n.FloatingNodes} {
		for i := range list {
			if f := list[i].find(appID); f != nil {
				return f
			}
		}
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
