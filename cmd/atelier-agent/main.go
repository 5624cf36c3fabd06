// Command atelier-agent is a desktop's one entrypoint, the same in every
// runtime: it starts and supervises sway, wayvnc and waybar (package
// supervisor), serves protocol v1 on the run dir's agent.sock (package
// agent), and writes the run dir's ready file once all of them answer.
//
//	atelier-agent [--run-dir DIR] [--home DIR] [--resolution WxH] [--theme NAME] [--log-level LEVEL] [--egress-gate SOCKET]
//	atelier-agent budget-line [--follow] FILE   # waybar JSON lines for the budget file
//	atelier-agent link [--listen ADDR] [--tls-dir DIR] [--run-dir DIR] [--home DIR] [--gateway ADDR] [--gate-dir DIR]
//	                                  # the desktop's mutual-TLS link (desklink), in a pod
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"atelier/desktop"
	"atelier/internal/agent"
	"atelier/internal/agent/supervisor"
	"atelier/internal/desklink"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program; it returns the exit code: 0, 1 on failure, 2 on
// a usage error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "budget-line" {
		return budgetLine(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "link" {
		return link(ctx, args[1:], stderr)
	}
	fs := flag.NewFlagSet("atelier-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runDir := fs.String("run-dir", desktop.RunDirPath, "the desktop's run dir, shared with the fleet")
	home := fs.String("home", getenv("HOME"), "home directory of the desktop's programs")
	res := fs.String("resolution", desktop.DefaultResolution.String(), "output size, WIDTHxHEIGHT")
	theme := fs.String("theme", desktop.DefaultTheme, "palette ("+strings.Join(desktop.ThemeNames(), ", ")+"); the run dir's theme file wins")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	gate := fs.String("egress-gate", "", "the fleet's egress gateway socket; if set, the desktop's programs get a proxy on "+desktop.ProxyAddr+" bridged to it")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "atelier-agent: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "atelier-agent: --log-level %q: want debug, info, warn or error\n", *level)
		return 2
	}
	resolution, err := desktop.ParseResolution(*res)
	if err != nil {
		fmt.Fprintln(stderr, "atelier-agent:", err)
		return 2
	}
	if _, err := desktop.LookupTheme(*theme); err != nil {
		fmt.Fprintln(stderr, "atelier-agent: --theme:", err)
		return 2
	}
	if os.Geteuid() == 0 {
		fmt.Fprintln(stderr, "atelier-agent: refusing to run as root: sway will not run as root, and a desktop "+
			"should not; run it as an unprivileged user (desktop/install-deps.sh creates 'atelier')")
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	if err := serve(ctx, log, *runDir, *home, resolution, *theme, *gate); err != nil {
		log.Error("atelier-agent stopped", "err", err)
		return 1
	}
	return 0
}

// serve runs the supervisor and the agent server until ctx is done.
func serve(ctx context.Context, log *slog.Logger, runDir, home string, res desktop.Resolution, theme, gate string) error {
	runDir, err := filepath.Abs(runDir)
	if err != nil {
		return err
	}
	if home == "" {
		return errors.New("no home: set --home or HOME")
	}
	if home, err = filepath.Abs(home); err != nil {
		return err
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	var proxy net.Listener
	var env []string
	if gate != "" {
		// On the desktop's own loopback: its network namespace has nothing
		// else, so this is the one way out.
		if proxy, err = net.Listen("tcp", desktop.ProxyAddr); err != nil {
			return fmt.Errorf("egress proxy: %w", err)
		}
		defer proxy.Close()
		env = desktop.ProxyEnv()
	}
	clock := frameClock()
	if clock == "" {
		log.Info("no " + desktop.FrameClockFile + " beside the agent: sway's clock ticks 60 times a second even when idle")
	}
	var srv *agent.Server // set before sup runs, so before it reloads sway
	sup, err := supervisor.New(supervisor.Options{
		RunDir: runDir, Home: home, Resolution: res, Theme: theme, Logger: log, Env: env, FrameClock: clock,
		SwayReloaded: func() { srv.KeymapReset() },
	})
	if err != nil {
		return err
	}
	sockPath := filepath.Join(runDir, desktop.AgentSocket)
	os.Remove(sockPath) // left by an agent that was killed
	ln, err := net.Listen("unix", sockPath)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Owner and group: the fleet reaches the socket through the run dir's
	// group when it runs as another user.
	if err := os.Chmod(sockPath, 0o660); err != nil {
		ln.Close()
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("atelier-agent starting", "run_dir", runDir, "home", home, "resolution", res, "pid", os.Getpid())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv = agent.New(agent.Options{WaylandSocket: sup.WaylandSocket(), Status: sup.Status, Logger: log})
	var wg sync.WaitGroup
	var serveErr error
	wg.Go(func() {
		if serveErr = srv.Serve(ctx, ln); serveErr != nil {
			cancel()
		}
	})
	if proxy != nil {
		wg.Go(func() { agent.BridgeEgress(ctx, proxy, gate, log) })
	}
	runErr := sup.Run(ctx)
	cancel()
	wg.Wait()
	log.Info("atelier-agent stopped")
	return errors.Join(runErr, serveErr)
}

// frameClock returns the path of desktop.FrameClockFile beside this
// executable, or "" when there is none: every runtime puts the two side by
// side (bin/, the sandbox's /opt/atelier, the image's /usr/local/bin).
func frameClock() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(exe), desktop.FrameClockFile)
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	return p
}

// followFallback is how often budget-line --follow rereads the budget file
// when it cannot watch the run dir.
const followFallback = 2 * time.Second

// budgetLine prints waybar's JSON line for the budget file and exits 0.
// With --follow it runs until ctx ends or waybar stops reading, printing
// a line at start and then only when the line changes: waybar redraws the
// bar, and sway the screen, at each line. It sleeps until the file is
// written (the fleet rewrites it every 30 s) or the line turns stale with
// time alone, so an idle desktop's follower wakes twice a minute.
func budgetLine(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	follow := len(args) > 0 && args[0] == "--follow"
	if follow {
		args = args[1:]
	}
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: atelier-agent budget-line [--follow] FILE")
		return 2
	}
	path := args[0]
	written := make(chan struct{}, 1)
	watchErr := make(chan error, 1)
	polling := false
	if follow {
		// Watching before the first read: no write falls in between.
		w, err := supervisor.WatchDir(filepath.Dir(path))
		if err != nil {
			watchErr <- err
		} else {
			ctx, cancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			wg.Go(func() {
				watchErr <- w.Run(ctx, func(name string) {
					if name == filepath.Base(path) {
						select {
						case written <- struct{}{}:
						default:
						}
					}
				})
			})
		}
	}
	var last []byte
	for {
		now := time.Now()
		b, err := json.Marshal(desktop.BudgetLine(path, now))
		if err != nil {
			fmt.Fprintln(stderr, "atelier-agent:", err)
			return 1
		}
		if !bytes.Equal(b, last) {
			if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
				return 1
			}
			last = b
		}
		if !follow {
			return 0
		}
		wait := untilStale(path, now)
		if polling {
			wait = min(wait, followFallback)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0
		case <-written:
		case err := <-watchErr:
			fmt.Fprintln(stderr, "atelier-agent: budget-line: rereading every", followFallback, "for want of a watch:", err)
			polling = true
		case <-t.C:
		}
		t.Stop()
	}
}

// untilStale is how long the budget file's line stays as it is with no
// write: until it turns stale, or a day when it has nothing to age.
func untilStale(path string, now time.Time) time.Duration {
	b, err := desktop.ReadBudget(path)
	if err != nil {
		return 24 * time.Hour
	}
	if d := b.Updated.Add(desktop.StaleAfter).Sub(now); d > 0 {
		return d + time.Millisecond
	}
	return 24 * time.Hour
}

// link serves the desktop's link (package desklink) until ctx is done: the
// one way into a desktop in a Kubernetes pod, run in a container of its
// own that alone holds the desktop's credential.
func link(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("atelier-agent link", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", fmt.Sprintf(":%d", desklink.Port), "TCP address to listen on")
	tlsDir := fs.String("tls-dir", "/etc/atelier/link", "directory of "+desklink.CertFile+", "+desklink.KeyFile+" and "+desklink.FleetFile)
	runDir := fs.String("run-dir", desktop.RunDirPath, "the desktop's run dir")
	home := fs.String("home", "/home-volume", "the desktop's home volume")
	gateway := fs.String("gateway", "", "the fleet's egress gateway (host:port); if set, the desktop's gate socket is served in --gate-dir and carried there")
	gateDir := fs.String("gate-dir", desktop.GateDirPath, "where to serve the desktop's gate socket")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "atelier-agent link: unexpected arguments %q\n", fs.Args())
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(*tlsDir, name))
		if err != nil {
			log.Error("link credential", "err", err)
		}
		return b
	}
	cfg, err := desklink.ServerConfig(desklink.Pair{Cert: read(desklink.CertFile), Key: read(desklink.KeyFile)}, read(desklink.FleetFile))
	if err != nil {
		log.Error("atelier-agent link", "err", err)
		return 1
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("atelier-agent link", "err", err)
		return 1
	}
	log.Info("atelier-agent link serving", "addr", ln.Addr().String(), "run_dir", *runDir, "home", *home)
	srv := &desklink.Server{RunDir: *runDir, Home: *home, Config: cfg, Log: log}
	for _, name := range []string{desktop.BudgetFile, desktop.ThemeFile} {
		if b, err := os.ReadFile(filepath.Join(*tlsDir, desklink.RunFilePrefix+name)); err == nil {
			if err := srv.PutRunFile(name, b); err != nil {
				log.Warn("link: run file", "file", name, "err", err)
			}
		}
	}
	errs := make(chan error, 1)
	go func() { errs <- srv.Serve(ctx, ln) }()
	if *gateway != "" {
		if err := serveGate(ctx, srv, *gateway, *gateDir, read); err != nil {
			log.Error("atelier-agent link: egress gate", "err", err)
		}
	}
	if err := <-errs; err != nil {
		log.Error("atelier-agent link stopped", "err", err)
		return 1
	}
	return 0
}

// serveGate serves the desktop's gate socket in gateDir until ctx is
// done, carrying each connection to the fleet's gateway with the
// desktop's own credential.
func serveGate(ctx context.Context, srv *desklink.Server, gateway, gateDir string, read func(string) []byte) error {
	cfg, err := desklink.GateClientConfig(desklink.Pair{Cert: read(desklink.CertFile), Key: read(desklink.KeyFile)}, read(desklink.FleetFile))
	if err != nil {
		return err
	}
	path := filepath.Join(gateDir, desktop.GateSocket)
	os.Remove(path) // one left by a link server that restarted
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	srv.Log.Info("atelier-agent link: egress gate", "socket", path, "gateway", gateway)
	return srv.ServeGate(ctx, ln, gateway, cfg)
}
