// Package dockertest gives tests the local Docker Engine with the desktop
// image built, and reaches a docker desktop's home from outside it through
// the Engine API, as a test checking what a desktop wrote needs. Tests
// skip, loudly, only when there is no engine.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"

	"atelier/desktop"
	"atelier/internal/runtime/docker"
)

// engine is the process's client and desktop image, set up once: the
// image is built (or found current) with scripts/build-image.sh.
var engine struct {
	once sync.Once
	c    *client.Client
	ref  string
	skip string // why the engine cannot be tried, if it cannot
	err  error
}

// repoRoot is the module's root, four levels above this package.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
}

// Engine returns a client of the local Docker Engine and the desktop
// image, building it if it is not current. Without an engine the test is
// skipped, loudly: the docker runtime cannot be tried at all. The client
// lives as long as the test process.
func Engine(t testing.TB) (*client.Client, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("docker runtime tests need the Docker Engine and minutes: skipped with -short")
	}
	engine.once.Do(setup)
	if engine.skip != "" {
		t.Skip(engine.skip)
	}
	if engine.err != nil {
		t.Fatal(engine.err)
	}
	return engine.c, engine.ref
}

func setup() {
	if _, err := os.Stat("/var/run/docker.sock"); err != nil && os.Getenv("DOCKER_HOST") == "" {
		engine.skip = "SKIPPED: NO DOCKER ENGINE (no /var/run/docker.sock, no DOCKER_HOST): the docker runtime is untested"
		return
	}
	c, err := client.New(client.FromEnv)
	if err != nil {
		engine.err = err
		return
	}
	if engine.ref, engine.err = prepare(c); engine.err != nil {
		c.Close()
		return
	}
	engine.c = c
}

// prepare checks that the engine answers and builds the desktop image,
// returning its reference.
func prepare(c *client.Client) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx, client.PingOptions{}); err != nil {
		return "", fmt.Errorf("a Docker socket exists but the engine does not answer: %w", err)
	}
	// One build at a time on this host: the test processes of several
	// packages ask at once, and the second then finds the image current.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "atelier-build-image.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close() // and with it the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock the image build: %w", err)
	}
	cmd := exec.Command(filepath.Join(repoRoot(), "scripts", "build-image.sh"), "dev")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the desktop image: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Purge removes every desktop a docker runtime on dataDir made, with its
// home, even one whose container is gone, and the snapshot images taken of
// them; the desktops of other fleets on the engine (tests of other
// packages running meanwhile) are left alone.
// It may run in a cleanup, when the test's context is done.
func Purge(t testing.TB, dataDir string) {
	t.Helper()
	c, ref := Engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rt, err := docker.New(ctx, docker.Options{Client: c, Image: ref, DataDir: dataDir})
	if err != nil {
		t.Errorf("purge %s: %v", dataDir, err)
		return
	}
	defer rt.Close()
	abs, _ := filepath.Abs(dataDir) // docker.New succeeded: it is absolute
	mine := client.Filters{}.Add("label", docker.LabelDataDir+"="+abs)
	ids := map[string]bool{}
	cs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: mine})
	if err != nil {
		t.Errorf("purge %s: %v", dataDir, err)
	}
	for _, s := range cs.Items {
		ids[s.Labels[docker.LabelSession]] = true
	}
	vs, err := c.VolumeList(ctx, client.VolumeListOptions{Filters: mine})
	if err != nil {
		t.Errorf("purge %s: %v", dataDir, err)
	}
	for _, v := range vs.Items {
		ids[v.Labels[docker.LabelSession]] = true
	}
	for id := range ids {
		if err := rt.Remove(ctx, id, true); err != nil {
			t.Errorf("purge desktop %s: %v", id, err)
		}
	}
	// Snapshot images carry the labels of the desktop they were committed
	// from; one a failed test left is purged too.
	ims, err := c.ImageList(ctx, client.ImageListOptions{Filters: mine.Clone().Add("reference", docker.SnapshotRepo)})
	if err != nil {
		t.Errorf("purge %s: %v", dataDir, err)
	}
	for _, im := range ims.Items {
		for _, ref := range im.RepoTags {
			if err := rt.RemoveImage(ctx, ref); err != nil {
				t.Errorf("purge %s: %v", dataDir, err)
			}
		}
	}
}

// DumpLogs logs the last lines of every desktop container a docker runtime
// on dataDir made, to explain a failure.
func DumpLogs(t testing.TB, dataDir string) {
	t.Helper()
	c, _ := Engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	abs, _ := filepath.Abs(dataDir)
	cs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", docker.LabelDataDir+"="+abs)})
	if err != nil {
		t.Logf("desktop logs of %s: %v", dataDir, err)
		return
	}
	for _, ctr := range cs.Items {
		rc, err := c.ContainerLogs(ctx, ctr.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "60"})
		if err != nil {
			t.Logf("logs of %s: %v", ctr.Labels[docker.LabelSession], err)
			continue
		}
		var out bytes.Buffer
		stdcopy.StdCopy(&out, &out, rc) // the desktop has no TTY: the streams come framed
		rc.Close()
		t.Logf("container %s (%s):\n%s", ctr.Labels[docker.LabelSession], ctr.State, out.String())
	}
}

// ReadHomeFile returns file name of desktop id's home; fs.ErrNotExist if
// the home or the file is not there.
func ReadHomeFile(t testing.TB, id, name string) ([]byte, error) {
	t.Helper()
	var data []byte
	err := withHome(t, id, func(ctx context.Context, c *client.Client, ctr string) error {
		res, err := c.CopyFromContainer(ctx, ctr, client.CopyFromContainerOptions{SourcePath: path.Join(desktop.HomePath, name)})
		if cerrdefs.IsNotFound(err) {
			return fs.ErrNotExist
		}
		if err != nil {
			return err
		}
		defer res.Content.Close()
		tr := tar.NewReader(res.Content)
		hdr, err := tr.Next()
		if err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return fmt.Errorf("not a regular file (type %c)", hdr.Typeflag)
		}
		data, err = io.ReadAll(tr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read ~/%s of %s: %w", name, id, err)
	}
	return data, nil
}

// WriteHomeFile writes file name (no directory) into desktop id's home,
// owned by the desktop user as a file the desktop wrote would be.
func WriteHomeFile(t testing.TB, id, name string, data []byte) error {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)),
		Uid: docker.DesktopUID, Gid: docker.DesktopGID, ModTime: time.Now()}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	err := withHome(t, id, func(ctx context.Context, c *client.Client, ctr string) error {
		_, err := c.CopyToContainer(ctx, ctr, client.CopyToContainerOptions{DestinationPath: desktop.HomePath, Content: &buf})
		return err
	})
	if err != nil {
		return fmt.Errorf("write ~/%s of %s: %w", name, id, err)
	}
	return nil
}

// HomeMountpoint returns where the engine's host keeps desktop id's home
// volume (for a home with a quota, the home in its own filesystem, which
// the volume binds); fs.ErrNotExist if there is none.
func HomeMountpoint(t testing.TB, id string) (string, error) {
	t.Helper()
	v, err := homeVolume(t, id)
	if err != nil {
		return "", err
	}
	if dev := v.Options["device"]; dev != "" {
		return dev, nil
	}
	return v.Mountpoint, nil
}

// homeVolume inspects desktop id's home volume; fs.ErrNotExist if there is
// none.
func homeVolume(t testing.TB, id string) (volume.Volume, error) {
	c, _ := Engine(t)
	v, err := c.VolumeInspect(t.Context(), docker.VolumeName(id), client.VolumeInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return volume.Volume{}, fmt.Errorf("home of %s: %w", id, fs.ErrNotExist)
	}
	if err != nil {
		return volume.Volume{}, fmt.Errorf("home of %s: %w", id, err)
	}
	return v.Volume, nil
}

// withHome runs fn on a container that mounts desktop id's home: the
// desktop's own, running or not, or, when the desktop was removed and its
// home kept, one made for fn from the desktop image and never started
// (the engine copies in and out of a stopped container's volumes too),
// with the home's filesystem mounted meanwhile if it has one.
func withHome(t testing.TB, id string, fn func(ctx context.Context, c *client.Client, ctr string) error) error {
	c, ref := Engine(t)
	ctx := t.Context()
	_, err := c.ContainerInspect(ctx, docker.ContainerName(id), client.ContainerInspectOptions{})
	if err == nil {
		return fn(ctx, c, docker.ContainerName(id))
	}
	if !cerrdefs.IsNotFound(err) {
		return err
	}
	// Mounting a volume that does not exist would make an empty one.
	v, err := homeVolume(t, id)
	if err != nil {
		return err
	}
	if v.Options["device"] == "" {
		return withTempContainer(ctx, c, ref, id, fn)
	}
	return docker.Home(v.Labels[docker.LabelDataDir], id).WithMounted(ctx, func() error {
		return withTempContainer(ctx, c, ref, id, fn)
	})
}

// withTempContainer runs fn on a container made from image ref that
// mounts desktop id's home volume, never started, and removed after.
func withTempContainer(ctx context.Context, c *client.Client, ref, id string, fn func(ctx context.Context, c *client.Client, ctr string) error) error {
	tmp, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: ref, Labels: map[string]string{"dev.atelier.test": "home of " + id}},
		HostConfig: &container.HostConfig{Mounts: []mount.Mount{
			{Type: mount.TypeVolume, Source: docker.VolumeName(id), Target: desktop.HomePath},
		}},
	})
	if err != nil {
		return err
	}
	defer c.ContainerRemove(context.WithoutCancel(ctx), tmp.ID, client.ContainerRemoveOptions{Force: true})
	return fn(ctx, c, tmp.ID)
}
