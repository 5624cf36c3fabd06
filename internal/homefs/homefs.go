// Package homefs gives a desktop's home a disk quota the kernel enforces:
// the home lives in an ext4 filesystem inside a sparse image file, which
// the fleet (root) loop-mounts on the host. A write past the filesystem's
// size fails inside the desktop with ENOSPC, whatever the desktop does, and
// the host's disk is used only as files are written. Both runtimes use it:
// the local runtime binds the mounted home into its sandbox, the docker
// runtime into its container through a bind volume.
//
// The layout, under a desktop's directory dir:
//
//	dir/home.img      the image (root's, 0600): the quota is its size
//	dir/home.fs/      where the image is mounted (root's, 0711)
//	dir/home.fs/home  the home proper, owned by the desktop user
//
// The home is a directory of the filesystem, not its root, so that an
// unmounted image leaves no home path for anything to write into unbounded
// (a container whose volume names it fails to start), lost+found stays out
// of sight, and an archive is extracted beside it on the same filesystem.
package homefs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"atelier/internal/runtime"
)

// Bounds of a home's size.
const (
	// MinSize leaves room for a desktop's dotfiles once the filesystem has
	// its journal and tables (about 15% of a small one).
	MinSize = 64 << 20
	// MaxSize is ext4's limit with 4 KiB blocks, far beyond any sane home.
	MaxSize = 16 << 40
)

// Home is one home filesystem.
type Home struct {
	// Image is the file holding the filesystem.
	Image string
	// Mnt is where Image is mounted.
	Mnt string
}

// In returns the home kept in a desktop's directory dir.
func In(dir string) Home {
	return Home{Image: filepath.Join(dir, "home.img"), Mnt: filepath.Join(dir, "home.fs")}
}

// Path is the home proper: the directory a desktop sees as its home, there
// only while the filesystem is mounted.
func (h Home) Path() string { return filepath.Join(h.Mnt, "home") }

// Check reports what this host lacks to make and mount homes.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("home quotas need root (the fleet mounts each home's filesystem)")
	}
	for _, bin := range []string{"mkfs.ext4", "mount"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("home quotas need %s (install e2fsprogs and mount): %w", bin, err)
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return fmt.Errorf("home quotas need loop devices (modprobe loop): %w", err)
	}
	return nil
}

// Exists reports whether h's image exists: whether the home was made with
// a quota.
func (h Home) Exists() (bool, error) {
	_, err := os.Lstat(h.Image)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Create makes h: an image of size bytes (sparse) holding an empty ext4
// filesystem, mounted, with an empty home owned by uid:gid, mode 0700. An
// existing image is an error; a failed Create leaves no image.
func (h Home) Create(ctx context.Context, size int64, uid, gid int) (err error) {
	if size < MinSize || size > MaxSize {
		return fmt.Errorf("home size %d bytes: want from %d MiB to %d TiB", size, MinSize>>20, MaxSize>>40)
	}
	if ok, err := h.Exists(); err != nil || ok {
		return errors.Join(fmt.Errorf("make home %s: the image exists", h.Image), err)
	}
	// The image is made under a temporary name and renamed once whole: an
	// image at h.Image always holds a filesystem.
	f, err := os.CreateTemp(filepath.Dir(h.Image), "."+filepath.Base(h.Image)+".tmp-*")
	if err != nil {
		return fmt.Errorf("make home: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("make home %s: %w", h.Image, err)
	}
	// -m 0: no blocks reserved for root, the desktop gets the whole size.
	// A fresh sparse file reads as zeros, so nothing needs zeroing now or
	// later (no lazy init writing tables out behind the desktop's back).
	if err := run(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", "-L", "atelier-home",
		"-E", "assume_storage_prezeroed=1,nodiscard", tmp); err != nil {
		return fmt.Errorf("make home %s: %w", h.Image, err)
	}
	if err := os.Rename(tmp, h.Image); err != nil {
		return fmt.Errorf("make home: %w", err)
	}
	defer func() {
		if err != nil {
			h.Remove()
		}
	}()
	if err := h.mount(ctx, false); err != nil { // fresh: nothing to check
		return err
	}
	// The root is the fleet's: only the home in it is the desktop's. Others
	// may pass through, not list: a sandbox resolves the home's path as
	// the desktop user.
	if err := os.Chmod(h.Mnt, 0o711); err != nil {
		return fmt.Errorf("make home: %w", err)
	}
	p := h.Path()
	if err := os.Mkdir(p, 0o700); err != nil {
		return fmt.Errorf("make home: %w", err)
	}
	if err := os.Chown(p, uid, gid); err != nil {
		return fmt.Errorf("make home: %w", err)
	}
	return nil
}

// Mount mounts h's image on h.Mnt (made if missing) unless it is mounted
// there already. The filesystem is mounted nosuid and nodev: a home holds
// files, never privileges.
func (h Home) Mount(ctx context.Context) error { return h.mount(ctx, true) }

func (h Home) mount(ctx context.Context, check bool) error {
	if err := os.Mkdir(h.Mnt, 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("mount home: %w", err)
	}
	mounted, err := h.Mounted()
	if err != nil || mounted {
		return err
	}
	// A filesystem not unmounted cleanly (a host crash) is checked and
	// repaired first; -p fixes what is safe to fix without asking.
	if check {
		if err := run(ctx, "e2fsck", "-p", h.Image); err != nil {
			var ee *exec.ExitError
			// Exit status 1 or 2: errors corrected; above: not mountable.
			if !errors.As(err, &ee) || ee.ExitCode() > 2 {
				return fmt.Errorf("mount home %s: %w", h.Image, err)
			}
		}
	}
	if err := run(ctx, "mount", "-t", "ext4", "-o", "loop,nosuid,nodev,noatime", h.Image, h.Mnt); err != nil {
		return fmt.Errorf("mount home %s: %w", h.Image, err)
	}
	return nil
}

// MountIfMade mounts h if its image exists, and reports whether it does
// (whether the home was made with a quota).
func (h Home) MountIfMade(ctx context.Context) (bool, error) {
	ok, err := h.Exists()
	if err != nil || !ok {
		return false, err
	}
	return true, h.Mount(ctx)
}

// Mounted reports whether a filesystem is mounted on h.Mnt.
func (h Home) Mounted() (bool, error) {
	var mnt, parent unix.Stat_t
	if err := unix.Lstat(h.Mnt, &mnt); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("home %s: %w", h.Mnt, err)
	}
	if err := unix.Lstat(filepath.Dir(h.Mnt), &parent); err != nil {
		return false, fmt.Errorf("home %s: %w", h.Mnt, err)
	}
	return mnt.Dev != parent.Dev, nil
}

// Unmount unmounts h; an unmounted one is left alone. It fails while a
// process still uses the home, and when the image stays attached to a loop
// device after (another mount of it somewhere holds it).
func (h Home) Unmount() error {
	mounted, err := h.Mounted()
	if err != nil {
		return err
	}
	if mounted {
		if err := unix.Unmount(h.Mnt, 0); err != nil {
			return fmt.Errorf("unmount home %s: %w", h.Mnt, err)
		}
	}
	// The loop device (autoclear) is released by the kernel once the
	// filesystem's last user is gone, a moment after the unmount.
	deadline := time.Now().Add(5 * time.Second)
	for {
		devs, err := h.LoopDevices()
		if err != nil || len(devs) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("unmount home %s: %s still attached to its image (mounted elsewhere?)", h.Image, strings.Join(devs, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Remove unmounts h and deletes its image and mount point; a home already
// gone is not an error.
func (h Home) Remove() error {
	if err := h.Unmount(); err != nil {
		return err
	}
	if err := os.Remove(h.Image); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove home: %w", err)
	}
	// Not RemoveAll: the mount point is empty once unmounted, and anything
	// in it would be a sign something wrote past the quota.
	if err := os.Remove(h.Mnt); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove home: %w", err)
	}
	return nil
}

// WithMounted runs fn with h mounted, and unmounts it after if it was not
// mounted before (a kept home of a removed desktop).
func (h Home) WithMounted(ctx context.Context, fn func() error) error {
	mounted, err := h.Mounted()
	if err != nil {
		return err
	}
	if !mounted {
		if err := h.Mount(ctx); err != nil {
			return err
		}
	}
	err = fn()
	if !mounted {
		err = errors.Join(err, h.Unmount())
	}
	return err
}

// Usage reports how full the mounted home is; nil when it is not mounted.
func (h Home) Usage() (*runtime.HomeUsage, error) {
	mounted, err := h.Mounted()
	if err != nil || !mounted {
		return nil, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(h.Mnt, &st); err != nil {
		return nil, fmt.Errorf("home usage: %w", err)
	}
	fi, err := os.Stat(h.Image)
	if err != nil {
		return nil, fmt.Errorf("home usage: %w", err)
	}
	bs := int64(st.Bsize)
	return &runtime.HomeUsage{Used: int64(st.Blocks-st.Bfree) * bs, Free: int64(st.Bavail) * bs, Quota: fi.Size()}, nil
}

// LoopDevices returns the loop devices attached to h's image.
func (h Home) LoopDevices() ([]string, error) {
	img, err := filepath.Abs(h.Image)
	if err == nil {
		// The kernel names the backing file by its resolved path.
		if r, rerr := filepath.EvalSymlinks(filepath.Dir(img)); rerr == nil {
			img = filepath.Join(r, filepath.Base(img))
		}
	}
	files, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return nil, err
	}
	var devs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // detached meanwhile
		}
		// A deleted image (a purge racing a mount) still backs its device.
		if strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)") == img {
			devs = append(devs, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(f))))
		}
	}
	return devs, nil
}

// Overcommitted reports, as an error saying so, when the images of the
// homes in the directories under root may still grow (to their size, from
// what they hold) into more than the disk holding root has free: a home
// may then meet a full host disk before its quota.
func Overcommitted(root string) error {
	imgs, err := filepath.Glob(filepath.Join(root, "*", filepath.Base(In("").Image)))
	if err != nil {
		return err
	}
	var promised int64
	for _, img := range imgs {
		var st unix.Stat_t
		if err := unix.Stat(img, &st); err != nil {
			continue // removed meanwhile
		}
		promised += max(0, st.Size-st.Blocks*512)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(root, &fs); err != nil {
		return fmt.Errorf("free space of %s: %w", root, err)
	}
	if free := int64(fs.Bavail) * int64(fs.Bsize); promised > free {
		return fmt.Errorf("the %d home quotas under %s may still grow by %d MiB, and the disk has %d MiB free: a home may fill the disk before its quota", len(imgs), root, promised>>20, free>>20)
	}
	return nil
}

// run runs a command, its output becoming the error's detail.
func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(out.String()))
	}
	return nil
}
