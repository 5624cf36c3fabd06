package desktoptest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/agent/supervisor"
	"atelier/internal/agentapi"
)

// Options configure a desktop started by Start; zero values are defaults.
type Options struct {
	Resolution desktop.Resolution // default desktop.DefaultResolution
	Theme      string             // default desktop.DefaultTheme
}

// Desktop is a full desktop (atelier-agent with sway, wayvnc, waybar) run
// as DesktopUser for one test.
type Desktop struct {
	// Client talks to the desktop's agent.sock.
	Client *agentapi.Client
	RunDir string
	Home   string
	Res    desktop.Resolution
	SwayIPC

	probeBin string
	base     string // holds RunDir, Home and the agent's log
	logPath  string
	uid      int
	gid      int
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the agent has exited
	stopOnce sync.Once
}

// Timing of the harness.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// The binaries Start runs: built once per test binary when the package's
// TestMain calls Main (which removes them at the end), or else once per test
// (removed when the test ends).
var build struct {
	mu       sync.Mutex
	mainUsed bool
	dir      string
	agent    string
	probe    string
}

// Main runs the tests of a package that starts desktops, building the
// desktop's binaries only once, and removes them at the end. Call it from
// TestMain:
//
//	func TestMain(m *testing.M) { desktoptest.Main(m) }
func Main(m *testing.M) {
	build.mainUsed = true
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// buildBinaries builds atelier-agent and the probe, unless built already,
// into a directory the desktop user can read.
func buildBinaries(t testing.TB) (agent, probe string) {
	t.Helper()
	build.mu.Lock()
	defer build.mu.Unlock()
	if build.dir != "" {
		return build.agent, build.probe
	}
	dir, err := os.MkdirTemp("", "atelier-desktoptest-bin-")
	if err != nil {
		t.Fatal(err)
	}
	if !build.mainUsed {
		t.Cleanup(func() {
			build.mu.Lock()
			defer build.mu.Unlock()
			os.RemoveAll(dir)
			build.dir = ""
		})
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	agent, probe = filepath.Join(dir, "atelier-agent"), filepath.Join(dir, "probe")
	for pkg, out := range map[string]string{"atelier/cmd/atelier-agent": agent, "atelier/internal/desktoptest/probe": probe} {
		if b, err := exec.Command(goTool(), "build", "-o", out, pkg).CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	if err := BuildFrameClock(dir); err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	build.dir, build.agent, build.probe = dir, agent, probe
	return agent, probe
}

// BuildFrameClock builds desktop.FrameClockFile into dir, where the agent
// built beside it finds it, with the Makefile's rule (one set of flags).
func BuildFrameClock(dir string) error {
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	out := filepath.Join(dir, desktop.FrameClockFile)
	if b, err := exec.Command("make", "-s", "-C", root, "BIN="+dir, out).CombinedOutput(); err != nil {
		return fmt.Errorf("build %s (make and gcc come with scripts/install-deps.sh): %v\n%s", desktop.FrameClockFile, err, b)
	}
	return os.Chmod(out, 0o755)
}

// goTool finds the go command of the running toolchain.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// Start starts a desktop and returns once its ready file exists; t.Cleanup
// stops it and removes every process and file it made. The test is skipped
// only when sway is not installed.
func Start(t testing.TB, opts Options) *Desktop {
	t.Helper()
	if _, err := exec.LookPath("sway"); err != nil {
		t.Skip("SKIP: sway is not installed (run desktop/install-deps.sh); desktop tests cannot run")
	}
	if opts.Resolution == (desktop.Resolution{}) {
		opts.Resolution = desktop.DefaultResolution
	}
	if opts.Theme == "" {
		opts.Theme = desktop.DefaultTheme
	}
	agentBin, probeBin := buildBinaries(t)
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		u, err := user.Lookup(DesktopUser)
		if err != nil {
			t.Fatalf("user %s: %v (run desktop/install-deps.sh)", DesktopUser, err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}

	// Not t.TempDir: its parent is private to the test's user.
	base, err := os.MkdirTemp("", "atelier-desktop-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Desktop{
		RunDir: filepath.Join(base, "run"), Home: filepath.Join(base, "home"), Res: opts.Resolution,
		probeBin: probeBin, base: base, logPath: filepath.Join(base, "agent.log"), uid: uid, gid: gid, exited: make(chan struct{}),
	}
	d.IPCSocket = filepath.Join(d.RunDir, supervisor.XDGDir, supervisor.SwaySocket)
	t.Cleanup(func() { d.cleanup(t) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{d.RunDir, d.Home} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	logf, err := os.Create(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()

	cmd := exec.Command(agentBin, "--run-dir", d.RunDir, "--home", d.Home,
		"--resolution", opts.Resolution.String(), "--theme", opts.Theme, "--log-level", "debug")
	cmd.Dir = d.Home
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + d.Home, "LANG=C.UTF-8"}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true, // cleanup ends the whole group
		Pdeathsig: syscall.SIGKILL,
	}
	if os.Getuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start atelier-agent: %v", err)
	}
	d.cmd = cmd
	go func() {
		cmd.Wait()
		close(d.exited)
	}()
	d.Client = agentapi.UnixClient(filepath.Join(d.RunDir, desktop.AgentSocket))
	if err := d.awaitReady(readyTimeout); err != nil {
		t.Fatalf("desktop not ready: %v\n%s", err, d.LogTail())
	}
	return d
}

// awaitReady waits until the ready file exists.
func (d *Desktop) awaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	// Bounded polling: the ready file is the desktop's contract with the fleet.
	for {
		if _, err := os.Stat(filepath.Join(d.RunDir, desktop.ReadyFile)); err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("atelier-agent exited: %v", d.cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s file after %v", desktop.ReadyFile, timeout)
		}
	}
}

// WaitReady waits (30 s at most) until the ready file exists again.
func (d *Desktop) WaitReady(t testing.TB) {
	t.Helper()
	if err := d.awaitReady(readyTimeout); err != nil {
		t.Fatalf("desktop not ready: %v\n%s", err, d.LogTail())
	}
}

// Stop ends the agent with SIGTERM, as a runtime does, and fails the test
// if it does not stop in time or leaves processes behind. The run dir stays
// for inspection until the test ends. Stopping twice is a no-op.
func (d *Desktop) Stop(t testing.TB) {
	t.Helper()
	d.stopOnce.Do(func() {
		if d.Client != nil {
			d.Client.Close()
		}
		if d.cmd == nil {
			return
		}
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(stopTimeout):
			t.Errorf("atelier-agent did not stop within %v of SIGTERM", stopTimeout)
		}
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.exited
		if n, err := supervisor.Sweep(d.RunDir); err != nil || n > 0 {
			t.Errorf("desktop left %d processes behind after its agent stopped (err %v)", n, err)
		}
	})
}

// cleanup stops the desktop, logs its logs if the test failed, and removes
// its files.
func (d *Desktop) cleanup(t testing.TB) {
	d.Stop(t)
	if t.Failed() {
		t.Logf("agent log:\n%s", d.LogTail())
		for _, c := range []string{supervisor.Sway, supervisor.WayVNC, supervisor.Waybar} {
			t.Logf("%s log:\n%s", c, tail(filepath.Join(d.RunDir, supervisor.LogDir, c+".log"), 2000))
		}
	}
	os.RemoveAll(d.base)
}

// LogTail returns the end of the agent's log.
func (d *Desktop) LogTail() string { return tail(d.logPath, 4000) }

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Log returns the whole agent log.
func (d *Desktop) Log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// ComponentLog returns the log of a supervised component (sway, wayvnc, waybar).
func (d *Desktop) ComponentLog(name string) string {
	b, _ := os.ReadFile(filepath.Join(d.RunDir, supervisor.LogDir, name+".log"))
	return string(b)
}

// Do sends one request to the agent with a 30 s deadline.
func (d *Desktop) Do(t testing.TB, req agentapi.Request) agentapi.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := d.Client.Do(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", req.Action, err)
	}
	return resp
}

// Status asks the agent for the desktop's status.
func (d *Desktop) Status(t testing.TB) agentapi.Status {
	t.Helper()
	resp := d.Do(t, agentapi.Request{Action: agentapi.StatusVerb})
	if resp.Status == nil {
		t.Fatal("status response without a status")
	}
	return *resp.Status
}

// Windows counts the windows whose app id is appID.
func (c SwayIPC) Windows(t testing.TB, appID string) int {
	t.Helper()
	tree := c.tree(t)
	return tree.count(appID)
}

func (n *node) count(appID string) int {
	c := 0
	if n.AppID == appID {
		c++
	}
	for _, list := range [][]node{n.Nodes, n.FloatingNodes} {
		for i := range list {
			c += list[i].count(appID)
		}
	}
	return c
}

// UserTerminal opens a terminal the way a person does, with super+Return
// (the desktop's binding for foot), waits until the new window has the
// focus, then types cmdline and Return into its shell.
func (d *Desktop) UserTerminal(t testing.TB, cmdline string) {
	t.Helper()
	before := d.Windows(t, "foot")
	d.Do(t, agentapi.Request{Action: agentapi.Key, Text: "super+Return"})
	Eventually(t, 15*time.Second, "no new focused terminal after super+Return", func() bool {
		tree := d.tree(t)
		f := tree.focused()
		return tree.count("foot") == before+1 && f != nil && f.AppID == "foot"
	})
	d.Do(t, agentapi.Request{Action: agentapi.Type, Text: cmdline + "\n"})
}

// focused returns the focused node under n, if any.
func (n *node) focused() *node {
	if n.Focused {
		return n
	}
	for _, list := range [][]node{n.Nodes, n.FloatingNodes} {
		for i := range list {
			if f := list[i].focused(); f != nil {
				return f
			}
		}
	}
	return nil
}

// SetTheme writes the run dir's theme file as the fleet does (atomically).
func (d *Desktop) SetTheme(t testing.TB, name string) {
	t.Helper()
	d.writeRunFile(t, desktop.ThemeFile, []byte(name+"\n"))
}

// SetBudget writes the run dir's budget file as the fleet does.
func (d *Desktop) SetBudget(t testing.TB, b desktop.Budget) {
	t.Helper()
	if err := desktop.WriteBudget(filepath.Join(d.RunDir, desktop.BudgetFile), b); err != nil {
		t.Fatal(err)
	}
}

func (d *Desktop) writeRunFile(t testing.TB, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(d.RunDir, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.RunDir, name)); err != nil {
		t.Fatal(err)
	}
}

// Eventually polls cond every 50 ms until it holds or timeout passes, then
// fails the test with what. For external processes that announce nothing.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
