// Package local runs desktops on this host as sandboxed process trees: one
// bubblewrap sandbox per desktop, running atelier-agent as an unprivileged
// user in its own user, mount, pid, ipc, uts and network namespaces, under
// a seccomp filter and with no nested user namespaces, with only its own
// home and run dir writable. Sandboxes are started detached, so they
// outlive the fleet; a restarted fleet re-adopts them through their pid
// files. A supervisor restarts a sandbox whose agent tree exits while it
// should run.
package local

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"atelier/desktop"
	"atelier/internal/homefs"
	"atelier/internal/runtime"
	"atelier/internal/runtime/local/seccomp"
	"atelier/internal/snapshot/archive"
)

// Default limits of one desktop, used where Spec.Resources leaves zeros.
const (
	DefaultMemoryBytes = 4 << 30
	DefaultCPUs        = 2
	DefaultPIDs        = 1024
)

// Options configure a Runtime. Zero values take the defaults noted.
type Options struct {
	// DataDir holds the desktops, under DataDir/desktops. Required.
	DataDir string
	// AgentPath is the atelier-agent binary run in each sandbox. Required.
	AgentPath string
	// User is the unprivileged user desktops run as. Default "atelier".
	User string
	// Logger receives lifecycle events. Default: discard.
	Logger *slog.Logger
	// Limits apply where a Spec leaves its Resources zero. Default 4 GiB,
	// 2 CPUs, 1024 pids.
	Limits runtime.Resources
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	// Default 10s.
	StopTimeout time.Duration
	// Bwrap is the bubblewrap binary. Default: "bwrap" on PATH.
	Bwrap string
	// HomeQuota is the size of each new home's filesystem (homefs), so
	// writes past it fail in the desktop; 0 makes new homes plain
	// directories without a quota. Homes made before keep what they have.
	HomeQuota int64
}

// Runtime is the local runtime. It is safe for concurrent use.
type Runtime struct {
	opts     Options
	log      *slog.Logger
	root     string // DataDir/desktops
	uid, gid int
	cg       cgroups
	bwrap    string
	seccomp  []byte // the desktops' seccomp filter, as bwrap reads it
	// frameClock is desktop.FrameClockFile beside the agent, bound beside
	// it in each sandbox; "" when there is none.
	frameClock string

	mu     sync.Mutex
	desks  map[string]*desk
	closed bool
}

// New returns a runtime over opts.DataDir and re-adopts the desktops whose
// sandboxes still run there.
func New(opts Options) (*Runtime, error) {
	if opts.DataDir == "" || opts.AgentPath == "" {
		return nil, errors.New("local runtime: DataDir and AgentPath are required")
	}
	if opts.User == "" {
		opts.User = "atelier"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Limits.MemoryBytes == 0 {
		opts.Limits.MemoryBytes = DefaultMemoryBytes
	}
	if opts.Limits.CPUs == 0 {
		opts.Limits.CPUs = DefaultCPUs
	}
	if opts.Limits.PIDs == 0 {
		opts.Limits.PIDs = DefaultPIDs
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 10 * time.Second
	}
	if err := checkLimits(opts.Limits); err != nil {
		return nil, fmt.Errorf("local runtime: default limits: %w", err)
	}
	if opts.HomeQuota != 0 {
		if err := homefs.Check(); err != nil {
			return nil, fmt.Errorf("local runtime: %w; or set no home quota", err)
		}
	}
	bw := opts.Bwrap
	if bw == "" {
		bw = "bwrap"
	}
	bwPath, err := exec.LookPath(bw)
	if err != nil {
		return nil, fmt.Errorf("local runtime: bubblewrap: %w (install the bubblewrap package)", err)
	}
	agent, err := filepath.EvalSymlinks(opts.AgentPath)
	if err == nil {
		agent, err = filepath.Abs(agent)
	}
	if err != nil {
		return nil, fmt.Errorf("local runtime: agent path: %w", err)
	}
	if fi, err := os.Stat(agent); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o005 != 0o005 {
		return nil, fmt.Errorf("local runtime: agent %s: want a regular file others may read and run (stat: %v)", agent, err)
	}
	opts.AgentPath = agent
	frameClock := filepath.Join(filepath.Dir(agent), desktop.FrameClockFile)
	if fi, err := os.Stat(frameClock); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o004 == 0 {
		opts.Logger.Info("no readable " + desktop.FrameClockFile + " beside the agent: idle desktops' sway wakes 60 times a second")
		frameClock = ""
	}
	u, err := user.Lookup(opts.User)
	if err != nil {
		return nil, fmt.Errorf("local runtime: desktop user: %w (desktop/install-deps.sh creates it)", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 {
		return nil, fmt.Errorf("local runtime: desktop user %s is root; desktops never run as root", opts.User)
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("local runtime: data dir: %w", err)
	}
	root := filepath.Join(dataDir, "desktops")
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("local runtime: %w", err)
	}
	// bwrap, running as the desktop user, resolves the paths it binds: the
	// user may pass through the data dir (not list it) to reach its own home.
	for _, p := range []string{dataDir, root} {
		if err := os.Chmod(p, 0o711); err != nil {
			return nil, fmt.Errorf("local runtime: %w", err)
		}
	}
	for _, p := range []string{filepath.Dir(dataDir), filepath.Dir(agent)} {
		if err := checkTraversable(p); err != nil {
			return nil, fmt.Errorf("local runtime: %w; desktops run as %s and bwrap must reach their directories and the agent", err, opts.User)
		}
	}
	filter, err := seccomp.Filter()
	if err != nil {
		return nil, fmt.Errorf("local runtime: %w", err)
	}
	r := &Runtime{opts: opts, log: opts.Logger, root: root, uid: uid, gid: gid, bwrap: bwPath, seccomp: filter, frameClock: frameClock, desks: map[string]*desk{}}
	r.cg = detectCgroups()
	if r.cg.kind == "" {
		r.log.Warn("local runtime: no writable cgroup hierarchy; desktops run without memory, cpu and pids limits")
	} else {
		r.log.Info("local runtime: resource limits through cgroups", "cgroup", r.cg.kind)
	}
	if err := r.adopt(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// adopt finds the desktops on disk and supervises those still running.
func (r *Runtime) adopt() error {
	ents, err := os.ReadDir(r.root)
	if err != nil {
		return fmt.Errorf("local runtime: list desktops: %w", err)
	}
	for _, e := range ents {
		if checkID(e.Name()) != nil {
			continue
		}
		d, err := r.lookup(e.Name())
		if errors.Is(err, runtime.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		d.op.Lock()
		// After a host reboot nothing is mounted: a stopped desktop's home
		// is mounted too, for its usage and its snapshots.
		if err := r.mountHome(context.Background(), d); err != nil {
			r.log.Warn("desktop home not mounted", "desktop", d.id, "err", err)
		}
		p, err := d.findProc()
		if err == nil && p != nil {
			d.mu.Lock()
			d.proc = p
			d.mu.Unlock()
			d.supervise(r)
			r.log.Info("desktop adopted", "desktop", d.id, "pid", p.pid)
		}
		d.op.Unlock()
		if err != nil {
			r.log.Warn("desktop not adopted", "desktop", d.id, "err", err)
		}
	}
	return nil
}

// Name reports "local".
func (r *Runtime) Name() string { return "local" }

// Close stops supervising and leaves every desktop running.
func (r *Runtime) Close() error {
	r.mu.Lock()
	r.closed = true
	desks := slices.Collect(maps.Values(r.desks))
	r.mu.Unlock()
	for _, d := range desks {
		d.op.Lock()
		d.unsupervise()
		d.mu.Lock()
		if d.proc != nil {
			d.proc.close()
			d.proc = nil
		}
		d.mu.Unlock()
		d.op.Unlock()
	}
	return nil
}

// lookup returns the desktop id, loading it from disk if needed, or
// ErrNotFound.
func (r *Runtime) lookup(id string) (*desk, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("%w: %v", runtime.ErrNotFound, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("local runtime is closed")
	}
	if d, ok := r.desks[id]; ok {
		return d, nil
	}
	dir := filepath.Join(r.root, id)
	sp, err := readSpec(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", runtime.ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	d := &desk{id: id, dir: dir, spec: sp}
	r.desks[id] = d
	return d, nil
}

// Create prepares the desktop's directories and spec. An existing home is
// kept; a running desktop cannot be created again.
func (r *Runtime) Create(ctx context.Context, spec runtime.Spec) (err error) {
	if err := checkID(spec.ID); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	sp, err := r.newSpec(spec)
	if err != nil {
		return fmt.Errorf("create %s: %w", spec.ID, err)
	}
	if spec.Image != "" {
		return fmt.Errorf("create %s: the local runtime has no images (image %q)", spec.ID, spec.Image)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errors.New("local runtime is closed")
	}
	d, ok := r.desks[spec.ID]
	if !ok {
		d = &desk{id: spec.ID, dir: filepath.Join(r.root, spec.ID)}
		r.desks[spec.ID] = d
	}
	r.mu.Unlock()

	d.op.Lock()
	defer d.op.Unlock()
	_, statErr := os.Stat(d.dir)
	fresh := errors.Is(statErr, os.ErrNotExist)
	defer func() {
		if err != nil && !fresh && !fileExists(d.specFile()) {
			d.fs().Unmount() // a kept home stays as Remove left it
		}
		if err == nil || !fresh {
			return
		}
		// A refused create leaves nothing behind; never a home's files
		// through a mount RemoveAll would walk into.
		if d.fs().Remove() == nil {
			os.RemoveAll(d.dir)
		}
		r.mu.Lock()
		delete(r.desks, d.id)
		r.mu.Unlock()
	}()
	if d.sup != nil {
		return fmt.Errorf("create %s: desktop exists and runs", spec.ID)
	}
	if p, _ := d.findProc(); p != nil {
		p.close()
		return fmt.Errorf("create %s: desktop exists and runs", spec.ID)
	}
	if err := os.MkdirAll(d.dir, 0o711); err != nil {
		return fmt.Errorf("create %s: %w", spec.ID, err)
	}
	if err := r.mountHome(ctx, d); err != nil {
		return fmt.Errorf("create %s: %w", spec.ID, err)
	}
	if spec.HomeArchive != nil {
		// The target must be empty: a snapshot never merges into a home.
		own := &archive.Owner{UID: r.uid, GID: r.gid}
		if err := archive.ExtractTar(d.home(), spec.HomeArchive, archive.ExtractOptions{Owner: own}); err != nil {
			return fmt.Errorf("create %s: home archive: %w", spec.ID, err)
		}
	}
	if err := r.prepareDirs(ctx, d); err != nil {
		return fmt.Errorf("create %s: %w", spec.ID, err)
	}
	if err := writeSpec(d.dir, sp); err != nil {
		return fmt.Errorf("create %s: %w", spec.ID, err)
	}
	d.mu.Lock()
	d.spec = sp
	d.mu.Unlock()
	r.log.Info("desktop created", "desktop", spec.ID, "resolution", sp.Resolution.String(), "from_archive", spec.HomeArchive != nil)
	return nil
}

// prepareDirs makes the desktop's dir (root's), home and run dir (the
// desktop user's), mounts the home if it has a filesystem of its own, and
// fixes their owners and modes.
func (r *Runtime) prepareDirs(ctx context.Context, d *desk) error {
	// Others may pass through (bwrap resolves the binds as the desktop
	// user), not list: the spec, pid file and log are root's alone.
	if err := os.MkdirAll(d.dir, 0o711); err != nil {
		return err
	}
	if err := os.Chmod(d.dir, 0o711); err != nil {
		return err
	}
	if err := r.mountHome(ctx, d); err != nil {
		return err
	}
	for _, p := range []string{d.home(), d.run()} {
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", p)
		}
		if err := os.Lchown(p, r.uid, r.gid); err != nil {
			return fmt.Errorf("own %s: %w", p, err)
		}
		if err := os.Chmod(p, 0o700); err != nil {
			return err
		}
	}
	// The gate dir is the fleet's: the desktop may pass through it to the
	// socket, not list or change it, whatever the umask.
	if err := os.Mkdir(d.gate(), 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return os.Chmod(d.gate(), 0o711)
}

// mountHome mounts d's home filesystem, making it first for a new home
// when the runtime has a quota. A home made without one (by a version
// before quotas, or with none set) stays a plain directory, with a
// warning: moving it into a filesystem would copy all it holds on the
// start path, and could not fit if it holds more than the quota; a
// snapshot and a clone move it, on purpose.
func (r *Runtime) mountHome(ctx context.Context, d *desk) error {
	made, err := d.fs().MountIfMade(ctx)
	if err != nil || made || r.opts.HomeQuota == 0 {
		return err
	}
	if fileExists(d.plainHome()) {
		r.log.Warn("desktop home has no disk quota: it was made without one (a clone of its snapshot gets one)", "desktop", d.id)
		return nil
	}
	if err := d.fs().Create(ctx, r.opts.HomeQuota, r.uid, r.gid); err != nil {
		return err
	}
	if err := homefs.Overcommitted(r.root); err != nil {
		r.log.Warn("home quotas exceed the free disk", "err", err)
	}
	return nil
}

// Start launches the desktop's sandbox; a running one is left alone.
func (r *Runtime) Start(ctx context.Context, id string) error {
	d, err := r.lookup(id)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	d.op.Lock()
	defer d.op.Unlock()
	if d.sup != nil {
		return nil
	}
	p, err := d.findProc()
	if err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	if p == nil {
		if p, err = r.launch(ctx, d); err != nil {
			return fmt.Errorf("start %s: %w", id, err)
		}
		r.log.Info("desktop started", "desktop", id, "pid", p.pid)
	}
	d.mu.Lock()
	d.proc = p
	d.restarting = false
	d.mu.Unlock()
	d.supervise(r)
	return nil
}

// Stop ends the desktop's process tree, keeping its home.
func (r *Runtime) Stop(ctx context.Context, id string) error {
	d, err := r.lookup(id)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	d.op.Lock()
	defer d.op.Unlock()
	if err := r.stop(ctx, d); err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	return nil
}

// stop ends d's tree; d.op must be held.
func (r *Runtime) stop(ctx context.Context, d *desk) error {
	d.unsupervise()
	d.mu.Lock()
	p := d.proc
	d.proc = nil
	d.restarting = false
	d.mu.Unlock()
	if p == nil {
		var err error
		if p, err = d.findProc(); err != nil || p == nil {
			os.Remove(d.pidFile())
			r.cg.remove(r.cgName(d.id))
			return err
		}
	}
	defer p.close()
	if err := r.terminate(ctx, p); err != nil {
		return err
	}
	os.Remove(d.pidFile())
	if err := r.cg.remove(r.cgName(d.id)); err != nil {
		r.log.Warn("desktop cgroup not removed", "desktop", d.id, "err", err)
	}
	r.log.Info("desktop stopped", "desktop", d.id)
	return nil
}

// Remove stops the desktop and deletes its run dir and spec; its home too
// when purge.
func (r *Runtime) Remove(ctx context.Context, id string, purge bool) error {
	d, err := r.lookup(id)
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	d.op.Lock()
	defer d.op.Unlock()
	if err := r.stop(ctx, d); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	// A kept home is unmounted too: no loop device stays attached to a
	// desktop that is gone.
	if err := d.fs().Unmount(); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	r.mu.Lock()
	delete(r.desks, id)
	r.mu.Unlock()
	// The spec goes first: without it the desktop no longer exists, even if
	// a later removal fails half-way.
	for _, p := range []string{d.specFile(), d.run(), d.logFile()} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove %s: %w", id, err)
		}
	}
	if purge {
		if err := d.fs().Remove(); err != nil {
			return fmt.Errorf("remove %s: purge home: %w", id, err)
		}
		if err := os.RemoveAll(d.dir); err != nil {
			return fmt.Errorf("remove %s: purge home: %w", id, err)
		}
	}
	r.log.Info("desktop removed", "desktop", id, "purge", purge)
	return nil
}

// Inspect reports one desktop.
func (r *Runtime) Inspect(ctx context.Context, id string) (runtime.Instance, error) {
	d, err := r.lookup(id)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("inspect: %w", err)
	}
	return r.inspect(ctx, d)
}

func (r *Runtime) inspect(ctx context.Context, d *desk) (runtime.Instance, error) {
	in := runtime.Instance{ID: d.id}
	var err error
	if in.Home, err = d.fs().Usage(); err != nil {
		return in, fmt.Errorf("inspect %s: %w", d.id, err)
	}
	p, restarting := d.current()
	if p == nil && !restarting {
		// Not supervised by this runtime: maybe started by another one on the
		// same data dir, or stopped.
		found, err := d.findProc()
		if err != nil {
			return in, fmt.Errorf("inspect %s: %w", d.id, err)
		}
		if found != nil {
			found.close()
		}
		p = found
	}
	if p == nil && !restarting {
		return in, nil
	}
	in.Running = true
	d.mu.Lock()
	in.Restarts = d.restarts
	d.mu.Unlock()
	if p != nil {
		in.StartedAt = p.startedAt
		in.Detail = fmt.Sprintf("pid %d", p.pid)
	} else {
		in.Detail = "restarting"
	}
	ready := desktop.Ready(d.run())
	d.mu.Lock()
	if restarting && p != nil && ready {
		// The relaunched desktop came up: the restart is over.
		d.restarting = false
		restarting = false
	}
	if ready && p != nil {
		d.readyRun = p.startedAt
	}
	wasReady := p != nil && d.readyRun.Equal(p.startedAt)
	d.mu.Unlock()
	// The agent withdraws the ready file while sway, wayvnc or itself does
	// not answer; reading it costs the desktop nothing, where asking the
	// agent would wake it at every reconcile.
	in.Degraded = restarting || wasReady && !ready
	return in, nil
}

// List reports every desktop with a spec in the data dir.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	ents, err := os.ReadDir(r.root)
	if err != nil {
		return nil, fmt.Errorf("list desktops: %w", err)
	}
	var out []runtime.Instance
	for _, e := range ents {
		if checkID(e.Name()) != nil {
			continue
		}
		d, err := r.lookup(e.Name())
		if errors.Is(err, runtime.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list desktops: %w", err)
		}
		in, err := r.inspect(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("list desktops: %w", err)
		}
		out = append(out, in)
	}
	return out, nil
}

// Dial connects to a socket in the desktop's run dir.
func (r *Runtime) Dial(ctx context.Context, id string, endpoint runtime.Endpoint) (net.Conn, error) {
	d, err := r.lookup(id)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	return d.dial(ctx, endpoint)
}

// GateSocket is the egress socket's path in the desktop's gate dir.
func (r *Runtime) GateSocket(id string) (string, error) {
	d, err := r.lookup(id)
	if err != nil {
		return "", fmt.Errorf("gate socket: %w", err)
	}
	return filepath.Join(d.gate(), desktop.GateSocket), nil
}

// WriteRunFile atomically writes one of the files the fleet owns in the run
// dir, owned by the desktop user so the desktop may read it.
func (r *Runtime) WriteRunFile(ctx context.Context, id, name string, data []byte) error {
	if name != desktop.BudgetFile && name != desktop.ThemeFile && name != desktop.ResolutionFile {
		return fmt.Errorf("write run file %q: only %s, %s and %s are written by the fleet", name, desktop.BudgetFile, desktop.ThemeFile, desktop.ResolutionFile)
	}
	d, err := r.lookup(id)
	if err != nil {
		return fmt.Errorf("write run file: %w", err)
	}
	if err := writeFileAtomic(d.run(), name, data, r.uid, r.gid, 0o644); err != nil {
		return fmt.Errorf("write run file %s of %s: %w", name, id, err)
	}
	return nil
}

// ExportHome writes the desktop's home as a tar stream.
func (r *Runtime) ExportHome(ctx context.Context, id string, w io.Writer) error {
	d, err := r.lookup(id)
	if err != nil {
		return fmt.Errorf("export home: %w", err)
	}
	tw := tar.NewWriter(w)
	if _, err := archive.WriteTar(ctx, tw, d.home(), nil); err != nil {
		return fmt.Errorf("export home of %s: %w", id, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export home of %s: %w", id, err)
	}
	return nil
}

// Home reports the desktop's home on the host.
func (r *Runtime) Home(_ context.Context, id string) (runtime.HomeDir, error) {
	d, err := r.lookup(id)
	if err != nil {
		return runtime.HomeDir{}, fmt.Errorf("home: %w", err)
	}
	return runtime.HomeDir{Path: d.home(), UID: r.uid, GID: r.gid}, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// checkTraversable reports an error unless others may pass through dir and
// each of its parents.
func checkTraversable(dir string) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not traversable by other users (mode %v)", p, fi.Mode().Perm())
		}
		if p == "/" {
			return nil
		}
	}
}
