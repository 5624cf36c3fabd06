// Package fleettest runs real fleets for tests: New starts one in-process
// (store, runtime, session manager, snapshots, live view, API on a loopback
// port) with a ready client; Serve starts `atelier serve` as a subprocess,
// for tests that kill the fleet. Either runs its desktops on the local or
// the docker runtime, and EachRuntime runs a test on both; Home reaches a
// desktop's home from outside on either. Tests skip, loudly, only where
// desktops cannot run.
package fleettest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"atelier/internal/client"
	"atelier/internal/config"
	"atelier/internal/desktoptest"
	"atelier/internal/egress"
	"atelier/internal/fleet"
	"atelier/internal/runtime"
	"atelier/internal/runtime/kube/kubetest"
	"atelier/internal/sessions"
)

// Options configure a fleet. Zero values take the defaults noted.
type Options struct {
	// Token, if set, is the fleet's API token.
	Token string
	// MetricsToken, if set, opens GET /metrics for scrapers.
	MetricsToken string
	// DataDir is the fleet's state; empty means a fresh one for the test.
	// Pass a previous fleet's to restart on the same state.
	DataDir string
	// Model configures the task backends; the default backend is
	// scripted unless set.
	Model config.Model
	// MaxUSDPerDay is the fleet's daily cap on model spend; 0: none.
	MaxUSDPerDay float64
	// ControlIdle returns a person's control lease after this long
	// without input; 0: the default.
	ControlIdle time.Duration
	// Logger receives the fleet's logs; nil discards them unless
	// ATELIER_TEST_LOG is set, which sends them to stderr.
	Logger *slog.Logger
	// Runtime runs the desktops: "local" (the default) or "docker".
	Runtime string

	// MaxSessions, MaxStreams and the HTTP timeouts are the fleet's
	// admission and its server's (config.Limits, config.HTTP); zero: no
	// session or stream limit, the API's default timeouts.
	MaxSessions              int
	MaxStreams               int
	ReadTimeout, IdleTimeout time.Duration
	// Args are more flags for Serve's `atelier serve`.
	Args []string
	// Egress is the fleet's egress policy; the zero Policy means
	// egress.Default.
	Egress egress.Policy
	// Gateway holds the egress gateway's test-only options (a resolver,
	// exempt ranges); its Recorder and Logger are the fleet's.
	Gateway egress.Options
	// HomeQuota is the disk quota of each new home; 0: the fleet's
	// default, config.DefaultHomeQuota.
	HomeQuota int64
}

// Fleet is a running in-process fleet.
type Fleet struct {
	// URL is the API's base URL, on loopback.
	URL string
	// Client talks to the API with the fleet's token.
	Client *client.Client
	// Sessions and Runtime are the fleet's parts, for checks a client
	// cannot make (a desktop's home).
	Sessions *sessions.Manager
	Runtime  runtime.Runtime
	DataDir  string

	closeOnce sync.Once
	close     func()
}

// Close stops the fleet, leaving its desktops running, as a fleet restart
// does. It runs at the end of the test if not called before.
func (f *Fleet) Close() { f.closeOnce.Do(f.close) }

// EachRuntime runs test as a subtest on every runtime, named after it; a
// runtime this host lacks skips its subtest, loudly.
func EachRuntime(t *testing.T, test func(t *testing.T, runtime string)) {
	for _, rt := range fleet.RuntimeNames() {
		t.Run(rt, func(t *testing.T) { test(t, rt) })
	}
}

// runtimeConfig fills the defaults of opts' runtime and data dir and
// returns the settings of a fleet running its desktops there; it skips the
// test when this host cannot run them.
func runtimeConfig(t testing.TB, opts *Options) config.Config {
	t.Helper()
	if opts.Runtime == "" {
		opts.Runtime = config.DefaultRuntime
	}
	if opts.DataDir == "" {
		opts.DataDir = DataDir(t)
	}
	if opts.HomeQuota == 0 {
		opts.HomeQuota = config.DefaultHomeQuota
	}
	cfg := config.Config{Runtime: opts.Runtime, DataDir: opts.DataDir, HomeQuota: opts.HomeQuota}
	kitOf(t, opts.Runtime).configure(t, &cfg)
	return cfg
}

// RequireDesktops skips the test when this host cannot run desktops on the
// local runtime, and says why.
func RequireDesktops(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: the local runtime needs root (it runs desktops as the user atelier); fleet tests cannot run")
	}
	for _, bin := range []string{"bwrap", "sway", "wayvnc", "foot"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("SKIP: %s is not installed (run desktop/install-deps.sh); fleet tests cannot run", bin)
		}
	}
	if _, err := user.Lookup("atelier"); err != nil {
		t.Skip("SKIP: no user atelier (run desktop/install-deps.sh); fleet tests cannot run")
	}
}

// New starts an in-process fleet, its runtime built from settings as
// `atelier serve` builds it. When the test ends the fleet is closed and
// every desktop it made is purged.
func New(t testing.TB, opts Options) *Fleet {
	t.Helper()
	cfg := runtimeConfig(t, &opts)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
		if os.Getenv("ATELIER_TEST_LOG") != "" {
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		}
	}
	if opts.Model.Backend == "" {
		opts.Model.Backend = "scripted"
	}
	ctx := context.WithoutCancel(t.Context())
	cfg.APIToken, cfg.MetricsToken, cfg.Model, cfg.View.ControlIdle = opts.Token, opts.MetricsToken, opts.Model, opts.ControlIdle
	cfg.Limits.MaxSessions, cfg.Limits.MaxStreams, cfg.Egress = opts.MaxSessions, opts.MaxStreams, opts.Egress
	cfg.HTTP.ReadTimeout, cfg.HTTP.IdleTimeout, cfg.MaxUSDPerDay = opts.ReadTimeout, opts.IdleTimeout, opts.MaxUSDPerDay
	fl, err := fleet.Open(ctx, cfg, fleet.Options{Logger: opts.Logger, Version: "fleettest", Reconcile: 500 * time.Millisecond, Gateway: opts.Gateway})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fl.Close()
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := fl.Serve(sctx, ln); err != nil {
			opts.Logger.Error("fleettest: serve", "err", err)
		}
	}()
	url := "http://" + ln.Addr().String()
	f := &Fleet{URL: url, Client: client.New(url, opts.Token, nil), Sessions: fl.Sessions, Runtime: fl.Runtime, DataDir: opts.DataDir}
	f.close = func() {
		stop()
		<-served
		fl.Close()
	}
	kit := kitOf(t, opts.Runtime)
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			kit.dumpLogs(t, opts.DataDir)
		}
		kit.purge(t, opts.DataDir)
	})
	return f
}

// DataDir returns a fresh data dir that the desktop user may traverse (a
// t.TempDir is private to root), removed when the test ends.
func DataDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "atelier-fleettest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	return dir
}

// DumpDesktopLogs logs the tail of every desktop's log in a data dir (the
// local runtime's desktop.log), to explain a failure.
func DumpDesktopLogs(t testing.TB, dataDir string) {
	logs, _ := filepath.Glob(filepath.Join(dataDir, "desktops", "*", "desktop.log"))
	for _, p := range logs {
		b, _ := os.ReadFile(p)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("%s:\n%s", p, b)
	}
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// Binary returns the path of a command of this module (atelier,
// atelier-agent), built once per test process into a directory others
// may read: desktops run it as the user atelier.
func Binary(t testing.TB, name string) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "atelier-fleettest-bin-"); binErr != nil {
			return
		}
		if binErr = os.Chmod(binDir, 0o755); binErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", binDir+"/", "atelier/cmd/atelier", "atelier/cmd/atelier-agent").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("build atelier and atelier-agent: %v\n%s", err, out)
			return
		}
		binErr = desktoptest.BuildFrameClock(binDir)
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, name)
}

// Main runs a package's tests and then removes the binaries Binary built
// (and brings the test cluster down if they brought it up). Call it from
// TestMain.
func Main(m *testing.M) {
	code := kubetest.Main(m)
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// Process is `atelier serve` running as a subprocess.
type Process struct {
	URL    string
	Client *client.Client
	Cmd    *exec.Cmd
	// Log holds what the fleet wrote to stderr.
	Log     *syncBuffer
	DataDir string

	runtime string

	exited chan struct{} // closed once the process is reaped
}

// Serve starts `atelier serve` on a loopback port with opts (its Logger
// unused: the fleet's log is the Process's), waits until it listens, and
// kills it (SIGKILL) at the end of the test if still running. Every
// desktop made over the data dir is purged then: pass a previous
// fleet's DataDir to restart on the same state.
func Serve(t testing.TB, opts Options) *Process {
	t.Helper()
	cfg := runtimeConfig(t, &opts)
	args := []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", cfg.DataDir,
		"--runtime", cfg.Runtime, "--agent", cfg.AgentPath, "--docker-image", cfg.Docker.Image,
		"--home-quota", strconv.FormatInt(cfg.HomeQuota, 10),
		"--kubeconfig", cfg.Kube.Kubeconfig, "--kube-namespace", cfg.Kube.Namespace, "--kube-image", cfg.Kube.Image,
		"--kube-storage-class", cfg.Kube.StorageClass, "--kube-home-size", cfg.Kube.HomeSize}
	if opts.Token == "" {
		args = append(args, "--insecure-no-token") // a tokenless fleet must be asked for
	}
	if opts.MaxSessions > 0 {
		args = append(args, "--max-sessions", strconv.Itoa(opts.MaxSessions))
	}
	cmd := exec.Command(Binary(t, "atelier"), append(args, opts.Args...)...)
	cmd.Env = append(os.Environ(), config.EnvToken+"="+opts.Token)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	p := &Process{Cmd: cmd, Log: &syncBuffer{}, DataDir: cfg.DataDir, runtime: cfg.Runtime, exited: exited}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		kitOf(t, cfg.Runtime).purge(t, cfg.DataDir)
	})
	urls := make(chan string, 1)
	listening := regexp.MustCompile(`msg="atelier listening" url=(\S+)`)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.Log.WriteLine(sc.Text())
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
	}()
	select {
	case p.URL = <-urls:
	case <-exited:
		t.Fatalf("atelier serve exited before listening:\n%s", p.Log)
	case <-time.After(30 * time.Second):
		t.Fatalf("atelier serve did not listen within 30s:\n%s", p.Log)
	}
	p.Client = client.New(p.URL, opts.Token, nil)
	return p
}

// Kill kills the fleet with SIGKILL, as a crash would, and waits for it.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill atelier serve: %v", err)
	}
	<-p.exited
}

// syncBuffer collects lines written from one goroutine and read from another.
type syncBuffer struct {
	mu    sync.Mutex
	lines []string
}

// WriteLine appends a line.
func (b *syncBuffer) WriteLine(s string) {
	b.mu.Lock()
	b.lines = append(b.lines, s)
	b.mu.Unlock()
}

// String returns every line so far.
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

// SyncWriter collects what goroutines write (a fleet's log, a command's
// stderr) for a test to read.
type SyncWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *SyncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// String returns everything written so far.
func (w *SyncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// P50 returns the median of ds in milliseconds, for benchmarks' metrics.
func P50(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2].Microseconds()) / 1000
}
