// Package supervisor starts and keeps running the programs of one desktop —
// sway, then wayvnc and waybar once sway answers — as the current user. A
// crashed program is restarted with backoff (after a sway crash, wayvnc and
// waybar are restarted after it), and each program's state is reported
// through Status. The run dir's ready file exists exactly while sway, wayvnc
// and the agent all answer. A theme written to the run dir's theme file is
// applied live.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"time"

	"atelier/desktop"
	"atelier/internal/agentapi"
)

// Component names, in start order.
const (
	Sway   = "sway"
	WayVNC = "wayvnc"
	Waybar = "waybar"
)

var componentNames = []string{Sway, WayVNC, Waybar}

// Files and directories the supervisor makes in the run dir, beside those of
// package desktop.
const (
	// XDGDir is the private XDG_RUNTIME_DIR of the desktop's programs:
	// sway's Wayland and IPC sockets live there.
	XDGDir = "xdg"
	// LogDir holds one log file per component, NAME.log.
	LogDir = "log"
	// WaylandDisplay is the Wayland socket name sway takes in XDGDir: the
	// first that libwayland tries, and the dir is private.
	WaylandDisplay = "wayland-1"
	// SwaySocket is the sway IPC socket's name in XDGDir.
	SwaySocket = "sway-ipc.sock"
	// MarkerEnv is set to the run dir in the environment of every program of
	// the desktop (and thus of whatever they start), so Sweep finds them.
	MarkerEnv = "ATELIER_RUN_DIR"
)

// Options configure a Supervisor.
type Options struct {
	RunDir     string // required: the desktop's run dir, shared with the fleet
	Home       string // required: HOME of the desktop's programs; configs go to Home/.config
	Resolution desktop.Resolution
	// Theme is the palette used when the run dir has no valid theme file;
	// empty means desktop.DefaultTheme.
	Theme string
	// AgentPath is the atelier-agent binary, which waybar runs for the
	// budget line; empty means this executable.
	AgentPath string
	// Path is the PATH of the desktop's programs; empty means this
	// process's PATH, or a standard one.
	Path string
	// Env is added to the environment of every program of the desktop
	// (the egress proxy's settings).
	Env []string
	// FrameClock, if set, is the path of desktop.FrameClockFile, preloaded
	// into sway (and only sway: the library drops itself from the
	// environment sway's programs inherit).
	FrameClock string
	// SwayReloaded, if set, is called after each live reload of sway's
	// configuration (a theme change). Sway's reload resets the keymap of
	// every keyboard, the agent's virtual one included, so the agent must
	// upload its keymap again (agent.Server.KeymapReset).
	SwayReloaded func()
	Logger       *slog.Logger
}

// Timing of supervision.
const (
	startTimeout = 20 * time.Second // sway must answer IPC within this
	stopTimeout  = 3 * time.Second  // SIGTERM, then SIGKILL
	stableAfter  = 30 * time.Second // a run this long resets the backoff
	minBackoff   = 250 * time.Millisecond
	maxBackoff   = 10 * time.Second
)

// Supervisor runs one desktop's programs. Create it with New, run it with
// Run; Status may be called at any time from any goroutine.
type Supervisor struct {
	opts      Options
	log       *slog.Logger
	xdgDir    string
	configDir string
	logDir    string
	swaySock  string
	vncSock   string
	agentSock string

	poke chan struct{} // asks the readiness loop to check now

	mu    sync.Mutex
	comps map[string]*agentapi.Component
	procs map[string]*proc // running processes, for signals
	theme desktop.Theme
	res   desktop.Resolution // the output's mode: the fleet's, else opts'
	ready bool
}

// New checks opts and returns a supervisor; nothing runs until Run.
func New(opts Options) (*Supervisor, error) {
	if !filepath.IsAbs(opts.RunDir) || !filepath.IsAbs(opts.Home) {
		return nil, errors.New("supervisor: run dir and home must be absolute paths")
	}
	if opts.Resolution == (desktop.Resolution{}) {
		opts.Resolution = desktop.DefaultResolution
	}
	if err := opts.Resolution.Validate(); err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	if opts.Theme == "" {
		opts.Theme = desktop.DefaultTheme
	}
	theme, err := desktop.LookupTheme(opts.Theme)
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	if opts.AgentPath == "" {
		if opts.AgentPath, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("supervisor: find own executable: %w", err)
		}
	}
	if opts.Path == "" {
		opts.Path = os.Getenv("PATH")
	}
	if opts.Path == "" {
		opts.Path = "/usr/local/bin:/usr/bin:/bin"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{
		opts:      opts,
		log:       log,
		xdgDir:    filepath.Join(opts.RunDir, XDGDir),
		configDir: filepath.Join(opts.Home, ".config"),
		logDir:    filepath.Join(opts.RunDir, LogDir),
		vncSock:   filepath.Join(opts.RunDir, desktop.VNCSocket),
		agentSock: filepath.Join(opts.RunDir, desktop.AgentSocket),
		poke:      make(chan struct{}, 1),
		comps:     map[string]*agentapi.Component{},
		procs:     map[string]*proc{},
		theme:     theme,
	}
	s.swaySock = filepath.Join(s.xdgDir, SwaySocket)
	now := time.Now()
	for _, n := range componentNames {
		s.comps[n] = &agentapi.Component{Name: n, State: agentapi.StateStopped, Since: now}
	}
	return s, nil
}

// WaylandSocket is the path of sway's Wayland socket, for the agent server.
func (s *Supervisor) WaylandSocket() string { return filepath.Join(s.xdgDir, WaylandDisplay) }

// Status reports each component and whether the desktop is ready. Width and
// Height are left for the agent server, which knows the output.
func (s *Supervisor) Status() agentapi.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := agentapi.Status{Ready: s.ready}
	for _, n := range componentNames {
		st.Components = append(st.Components, *s.comps[n])
	}
	return st
}

// Run starts the desktop and keeps it running until ctx is done, then stops
// every component in reverse order, removes the ready file and the sockets,
// and kills what the desktop's programs left behind. It returns an error only
// when the desktop cannot be set up at all.
func (s *Supervisor) Run(ctx context.Context) error {
	if err := s.prepare(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.watchTheme(ctx) })
	wg.Go(func() { s.watchReady(ctx) })
	s.superviseSway(ctx)
	wg.Wait()
	s.cleanup()
	return nil
}

// prepare makes the private directories, picks up the theme file and renders
// the configuration.
func (s *Supervisor) prepare() error {
	for _, d := range []string{s.xdgDir, s.logDir, s.configDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("supervisor: %w", err)
		}
	}
	// XDG_RUNTIME_DIR must be private to its user, or programs warn and some refuse.
	if err := os.Chmod(s.xdgDir, 0o700); err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	s.res = s.opts.Resolution
	if r, err := s.readResolution(); err == nil {
		s.res = r
	} else if !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("resolution file ignored", "err", err)
	}
	if name, err := os.ReadFile(filepath.Join(s.opts.RunDir, desktop.ThemeFile)); err == nil {
		if th, err := desktop.LookupTheme(string(name)); err == nil {
			s.theme = th
		} else {
			s.log.Warn("theme file ignored", "err", err)
		}
	}
	return s.render()
}

func (s *Supervisor) render() error {
	s.mu.Lock()
	c := desktop.Config{Theme: s.theme, Resolution: s.res, RunDir: s.opts.RunDir, AgentPath: s.opts.AgentPath}
	s.mu.Unlock()
	return desktop.Render(s.configDir, c)
}

// superviseSway runs sway generations until ctx is done: each generation is
// one sway process and the wayvnc and waybar that depend on it.
func (s *Supervisor) superviseSway(ctx context.Context) {
	failures := 0
	for {
		began := time.Now()
		delay, ok := s.exited(ctx, Sway, began, &failures, s.swayGeneration(ctx))
		if !ok {
			return
		}
		for _, n := range []string{WayVNC, Waybar} {
			s.setRestarting(n, errors.New("sway restarted"))
		}
		if !sleep(ctx, delay) {
			return
		}
	}
}

// exited records that component name ended with err after starting at
// began, and returns the backoff before restarting it; false once ctx is
// done, with the component marked stopped.
func (s *Supervisor) exited(ctx context.Context, name string, began time.Time, failures *int, err error) (time.Duration, bool) {
	if ctx.Err() != nil {
		s.setStopped(name)
		return 0, false
	}
	if time.Since(began) > stableAfter {
		*failures = 0
	}
	*failures++
	delay := backoff(*failures)
	s.log.Warn("component exited; restarting", "component", name, "err", err, "in", delay)
	s.setRestarting(name, err)
	return delay, true
}

// swayGeneration starts sway, waits until it answers, keeps wayvnc and waybar
// running beside it, and returns when sway exits (its error) or ctx is done
// (nil, with everything stopped).
func (s *Supervisor) swayGeneration(ctx context.Context) error {
	if err := s.render(); err != nil {
		return err
	}
	// A crashed sway leaves its sockets; sway will not reuse a name in use.
	for _, n := range []string{WaylandDisplay, WaylandDisplay + ".lock", SwaySocket} {
		os.Remove(filepath.Join(s.xdgDir, n))
	}
	env := append(s.baseEnv(),
		"WLR_BACKENDS=headless",
		"WLR_RENDERER=pixman",
		"WLR_LIBINPUT_NO_DEVICES=1",
		"WLR_HEADLESS_OUTPUTS=1",
	)
	if s.opts.FrameClock != "" {
		env = append(env, "LD_PRELOAD="+s.opts.FrameClock)
	}
	p, err := s.spawn(Sway, env, "sway", "-c", filepath.Join(s.configDir, desktop.SwayConfigPath))
	if err != nil {
		return err
	}
	if err := s.awaitSway(ctx, p); err != nil {
		p.stop()
		s.clearProc(Sway)
		return err
	}
	s.setRunning(Sway, p)
	s.log.Info("component running", "component", Sway, "pid", p.pid())

	gen, cancel := context.WithCancel(ctx)
	var deps sync.WaitGroup
	wenv := append(s.baseEnv(), "WAYLAND_DISPLAY="+WaylandDisplay)
	deps.Go(func() {
		// wayvnc will not listen on a path a crashed one left behind.
		s.keep(gen, WayVNC, wenv, func() { os.Remove(s.vncSock) }, wayvncArgv(s.vncSock)...)
	})
	deps.Go(func() {
		s.keep(gen, Waybar, wenv, nil, "waybar",
			"-c", filepath.Join(s.configDir, desktop.WaybarConfigPath),
			"-s", filepath.Join(s.configDir, desktop.WaybarStylePath))
	})
	select {
	case <-p.done:
	case <-ctx.Done():
	}
	// Reverse order: the programs that need sway go first.
	cancel()
	deps.Wait()
	p.stop()
	s.clearProc(Sway)
	if ctx.Err() != nil {
		return nil
	}
	return p.exitError()
}

// wayvncArgv is how wayvnc is started: through sh, which ignores SIGPIPE
// and then execs wayvnc in its place (same pid, so signals and status
// reach wayvnc). wayvnc does not ignore SIGPIPE itself, and a write to a
// viewer that left mid-frame must end that viewer, not the server. An
// ignored disposition survives exec; Go cannot set one for a single child
// (ignoring SIGPIPE in the agent would pass it on to sway and so to every
// program of the desktop, where `yes | head` relies on SIGPIPE).
func wayvncArgv(sock string) []string {
	return []string{"sh", "-c", `trap '' PIPE; exec "$@"`, "sh", "wayvnc", "--render-cursor", "-u", sock}
}

// awaitSway waits until sway's Wayland socket exists and its IPC answers.
func (s *Supervisor) awaitSway(ctx context.Context, p *proc) error {
	deadline := time.Now().Add(startTimeout)
	// Bounded polling: sway announces nothing when its sockets are up.
	for {
		_, statErr := os.Stat(s.WaylandSocket())
		if statErr == nil {
			if _, err := swayIPC(ctx, s.swaySock, ipcGetVersion, nil); err == nil {
				return nil
			}
		}
		select {
		case <-p.done:
			return p.exitError()
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sway did not answer within %v", startTimeout)
		}
	}
}

// keep runs one program that depends on sway, restarting it with backoff,
// until ctx is done. cleanup, if set, runs before each start.
func (s *Supervisor) keep(ctx context.Context, name string, env []string, cleanup func(), argv ...string) {
	failures := 0
	for {
		if cleanup != nil {
			cleanup()
		}
		began := time.Now()
		p, err := s.spawn(name, env, argv...)
		if err == nil {
			s.setRunning(name, p)
			s.log.Info("component running", "component", name, "pid", p.pid())
			select {
			case <-p.done:
				err = p.exitError()
			case <-ctx.Done():
				p.stop()
			}
			s.clearProc(name)
		}
		delay, ok := s.exited(ctx, name, began, &failures, err)
		if !ok {
			return
		}
		if !sleep(ctx, delay) {
			s.setStopped(name)
			return
		}
	}
}

// baseEnv is the environment every program of the desktop gets. It is built
// from scratch, so nothing of the agent's own environment (a fleet's
// secrets, another display) leaks into the desktop.
func (s *Supervisor) baseEnv() []string {
	env := []string{
		"PATH=" + s.opts.Path,
		"HOME=" + s.opts.Home,
		"LANG=C.UTF-8",
		"SHELL=/bin/bash", // the desktop user's login shell may be nologin
		"XDG_RUNTIME_DIR=" + s.xdgDir,
		"XDG_CONFIG_HOME=" + s.configDir,
		"XDG_SESSION_TYPE=wayland",
		"SWAYSOCK=" + s.swaySock,
		"MOZ_ENABLE_WAYLAND=1",
		MarkerEnv + "=" + s.opts.RunDir,
	}
	if u, err := user.Current(); err == nil {
		env = append(env, "USER="+u.Username, "LOGNAME="+u.Username)
	}
	if tz := os.Getenv("TZ"); tz != "" {
		env = append(env, "TZ="+tz)
	}
	return append(env, s.opts.Env...)
}

// cleanup removes what a stopped desktop leaves in the run dir and kills
// whatever its programs started and left running.
func (s *Supervisor) cleanup() {
	s.setReady(false, errors.New("stopped"))
	for _, p := range []string{
		s.vncSock, s.swaySock, s.WaylandSocket(), s.WaylandSocket() + ".lock",
	} {
		os.Remove(p)
	}
	if n, err := Sweep(s.opts.RunDir); n > 0 || err != nil {
		s.log.Info("killed leftover desktop processes", "count", n, "err", err)
	}
}

// backoff is the delay before restart number n (from 1) of a failing
// component: doubling from minBackoff up to maxBackoff.
func backoff(n int) time.Duration {
	d := minBackoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
