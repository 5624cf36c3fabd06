package homefs_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"atelier/internal/homefs"
)

// newHome returns a home in a fresh directory, purged when the test ends.
func newHome(t testing.TB) homefs.Home {
	t.Helper()
	if testing.Short() {
		t.Skip("homefs mounts real filesystems: skipped with -short")
	}
	if err := homefs.Check(); err != nil {
		t.Skipf("SKIP: THIS HOST CANNOT MOUNT HOMES, home quotas are untested: %v", err)
	}
	h := homefs.In(t.TempDir())
	t.Cleanup(func() {
		if err := h.Remove(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return h
}

func TestQuotaEnforced(t *testing.T) {
	h := newHome(t)
	ctx := t.Context()
	const size = 64 << 20
	if err := h.Create(ctx, size, 4242, 4243); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(h.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 4242 || st.Gid != 4243 || fi.Mode().Perm() != 0o700 {
		t.Errorf("home %v owned %d:%d, want 0700 owned 4242:4243", fi.Mode(), st.Uid, st.Gid)
	}
	if ents, _ := os.ReadDir(h.Path()); len(ents) != 0 {
		t.Errorf("a new home holds %v", ents)
	}
	// The image is sparse: a 64 MiB home takes a few MiB of disk.
	var st syscall.Stat_t
	if err := syscall.Stat(h.Image, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != size || st.Blocks*512 > 8<<20 {
		t.Errorf("image of %d bytes takes %d on disk, want %d bytes taking a few MiB", st.Size, st.Blocks*512, size)
	}

	// Write twice the quota: the write stops with ENOSPC part-way.
	f, err := os.Create(filepath.Join(h.Path(), "big"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(f, io.LimitReader(zeros{}, 2*size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing %d bytes into a %d byte home: %d written, err %v; want ENOSPC", 2*size, size, n, err)
	}
	if n < size/2 || n >= size {
		t.Errorf("%d bytes written before ENOSPC, want most of the %d", n, size)
	}
	u, err := h.Usage()
	if err != nil || u == nil {
		t.Fatalf("usage: %+v %v", u, err)
	}
	if u.Quota != size || u.Used < n || u.Used > size || u.Free > 1<<20 {
		t.Errorf("usage of a full home: %+v, want quota %d, used at least %d, nothing free", u, size, n)
	}

	// Unmounted: no loop device left, no home path; mounted again: the file.
	if err := h.Unmount(); err != nil {
		t.Fatal(err)
	}
	if devs, err := h.LoopDevices(); err != nil || len(devs) != 0 {
		t.Errorf("after unmount, loop devices %v (%v)", devs, err)
	}
	if _, err := os.Stat(h.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an unmounted home still has its path: %v", err)
	}
	if u, _ := h.Usage(); u != nil {
		t.Error("usage of an unmounted home")
	}
	for range 2 { // the second is a no-op
		if err := h.Mount(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(filepath.Join(h.Path(), "big")); err != nil || fi.Size() != n {
		t.Errorf("after a remount ~/big: %v %v, want %d bytes", fi, err, n)
	}
	if devs, _ := h.LoopDevices(); len(devs) != 1 {
		t.Errorf("a mounted home has loop devices %v, want one", devs)
	}
	if err := h.Create(ctx, size, 0, 0); err == nil {
		t.Error("Create over an existing image accepted")
	}

	if err := h.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{h.Image, h.Mnt} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s outlived Remove: %v", p, err)
		}
	}
	if devs, _ := h.LoopDevices(); len(devs) != 0 {
		t.Errorf("after Remove, loop devices %v", devs)
	}
}

func TestWithMounted(t *testing.T) {
	h := newHome(t)
	ctx := t.Context()
	if err := h.Create(ctx, homefs.MinSize, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Unmount(); err != nil {
		t.Fatal(err)
	}
	err := h.WithMounted(ctx, func() error { return os.WriteFile(filepath.Join(h.Path(), "f"), []byte("x"), 0o600) })
	if err != nil {
		t.Fatal(err)
	}
	if mounted, _ := h.Mounted(); mounted {
		t.Error("WithMounted left a home mounted that was not")
	}
	if err := h.Mount(ctx); err != nil {
		t.Fatal(err)
	}
	err = h.WithMounted(ctx, func() error { return nil })
	if mounted, _ := h.Mounted(); err != nil || !mounted {
		t.Errorf("WithMounted unmounted a home mounted before it (%v)", err)
	}
	if b, err := os.ReadFile(filepath.Join(h.Path(), "f")); err != nil || string(b) != "x" {
		t.Errorf("file written through WithMounted: %q %v", b, err)
	}
}

func TestBadSize(t *testing.T) {
	h := newHome(t)
	for _, size := range []int64{-1, 0, homefs.MinSize - 1, homefs.MaxSize + 1} {
		if err := h.Create(t.Context(), size, 0, 0); err == nil {
			t.Errorf("Create of %d bytes accepted", size)
		}
		if ok, _ := h.Exists(); ok {
			t.Errorf("a refused Create of %d bytes left an image", size)
		}
	}
	if ents, _ := os.ReadDir(filepath.Dir(h.Image)); len(ents) != 0 {
		t.Errorf("refused Creates left %v", ents)
	}
}

func TestOvercommitted(t *testing.T) {
	root := t.TempDir()
	h := homefs.In(filepath.Join(root, "a"))
	t.Cleanup(func() { h.Remove() })
	if err := os.Mkdir(filepath.Join(root, "a"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := homefs.Overcommitted(root); err != nil {
		t.Errorf("no homes, overcommitted: %v", err)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(root, &fs); err != nil {
		t.Fatal(err)
	}
	// A sparse image as large as the free disk and more: promised, not used.
	free := int64(fs.Bavail) * fs.Bsize
	if err := os.WriteFile(h.Image, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(h.Image, free+1<<30); err != nil {
		t.Fatal(err)
	}
	if err := homefs.Overcommitted(root); err == nil || !strings.Contains(err.Error(), "free") {
		t.Errorf("a home promising more than the free disk: %v", err)
	}
}

// BenchmarkCreateMount is the cost a quota adds to a new desktop: make a
// 10 GiB image's filesystem and mount it (and remove it, untimed).
func BenchmarkCreateMount(b *testing.B) {
	h := newHome(b)
	for b.Loop() {
		if err := h.Create(b.Context(), 10<<30, 1000, 1000); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := h.Remove(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkRemount is the cost a quota adds to starting a desktop whose
// home is not mounted (after a host reboot): check and mount.
func BenchmarkRemount(b *testing.B) {
	h := newHome(b)
	if err := h.Create(b.Context(), 10<<30, 1000, 1000); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		if err := h.Unmount(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := h.Mount(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
