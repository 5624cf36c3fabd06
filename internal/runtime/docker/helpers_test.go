package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"atelier/internal/runtime/docker"
	"atelier/internal/sessions"
)

// image is the desktop image the tests build (or find current) once per
// test run with scripts/build-image.sh.
var image struct {
	once sync.Once
	ref  string
	err  error
}

// repoRoot is the module's root, two levels above this package.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// engine returns a client of the local Docker Engine and the desktop image,
// building it if it is not current. Without an engine the test is skipped,
// loudly: the runtime cannot be tried at all.
func engine(t testing.TB) (*client.Client, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("docker runtime tests need the Docker Engine and minutes: skipped with -short")
	}
	if _, err := os.Stat("/var/run/docker.sock"); err != nil && os.Getenv("DOCKER_HOST") == "" {
		t.Skip("SKIPPED: NO DOCKER ENGINE (no /var/run/docker.sock, no DOCKER_HOST): the docker runtime is untested")
	}
	c, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Ping(t.Context(), client.PingOptions{}); err != nil {
		t.Fatalf("a Docker socket exists but the engine does not answer: %v", err)
	}
	image.once.Do(func() {
		cmd := exec.Command(filepath.Join(repoRoot(), "scripts", "build-image.sh"), "dev")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			image.err = err
			image.ref = stderr.String()
			return
		}
		image.ref = strings.TrimSpace(stdout.String())
		t.Logf("desktop image %s ready in %v", image.ref, time.Since(start).Round(time.Millisecond))
	})
	if image.err != nil {
		t.Fatalf("build the desktop image: %v\n%s", image.err, image.ref)
	}
	return c, image.ref
}

// newRuntime returns a docker runtime on a fresh data dir; every desktop it
// made is removed with its home when the test ends.
func newRuntime(t testing.TB) *docker.Runtime {
	return newRuntimeIn(t, t.TempDir())
}

// newRuntimeIn returns a docker runtime on dataDir (a fleet restarted on
// the same data is a second runtime on the same dir).
func newRuntimeIn(t testing.TB, dataDir string) *docker.Runtime {
	t.Helper()
	c, ref := engine(t)
	rt, err := docker.New(t.Context(), docker.Options{Client: c, Image: ref, DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanup(t, rt) })
	return rt
}

// cleanup removes every desktop rt lists, with its home.
func cleanup(t testing.TB, rt *docker.Runtime) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	list, err := rt.List(ctx)
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, in := range list {
		if err := rt.Remove(ctx, in.ID, true); err != nil {
			t.Errorf("cleanup %s: %v", in.ID, err)
		}
	}
	rt.Close()
}

// create makes and starts a desktop with spec (a new id if it has none).
func create(t testing.TB, rt sessions.Runtime, spec sessions.Spec) string {
	t.Helper()
	if spec.ID == "" {
		spec.ID = sessions.NewID()
	}
	if err := rt.Create(t.Context(), spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := rt.Start(t.Context(), spec.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return spec.ID
}

// tarOf returns a tar stream of regular files, given as name, content
// pairs, written as they are (a hostile writer's names included).
func tarOf(t testing.TB, pairs ...string) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: pairs[i], Mode: 0o644, Size: int64(len(pairs[i+1]))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(pairs[i+1]))
	}
	tw.Close()
	return &buf
}
