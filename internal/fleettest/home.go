package fleettest

import (
	"path/filepath"
	"testing"
	"time"

	"atelier/internal/homefs"
	"atelier/internal/runtime/docker"
)

// Home is a desktop's home as a test reaches it from outside the desktop:
// a directory of the data dir on the local runtime (in the home's own
// filesystem when it has a quota, homefs; else <data>/desktops/<id>/home),
// a volume through the Engine API on docker. It outlives the desktop until
// the home is purged.
type Home struct{ runtime, dataDir, id string }

// Home returns the home of desktop id.
func (f *Fleet) Home(id string) Home { return Home{f.Runtime.Name(), f.DataDir, id} }

// Home returns the home of desktop id.
func (p *Process) Home(id string) Home { return Home{p.runtime, p.DataDir, id} }

// FS is the home's filesystem, if it has one (a quota): its image and
// mount point, the same on both runtimes.
func (h Home) FS() homefs.Home { return docker.Home(h.dataDir, h.id) }

// dir is where the local runtime keeps the home.
func (h Home) dir() string {
	if ok, _ := h.FS().Exists(); ok {
		return h.FS().Path()
	}
	return filepath.Join(h.dataDir, "desktops", h.id, "home")
}

// inDir runs fn on the local runtime's home directory, its filesystem
// mounted meanwhile if it has one (a kept home of a removed desktop is
// not).
func (h Home) inDir(t testing.TB, fn func(dir string) error) error {
	ok, err := h.FS().Exists()
	if err != nil {
		return err
	}
	if !ok {
		return fn(h.dir())
	}
	return h.FS().WithMounted(t.Context(), func() error { return fn(h.FS().Path()) })
}

// ReadFile returns the content of file name of the home; an error wrapping
// fs.ErrNotExist if there is no such file.
func (h Home) ReadFile(t testing.TB, name string) (string, error) {
	t.Helper()
	b, err := kitOf(t, h.runtime).home.read(t, h, name)
	return string(b), err
}

// WaitFile waits until file name of the home holds want. Polling is
// bounded: what writes it (a shell in the desktop) announces nothing.
func (h Home) WaitFile(t testing.TB, name, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := h.ReadFile(t, name)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("~/%s of %s = %q (%v) after 20s, want %q", name, h.id, got, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WriteFile writes file name (no directory) into the home, owned by the
// desktop user as a file the desktop wrote would be.
func (h Home) WriteFile(t testing.TB, name, content string) {
	t.Helper()
	if err := kitOf(t, h.runtime).home.write(t, h, name, []byte(content)); err != nil {
		t.Fatal(err)
	}
}

// HostPath is where the host keeps the home: the path a desktop must not
// be able to read another's home by.
func (h Home) HostPath(t testing.TB) string {
	t.Helper()
	p, err := kitOf(t, h.runtime).home.hostPath(t, h)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Exists reports whether the home exists (it does until purged).
func (h Home) Exists(t testing.TB) bool {
	t.Helper()
	ok, err := kitOf(t, h.runtime).home.exists(t, h)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
