package local

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"atelier/internal/homefs"
	"atelier/internal/runtime"
	"atelier/internal/runtime/runtimetest"
)

// A home made without a quota (by an older version, or with none set)
// keeps working, without one, under a runtime that has a quota.
func TestHomeWithoutQuotaKept(t *testing.T) {
	data := dataDir(t)
	old := newRuntime(t, Options{DataDir: data})
	id := runtime.NewID()
	if err := old.Create(t.Context(), runtime.Spec{ID: id}); err != nil {
		t.Fatal(err)
	}
	if err := old.Start(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitReady(t, old, id)
	runtimetest.RunInTerminal(t, old, id, "echo from-before > ~/old")
	runtimetest.WaitHomeFile(t, old, id, "old", "from-before\n")
	if err := old.Stop(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	old.Close()

	r := newRuntime(t, Options{DataDir: data, HomeQuota: 1 << 30})
	if err := r.Start(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitReady(t, r, id)
	if got := runtimetest.HomeFiles(t, r, id)["old"]; got != "from-before\n" {
		t.Errorf("~/old = %q after the upgrade", got)
	}
	in, err := r.Inspect(t.Context(), id)
	if err != nil || in.Home != nil {
		t.Errorf("a home without a quota reports %+v (%v)", in.Home, err)
	}
	d, _ := r.lookup(id)
	if ok, _ := d.fs().Exists(); ok {
		t.Error("a home without a quota got an image")
	}
}

// A refused create leaves no image, mount point or loop device; Remove
// without purge keeps the image and detaches it.
func TestQuotaHomeLeftovers(t *testing.T) {
	r := newRuntime(t, Options{HomeQuota: homefs.MinSize})
	ctx := t.Context()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "../escape", Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.Close()
	bad := runtime.NewID()
	if err := r.Create(ctx, runtime.Spec{ID: bad, HomeArchive: &buf}); err == nil {
		t.Fatal("a hostile archive accepted")
	}
	dir := filepath.Join(r.root, bad)
	h := homefs.In(dir)
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused create left %s (%v)", dir, err)
	}
	if devs, _ := h.LoopDevices(); len(devs) != 0 {
		t.Errorf("a refused create left loop devices %v", devs)
	}

	id := runtime.NewID()
	if err := r.Create(ctx, runtime.Spec{ID: id}); err != nil {
		t.Fatal(err)
	}
	d, _ := r.lookup(id)
	if in, err := r.Inspect(ctx, id); err != nil || in.Home == nil || in.Home.Quota != homefs.MinSize {
		t.Errorf("a created desktop's home: %+v (%v)", in.Home, err)
	}
	h = d.fs()
	if err := r.Remove(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.Exists(); !ok {
		t.Error("Remove without purge deleted the image")
	}
	if devs, _ := h.LoopDevices(); len(devs) != 0 {
		t.Errorf("a removed desktop's kept home still has loop devices %v", devs)
	}
}
