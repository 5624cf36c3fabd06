package docker_test

import (
	"archive/tar"
	"atelier/internal/runtime"
	"bytes"
	"io"
	"path/filepath"
	goruntime "runtime"
	"testing"

	"atelier/internal/runtime/docker"
	"atelier/internal/runtime/docker/dockertest"
)

// repoRoot is the module's root, two levels above this package.
func repoRoot() string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// newRuntime returns a docker runtime on a fresh data dir; every desktop it
// made is removed with its home when the test ends.
func newRuntime(t testing.TB) *docker.Runtime {
	return newRuntimeIn(t, t.TempDir())
}

// testQuota is the home quota of the tests' runtimes: with one, as a
// fleet runs by default.
const testQuota = 1 << 30

// newRuntimeIn returns a docker runtime on dataDir (a fleet restarted on
// the same data is a second runtime on the same dir).
func newRuntimeIn(t testing.TB, dataDir string) *docker.Runtime {
	t.Helper()
	return newRuntimeWith(t, docker.Options{DataDir: dataDir, HomeQuota: testQuota})
}

// newRuntimeWith returns a docker runtime with opts, the engine and image
// filled in.
func newRuntimeWith(t testing.TB, opts docker.Options) *docker.Runtime {
	t.Helper()
	c, ref := dockertest.Engine(t)
	opts.Client, opts.Image = c, ref
	dataDir := opts.DataDir
	rt, err := docker.New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dockertest.Purge(t, dataDir); rt.Close() })
	return rt
}

// create makes and starts a desktop with spec (a new id if it has none).
func create(t testing.TB, rt runtime.Runtime, spec runtime.Spec) string {
	t.Helper()
	if spec.ID == "" {
		spec.ID = runtime.NewID()
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
