// Package docker runs desktops as Docker containers through the Engine API
// (the official Go SDK): one container per desktop from the image
// atelier/desktop, its home in a named volume that outlives the container
// (with a quota, a bind volume of the home's own filesystem, homefs),
// its run dir bind-mounted from the data dir so the fleet dials agent.sock
// and vnc.sock directly (no docker exec, no published port). Containers are
// labelled, so a restarted fleet finds them again with List.
//
// Desktops get no network (NetworkMode none): they cannot reach each other,
// the fleet's API or anything else, and the fleet does not need them to,
// since it talks to them through their run dirs. Their one way out is the
// fleet's egress gateway, whose socket the runtime bind-mounts read-only
// from the fleet's gate dir. Options.Network names a Docker network to
// attach them to instead: an explicit opt-out of that isolation, logged
// loudly, whose safety is then the operator's to arrange.
package docker

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"atelier/desktop"
	"atelier/internal/homefs"
	"atelier/internal/runtime"
	"atelier/internal/runtime/desksock"
	"atelier/internal/snapshot/archive"
)

// Labels on every container and volume the runtime makes.
const (
	LabelSession    = "dev.atelier.session"    // the desktop (session) id
	LabelLabel      = "dev.atelier.label"      // the session's label, for people
	LabelResolution = "dev.atelier.resolution" // WIDTHxHEIGHT
	LabelTheme      = "dev.atelier.theme"      // palette name at creation
	// LabelDataDir is the data dir of the fleet that made the desktop: it
	// tells apart the desktops of fleets sharing an engine.
	LabelDataDir = "dev.atelier.data-dir"
)

// The desktop user of the image (desktop/Dockerfile), who owns the home.
const (
	DesktopUID = desktop.ImageUID
	DesktopGID = desktop.ImageGID
)

// DefaultLimits are the resources of a desktop whose spec names none.
var DefaultLimits = runtime.ContainerLimits

// Options configure a Runtime.
type Options struct {
	// Client talks to the Docker Engine; the caller owns it. Required.
	Client *client.Client
	// Image is the desktop image, such as atelier/desktop:v1. Required.
	Image string
	// DataDir holds the run dirs (<DataDir>/desktops/<id>/run). When the
	// fleet itself runs in a container it must be mounted at the same path
	// as on the host: the engine resolves bind mounts on the host. Required.
	DataDir string
	// Network is the Docker network desktops join; "" means none at all.
	Network string
	// Limits are the resources of desktops whose spec names none; zero
	// fields take DefaultLimits'.
	Limits runtime.Resources
	// StopTimeout is how long a stopping desktop gets before SIGKILL.
	// Default 10s.
	StopTimeout time.Duration
	Logger      *slog.Logger // nil: discard
	// HomeQuota is the size of each new home's filesystem (homefs),
	// mounted on the host and bound into the container through its
	// volume, so writes past it fail in the desktop; 0 makes new homes
	// plain volumes without a quota. Homes made before keep what they
	// have. The fleet must share the engine's mount namespace.
	HomeQuota int64
}

// Runtime runs desktops as Docker containers. It is safe for concurrent use.
type Runtime struct {
	opts Options
	c    *client.Client
	log  *slog.Logger
	mu   sync.Mutex // serializes Create and Remove per runtime: both touch volume and container

	cidMu sync.Mutex
	cids  map[string]string // desktop id → its container's id, as last seen by owns

	// readyRun holds, per desktop, the start time of the container run
	// last seen ready: once a run has been ready, losing the ready file
	// means a component is down (see Inspect).
	readyMu  sync.Mutex
	readyRun map[string]string
}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns a docker runtime; it checks that the engine answers and has
// the image.
func New(ctx context.Context, opts Options) (*Runtime, error) {
	if opts.Client == nil || opts.Image == "" || opts.DataDir == "" {
		return nil, errors.New("docker runtime: Client, Image and DataDir are required")
	}
	opts.Limits = opts.Limits.Or(DefaultLimits)
	if err := opts.Limits.Check(); err != nil {
		return nil, fmt.Errorf("docker runtime: limits: %w", err)
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("docker runtime: %w", err)
	}
	opts.DataDir = abs
	if _, err := opts.Client.ImageInspect(ctx, opts.Image); err != nil {
		return nil, fmt.Errorf("docker runtime: image %s (make image builds it): %w", opts.Image, err)
	}
	if err := os.MkdirAll(filepath.Join(opts.DataDir, "desktops"), 0o700); err != nil {
		return nil, fmt.Errorf("docker runtime: %w", err)
	}
	if opts.HomeQuota != 0 {
		if err := homefs.Check(); err != nil {
			return nil, fmt.Errorf("docker runtime: %w; or set no home quota", err)
		}
	}
	if opts.Network != "" {
		opts.Logger.Warn("DESKTOPS ARE NOT ISOLATED: they join the Docker network "+opts.Network+
			" and can reach whatever it reaches (this fleet, the host, each other, private ranges) beside the egress gateway; "+
			"unset ATELIER_DOCKER_NETWORK to keep them on network none", "network", opts.Network)
	}
	r := &Runtime{opts: opts, c: opts.Client, log: opts.Logger, cids: map[string]string{}, readyRun: map[string]string{}}
	if err := r.mountHomes(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// mountHomes mounts the home filesystem of every desktop of this data dir
// (after a host reboot none is): a stopped desktop's too, for its usage.
func (r *Runtime) mountHomes(ctx context.Context) error {
	res, err := r.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", LabelDataDir+"="+r.opts.DataDir)})
	if err != nil {
		return fmt.Errorf("docker runtime: list desktops: %w", err)
	}
	for _, ctr := range res.Items {
		id := ctr.Labels[LabelSession]
		if runtime.CheckID(id) != nil {
			continue
		}
		if err := r.mountHome(ctx, id); err != nil {
			r.log.Warn("desktop home not mounted", "desktop", id, "err", err)
		}
	}
	return nil
}

// Home is the home filesystem of desktop id of a runtime on dataDir, if
// its home has one.
func Home(dataDir, id string) homefs.Home { return homefs.In(filepath.Join(dataDir, "desktops", id)) }

func (r *Runtime) home(id string) homefs.Home { return Home(r.opts.DataDir, id) }

// mountHome mounts desktop id's home filesystem if it has one. A home
// made without (by a version before quotas, or with none set) stays a
// plain volume, with a warning: moving it would copy all it holds on the
// start path, and could not fit if it holds more than the quota; a
// snapshot and a clone move it, on purpose.
func (r *Runtime) mountHome(ctx context.Context, id string) error {
	made, err := r.home(id).MountIfMade(ctx)
	if err == nil && !made && r.opts.HomeQuota != 0 {
		r.log.Warn("desktop home has no disk quota: it was made without one (a clone of its snapshot gets one)", "desktop", id)
	}
	return err
}

// Name is "docker".
func (r *Runtime) Name() string { return "docker" }

// Close leaves desktops running; the client is the caller's to close.
func (r *Runtime) Close() error { return nil }

// ContainerName is the name of desktop id's container.
func ContainerName(id string) string { return "atelier-" + id }

// VolumeName is the name of the volume holding desktop id's home.
func VolumeName(id string) string { return "atelier-home-" + id }

func (r *Runtime) dir(id string) string    { return filepath.Join(r.opts.DataDir, "desktops", id) }
func (r *Runtime) runDir(id string) string { return filepath.Join(r.dir(id), "run") }

// gateDir is the fleet's, read-only in the container.
func (r *Runtime) gateDir(id string) string { return filepath.Join(r.dir(id), "gate") }

// Create makes the desktop's home volume (kept if it exists), run dir and
// container, and fills a new home from spec.HomeArchive. A refused spec or
// archive changes nothing.
func (r *Runtime) Create(ctx context.Context, spec runtime.Spec) error {
	if err := runtime.CheckID(spec.ID); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	id := spec.ID
	if err := spec.Check(); err != nil {
		return fmt.Errorf("create %s: %w", id, err)
	}
	image := r.opts.Image
	if spec.Image != "" {
		image = spec.Image
	}
	if _, err := r.c.ImageInspect(ctx, image); err != nil {
		return fmt.Errorf("create %s: image %s: %w", id, image, err)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	newVolume := false
	if _, err := r.c.VolumeInspect(ctx, VolumeName(id), client.VolumeInspectOptions{}); cerrdefs.IsNotFound(err) {
		newVolume = true
	} else if err != nil {
		return fmt.Errorf("create %s: %w", id, err)
	}
	if spec.HomeArchive != nil && !newVolume {
		return fmt.Errorf("create %s: a home archive is only for a new home, and %s exists", id, VolumeName(id))
	}
	old, err := r.c.ContainerInspect(ctx, ContainerName(id), client.ContainerInspectOptions{})
	switch {
	case err == nil && old.Container.State != nil && old.Container.State.Running:
		return fmt.Errorf("create %s: desktop exists and runs", id)
	case err == nil:
		// Created or stopped: made again from this spec, keeping the home.
		if _, err := r.c.ContainerRemove(ctx, old.Container.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			return fmt.Errorf("create %s: remove old container: %w", id, err)
		}
	case !cerrdefs.IsNotFound(err):
		return fmt.Errorf("create %s: %w", id, err)
	}

	// Whatever fails from here undoes what this call made.
	made := func(ctx context.Context) {
		r.c.ContainerRemove(ctx, ContainerName(id), client.ContainerRemoveOptions{Force: true})
		if !newVolume {
			r.home(id).Unmount() // as it was: a kept home is not mounted
			os.RemoveAll(r.runDir(id))
			return
		}
		r.c.VolumeRemove(ctx, VolumeName(id), client.VolumeRemoveOptions{})
		// Never a home's files through a mount RemoveAll would walk into.
		if r.home(id).Remove() == nil {
			os.RemoveAll(r.dir(id))
		}
	}
	if err := r.create(ctx, spec, image, newVolume); err != nil {
		made(context.WithoutCancel(ctx))
		return fmt.Errorf("create %s: %w", id, err)
	}
	r.log.Info("desktop created", "desktop", id, "image", image, "resolution", spec.Resolution.String())
	return nil
}

func (r *Runtime) create(ctx context.Context, spec runtime.Spec, image string, newVolume bool) error {
	id := spec.ID
	labels := map[string]string{
		LabelSession: id, LabelLabel: spec.Label, LabelResolution: spec.Resolution.String(), LabelTheme: spec.Theme,
		LabelDataDir: r.opts.DataDir,
	}
	if newVolume {
		if err := r.createVolume(ctx, id, labels); err != nil {
			return err
		}
	} else if err := r.mountHome(ctx, id); err != nil {
		return err
	}
	run := r.runDir(id)
	if err := os.MkdirAll(run, 0o700); err != nil {
		return err
	}
	if err := os.Chown(run, DesktopUID, DesktopGID); err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	// The gate dir is the fleet's: the desktop may pass through it to the
	// socket, not list or change it, whatever the umask.
	if err := os.MkdirAll(r.gateDir(id), 0o711); err != nil {
		return err
	}
	if err := os.Chmod(r.gateDir(id), 0o711); err != nil {
		return err
	}
	res := spec.Resources.Or(r.opts.Limits)
	network := r.opts.Network
	if network == "" {
		network = "none"
	}
	yes := true
	_, err := r.c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: ContainerName(id),
		Config: &container.Config{
			Image:    image,
			Hostname: "desktop",
			Labels:   labels,
			// The image's healthcheck is for a desktop run by hand; the
			// runtime reads the ready file itself (lostReady).
			Healthcheck: &container.HealthConfig{Test: []string{"NONE"}},
			Cmd: []string{"--resolution", spec.Resolution.String(), "--theme", spec.Theme,
				"--egress-gate", path.Join(desktop.GateDirPath, desktop.GateSocket)},
		},
		HostConfig: &container.HostConfig{
			NetworkMode: container.NetworkMode(network),
			Mounts: []mount.Mount{
				{Type: mount.TypeBind, Source: run, Target: desktop.RunDirPath},
				{Type: mount.TypeBind, Source: r.gateDir(id), Target: desktop.GateDirPath, ReadOnly: true},
				{Type: mount.TypeVolume, Source: VolumeName(id), Target: desktop.HomePath},
			},
			// The desktop runs as an unprivileged user and needs no
			// capability; nothing in it may gain privileges (setuid).
			CapDrop:     []string{"ALL"},
			SecurityOpt: []string{"no-new-privileges:true"},
			// An init reaps the orphans of programs started in the desktop.
			Init: &yes,
			// Browsers need more shared memory than Docker's 64 MiB.
			ShmSize: 512 << 20,
			// Temporary files (sockets, locks, browser scratch) live in
			// memory: they do not outlive a stop, nor land in a snapshot's
			// image for a clone to inherit.
			Tmpfs: map[string]string{"/tmp": "rw,exec,nosuid,nodev,mode=1777"},
			Resources: container.Resources{
				Memory:     res.MemoryBytes,
				MemorySwap: res.MemoryBytes, // no swap beyond the limit
				NanoCPUs:   int64(res.CPUs * 1e9),
				PidsLimit:  &res.PIDs,
			},
		},
	})
	if err != nil {
		return err
	}
	if spec.HomeArchive != nil {
		return r.fillHome(ctx, id, spec.HomeArchive)
	}
	return nil
}

// createVolume makes desktop id's home volume: with a quota, a bind of the
// home proper in its own filesystem (homefs), made and mounted here; the
// engine binds it into the container. Unmounted, the home proper does not
// exist, so the container fails to start rather than write unbounded.
func (r *Runtime) createVolume(ctx context.Context, id string, labels map[string]string) error {
	opts := client.VolumeCreateOptions{Name: VolumeName(id), Labels: labels}
	if r.opts.HomeQuota != 0 {
		if err := os.MkdirAll(r.dir(id), 0o700); err != nil {
			return err
		}
		h := r.home(id)
		if err := h.Create(ctx, r.opts.HomeQuota, DesktopUID, DesktopGID); err != nil {
			return err
		}
		if err := homefs.Overcommitted(filepath.Dir(r.dir(id))); err != nil {
			r.log.Warn("home quotas exceed the free disk", "err", err)
		}
		opts.DriverOpts = map[string]string{"type": "none", "o": "bind", "device": h.Path()}
	}
	_, err := r.c.VolumeCreate(ctx, opts)
	return err
}

// fillHome extracts archive safely on the host (archive.ExtractTar, which
// refuses a hostile archive whole) and copies the result into the created
// container's home volume, owned by the desktop user. The engine's own
// extraction only ever sees a tree this runtime wrote.
func (r *Runtime) fillHome(ctx context.Context, id string, home io.Reader) error {
	staging := filepath.Join(r.dir(id), "home")
	defer os.RemoveAll(staging)
	if err := archive.ExtractTar(staging, home, archive.ExtractOptions{}); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		_, err := archive.WriteTar(ctx, tw, staging, &archive.Owner{UID: DesktopUID, GID: DesktopGID})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	_, err := r.c.CopyToContainer(ctx, ContainerName(id), client.CopyToContainerOptions{
		// The engine keeps the owners of the headers (CopyUIDGID would
		// look the image's user up in the engine host's passwd instead).
		DestinationPath: desktop.HomePath, Content: pr,
	})
	pr.CloseWithError(errors.New("copy abandoned")) // stops the writer if the engine stopped reading
	if err != nil {
		return fmt.Errorf("fill home: %w", err)
	}
	return nil
}

// Start starts a created or stopped desktop; a running one is left alone.
func (r *Runtime) Start(ctx context.Context, id string) error {
	ins, err := r.inspect(ctx, id)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if ins.State != nil && ins.State.Running {
		return nil
	}
	if err := r.mountHome(ctx, id); err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	// A ready file from the last run would report a desktop ready too soon.
	os.Remove(filepath.Join(r.runDir(id), desktop.ReadyFile))
	if err := os.MkdirAll(r.runDir(id), 0o700); err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	if err := os.Chown(r.runDir(id), DesktopUID, DesktopGID); err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	if _, err := r.c.ContainerStart(ctx, ins.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	r.log.Info("desktop started", "desktop", id, "container", short(ins.ID))
	return nil
}

// Stop stops a desktop, keeping its home; a stopped one is left alone.
func (r *Runtime) Stop(ctx context.Context, id string) error {
	ins, err := r.inspect(ctx, id)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if ins.State == nil || !ins.State.Running {
		return nil
	}
	timeout := int(r.opts.StopTimeout / time.Second)
	if _, err := r.c.ContainerStop(ctx, ins.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	r.log.Info("desktop stopped", "desktop", id)
	return nil
}

// Remove removes the desktop's container and run dir, and its home volume
// if purge. Purging the kept home of a desktop removed earlier is allowed.
func (r *Runtime) Remove(ctx context.Context, id string, purge bool) error {
	if err := runtime.CheckID(id); err != nil {
		return fmt.Errorf("remove: %w: %v", runtime.ErrNotFound, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	found := false
	_, err := r.c.ContainerRemove(ctx, ContainerName(id), client.ContainerRemoveOptions{Force: true})
	switch {
	case err == nil:
		found = true
	case !cerrdefs.IsNotFound(err):
		return fmt.Errorf("remove %s: %w", id, err)
	}
	// With its container gone, the engine no longer binds the home: its
	// filesystem is unmounted, kept or not, and no loop device stays.
	if err := r.home(id).Unmount(); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	gone := r.runDir(id)
	if purge {
		// Not Force: it would hide that the volume does not exist.
		_, err := r.c.VolumeRemove(ctx, VolumeName(id), client.VolumeRemoveOptions{})
		switch {
		case err == nil:
			found = true
		case !cerrdefs.IsNotFound(err):
			return fmt.Errorf("remove %s: home: %w", id, err)
		}
		if err := r.home(id).Remove(); err != nil {
			return fmt.Errorf("remove %s: home: %w", id, err)
		}
		gone = r.dir(id)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	r.cidMu.Lock()
	delete(r.cids, id)
	r.cidMu.Unlock()
	r.readyMu.Lock()
	delete(r.readyRun, id)
	r.readyMu.Unlock()
	if !found {
		return fmt.Errorf("remove: %w: %s", runtime.ErrNotFound, id)
	}
	r.log.Info("desktop removed", "desktop", id, "purge", purge)
	return nil
}

// inspect returns the desktop's container, or ErrNotFound.
func (r *Runtime) inspect(ctx context.Context, id string) (container.InspectResponse, error) {
	if err := runtime.CheckID(id); err != nil {
		return container.InspectResponse{}, fmt.Errorf("%w: %v", runtime.ErrNotFound, err)
	}
	res, err := r.c.ContainerInspect(ctx, ContainerName(id), client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return container.InspectResponse{}, fmt.Errorf("%w: %s", runtime.ErrNotFound, id)
	}
	if err != nil {
		return container.InspectResponse{}, fmt.Errorf("%s: %w", id, err)
	}
	if res.Container.Config == nil || res.Container.Config.Labels[LabelSession] != id {
		return container.InspectResponse{}, fmt.Errorf("%w: %s (container %s is not an Atelier desktop)", runtime.ErrNotFound, id, ContainerName(id))
	}
	return res.Container, nil
}

// Inspect reports one desktop. A running desktop that was ready in this
// run and has lost its ready file (the agent withdraws it while sway,
// wayvnc or itself does not answer) is degraded.
func (r *Runtime) Inspect(ctx context.Context, id string) (runtime.Instance, error) {
	ins, err := r.inspect(ctx, id)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("inspect: %w", err)
	}
	in := runtime.Instance{ID: id, Detail: "container " + short(ins.ID), Restarts: ins.RestartCount}
	if in.Home, err = r.home(id).Usage(); err != nil {
		return runtime.Instance{}, fmt.Errorf("inspect %s: %w", id, err)
	}
	if st := ins.State; st != nil {
		in.Running = st.Running
		in.Detail += " " + string(st.Status)
		if st.Running {
			in.StartedAt, _ = time.Parse(time.RFC3339Nano, st.StartedAt)
			in.Degraded = r.lostReady(id, st.StartedAt)
		}
	}
	return in, nil
}

// lostReady reports whether the run of desktop id that started at
// startedAt was ready once and no longer is. The ready file is read on the
// host: an exec'd healthcheck cost the engine about 0.1 s of CPU a check,
// every 5 s in every container.
func (r *Runtime) lostReady(id, startedAt string) bool {
	ready := desktop.Ready(r.runDir(id))
	r.readyMu.Lock()
	defer r.readyMu.Unlock()
	if ready {
		r.readyRun[id] = startedAt
	}
	return !ready && r.readyRun[id] == startedAt
}

// List reports every desktop container of this engine, running or not.
func (r *Runtime) List(ctx context.Context) ([]runtime.Instance, error) {
	res, err := r.c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", LabelSession)})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	var out []runtime.Instance
	for _, s := range res.Items {
		id := s.Labels[LabelSession]
		if !slices.Contains(s.Names, "/"+ContainerName(id)) {
			continue // not one of ours, whatever its labels say
		}
		in, err := r.Inspect(ctx, id)
		if errors.Is(err, runtime.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// Dial connects to a socket of the desktop's run dir, and only to a
// listener in the desktop's container: the run dir is the desktop's, which
// may plant links or other desktops' sockets there (see desksock).
func (r *Runtime) Dial(ctx context.Context, id string, endpoint runtime.Endpoint) (net.Conn, error) {
	if endpoint != runtime.EndpointAgent && endpoint != runtime.EndpointVNC {
		return nil, fmt.Errorf("dial %s: unknown endpoint %q", id, endpoint)
	}
	if err := r.exists(id); err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	c, err := desksock.Dial(ctx, r.runDir(id), string(endpoint), func(pid int) error { return r.owns(ctx, id, pid) })
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", id, err)
	}
	return c, nil
}

// owns reports whether process pid runs in desktop id's container: in its
// cgroup, named after the container's id, which is never reused and which
// no process in a container can leave. The id is cached (Dial is on the hot
// path); a miss asks the engine again, since the container may have been
// made again since.
func (r *Runtime) owns(ctx context.Context, id string, pid int) error {
	r.cidMu.Lock()
	cid := r.cids[id]
	r.cidMu.Unlock()
	if cid != "" && desksock.InCgroup(pid, cid) == nil {
		return nil
	}
	ins, err := r.inspect(ctx, id)
	if err != nil {
		return err
	}
	r.cidMu.Lock()
	r.cids[id] = ins.ID
	r.cidMu.Unlock()
	return desksock.InCgroup(pid, ins.ID)
}

// exists checks, without asking the engine (Dial is on the hot path), that
// the runtime made desktop id: its run dir lives as long as its container.
func (r *Runtime) exists(id string) error {
	if err := runtime.CheckID(id); err != nil {
		return fmt.Errorf("%w: %v", runtime.ErrNotFound, err)
	}
	if _, err := os.Stat(r.runDir(id)); err != nil {
		return fmt.Errorf("%w: %s", runtime.ErrNotFound, id)
	}
	return nil
}

// GateSocket is the egress socket's path in the desktop's gate dir.
func (r *Runtime) GateSocket(id string) (string, error) {
	if err := r.exists(id); err != nil {
		return "", fmt.Errorf("gate socket: %w", err)
	}
	return filepath.Join(r.gateDir(id), desktop.GateSocket), nil
}

// WriteRunFile atomically writes the budget or theme file of the run dir.
func (r *Runtime) WriteRunFile(ctx context.Context, id, name string, data []byte) error {
	if name != desktop.BudgetFile && name != desktop.ThemeFile && name != desktop.ResolutionFile {
		return fmt.Errorf("write run file %q of %s: only %s, %s and %s are the fleet's to write", name, id, desktop.BudgetFile, desktop.ThemeFile, desktop.ResolutionFile)
	}
	if err := r.exists(id); err != nil {
		return fmt.Errorf("write run file: %w", err)
	}
	f, err := os.CreateTemp(r.runDir(id), "."+name+"-*")
	if err != nil {
		return fmt.Errorf("write run file %s of %s: %w", name, id, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write run file %s of %s: %w", name, id, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(r.runDir(id), name)); err != nil {
		return fmt.Errorf("write run file %s of %s: %w", name, id, err)
	}
	return nil
}

// ExportHome writes the desktop's home as a tar stream (directories,
// regular files, symbolic links), running or not.
func (r *Runtime) ExportHome(ctx context.Context, id string, w io.Writer) error {
	ins, err := r.inspect(ctx, id)
	if err != nil {
		return fmt.Errorf("export home: %w", err)
	}
	res, err := r.c.CopyFromContainer(ctx, ins.ID, client.CopyFromContainerOptions{SourcePath: desktop.HomePath})
	if err != nil {
		return fmt.Errorf("export home of %s: %w", id, err)
	}
	defer res.Content.Close()
	if err := rebase(w, res.Content, path.Base(desktop.HomePath)); err != nil {
		return fmt.Errorf("export home of %s: %w", id, err)
	}
	return nil
}

// Home reports the desktop's home on the host: its own filesystem's home
// if it has one, else the engine's directory of its volume (the fleet
// runs beside the engine, as root, either way).
func (r *Runtime) Home(ctx context.Context, id string) (runtime.HomeDir, error) {
	h := r.home(id)
	if ok, err := h.Exists(); err != nil {
		return runtime.HomeDir{}, fmt.Errorf("home of %s: %w", id, err)
	} else if ok {
		return runtime.HomeDir{Path: h.Path(), UID: DesktopUID, GID: DesktopGID}, nil
	}
	v, err := r.c.VolumeInspect(ctx, VolumeName(id), client.VolumeInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return runtime.HomeDir{}, fmt.Errorf("home of %s: %w", id, runtime.ErrNotFound)
	}
	if err != nil {
		return runtime.HomeDir{}, fmt.Errorf("home of %s: %w", id, err)
	}
	return runtime.HomeDir{Path: v.Volume.Mountpoint, UID: DesktopUID, GID: DesktopGID}, nil
}

// rebase copies the engine's archive of a directory (entries named
// "operator/...") as an archive of its content, keeping only directories,
// regular files and symbolic links.
func rebase(w io.Writer, r io.Reader, top string) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		rest, ok := strings.CutPrefix(hdr.Name, top+"/")
		if !ok || rest == "" {
			continue // the directory itself
		}
		switch hdr.Typeflag {
		case tar.TypeDir, tar.TypeReg, tar.TypeSymlink:
		default:
			continue
		}
		hdr.Name = rest
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// SnapshotRepo is the repository of the images CommitImage makes.
const SnapshotRepo = "atelier/snapshot"

// CommitImage records the filesystem changes of desktop id (its home
// excluded: that is a volume; /tmp too: a tmpfs) as the image
// atelier/snapshot:<snapshotID>. The engine pauses the container while it
// diffs (its default), so no file is caught half-written; on this engine
// (fuse-overlayfs, which diffs by walking the whole tree) committing
// without the pause measured no faster.
func (r *Runtime) CommitImage(ctx context.Context, id, snapshotID string) (string, error) {
	ins, err := r.inspect(ctx, id)
	if err != nil {
		return "", fmt.Errorf("commit: %w", err)
	}
	ref := SnapshotRepo + ":" + snapshotID
	if _, err := r.c.ContainerCommit(ctx, ins.ID, client.ContainerCommitOptions{
		Reference: ref, Comment: "Atelier snapshot " + snapshotID + " of " + id,
	}); err != nil {
		return "", fmt.Errorf("commit %s: %w", id, err)
	}
	return ref, nil
}

// RemoveImage removes an image CommitImage made; one already gone is not
// an error. An image a desktop still runs from (a clone) is refused by the
// engine: that refusal wraps runtime.ErrInUse.
func (r *Runtime) RemoveImage(ctx context.Context, image string) error {
	if !strings.HasPrefix(image, SnapshotRepo+":") {
		return fmt.Errorf("remove image %s: not a snapshot image", image)
	}
	_, err := r.c.ImageRemove(ctx, image, client.ImageRemoveOptions{PruneChildren: true})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("remove image %s: %w: sessions cloned from it still use it; delete them first", image, runtime.ErrInUse)
	}
	return fmt.Errorf("remove image %s: %w", image, err)
}

func short(id string) string { return id[:min(12, len(id))] }
