// Package homefiles reads and writes files in a desktop's home from the
// host side, for the fleet's file API. The home belongs to the desktop,
// which is hostile: it can plant symbolic links and swap them in while a
// request runs. So every path is resolved beneath the home's root with
// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS) on a
// descriptor of that root, never by name: a link anywhere on the path, a
// ".." or an absolute path fails in the kernel, whatever the desktop does
// in between. The last component is then acted on with *at calls that do
// not follow links either (renameat, unlinkat, fstatat NOFOLLOW).
package homefiles

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Limits of a path.
const (
	MaxPath    = 4095 // PATH_MAX less its NUL
	maxSegment = 255  // NAME_MAX
)

// Errors callers branch on.
var (
	// ErrBadPath: malformed, or it escapes the home (an absolute path,
	// "..", a symbolic link on the way).
	ErrBadPath = errors.New("bad path")
	// ErrNotFound: nothing at the path, or its directory is missing.
	ErrNotFound = errors.New("no such file")
	// ErrNotFile: the path names something other than a regular file (a
	// directory for a read, a fifo, a device), or a file the desktop does
	// not own (a hard link to someone else's).
	ErrNotFile = errors.New("not a regular file of the home")
	// ErrNotDir: a listing of something other than a directory.
	ErrNotDir = errors.New("not a directory")
	// ErrTooLarge: an upload past its limit; nothing was written.
	ErrTooLarge = errors.New("file too large")
	// ErrFull: the home's quota is used up; nothing was written.
	ErrFull = errors.New("the home is full")
	// ErrNotEmpty: a delete of a directory that holds something.
	ErrNotEmpty = errors.New("directory not empty")
)

// ParsePath checks a path relative to the home and returns it cleaned, ""
// for the home itself. It refuses what could only be an escape or a
// mistake: an absolute path, a ".." segment, a NUL, invalid UTF-8, control
// characters, a segment over NAME_MAX. Redundant slashes and "." segments
// are dropped. The kernel re-checks everything at resolution.
func ParsePath(p string) (string, error) {
	if len(p) > MaxPath {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrBadPath, MaxPath)
	}
	if !utf8.ValidString(p) {
		return "", fmt.Errorf("%w: %q is not UTF-8", ErrBadPath, p)
	}
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%w: %q is absolute: paths are relative to the home", ErrBadPath, p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: %q holds a control character", ErrBadPath, p)
		}
	}
	var segs []string
	for s := range strings.SplitSeq(p, "/") {
		switch {
		case s == "" || s == ".":
			continue
		case s == "..":
			return "", fmt.Errorf("%w: %q: \"..\" is refused: paths stay in the home", ErrBadPath, p)
		case len(s) > maxSegment:
			return "", fmt.Errorf("%w: a segment of %q is over %d bytes", ErrBadPath, p, maxSegment)
		}
		segs = append(segs, s)
	}
	return strings.Join(segs, "/"), nil
}

// Home is a desktop's home, held open by a descriptor of its root.
type Home struct {
	root     int // O_PATH descriptor of the home's root
	uid, gid int // the desktop's: new files are theirs
}

// Open opens the home whose root is dir on the host; files written are
// owned by uid:gid. The fleet owns dir's parents, so the name is trusted
// up to dir itself (which must not be a link).
func Open(dir string, uid, gid int) (*Home, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open home %s: %w", dir, err)
	}
	return &Home{root: fd, uid: uid, gid: gid}, nil
}

// Close releases the home's descriptor.
func (h *Home) Close() error { return unix.Close(h.root) }

// resolve opens rel beneath the home with flags; "" is the root itself.
func (h *Home) resolve(rel string, flags uint64) (int, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{
		Flags:   flags | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := unix.Openat2(h.root, rel, &how)
	if errors.Is(err, unix.ENOTDIR) && flags&unix.O_DIRECTORY != 0 {
		// O_DIRECTORY meets a link as "not a directory": say it is a link.
		how.Flags = unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW
		if fd2, err2 := unix.Openat2(h.root, rel, &how); err2 != nil {
			err = err2
		} else {
			// O_PATH|O_NOFOLLOW opens a trailing link itself.
			var st unix.Stat_t
			if unix.Fstat(fd2, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
			unix.Close(fd2)
		}
	}
	if err != nil {
		return -1, pathErr(rel, err)
	}
	return fd, nil
}

// pathErr names a resolution failure as the package's errors.
func pathErr(rel string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV):
		// ELOOP: a link on the way (NO_SYMLINKS); EXDEV: out of the home.
		return fmt.Errorf("%w: %q passes through a symbolic link or leaves the home", ErrBadPath, rel)
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %q", ErrNotFound, rel)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%w: a parent of %q is not a directory", ErrNotFound, rel)
	case errors.Is(err, unix.ENAMETOOLONG):
		return fmt.Errorf("%w: %q is too long", ErrBadPath, rel)
	}
	return fmt.Errorf("%q: %w", rel, err)
}

// parent opens the directory holding rel (O_PATH) and returns it with
// rel's last segment. rel must not be the home itself.
func (h *Home) parent(rel string) (int, string, error) {
	if rel == "" {
		return -1, "", fmt.Errorf("%w: the path names the home itself", ErrBadPath)
	}
	dir, base := path.Split(rel)
	fd, err := h.resolve(strings.TrimSuffix(dir, "/"), unix.O_PATH|unix.O_DIRECTORY)
	return fd, base, err
}

// Files are the file operations on one home: a Home on the fleet's host,
// or a desktop's link (package desklink) where the home is elsewhere.
// The caller closes them.
type Files interface {
	Put(rel string, r io.Reader, limit int64) (Written, error)
	Get(rel string) (io.ReadCloser, Info, error)
	List(rel string) ([]Info, error)
	Delete(rel string) error
	Close() error
}

var _ Files = (*Home)(nil)

// Errs are the errors callers branch on, by a stable name: what a remote
// home's refusal carries across.
var Errs = map[string]error{
	"bad_path": ErrBadPath, "not_found": ErrNotFound, "not_a_file": ErrNotFile, "not_a_directory": ErrNotDir,
	"too_large": ErrTooLarge, "home_full": ErrFull, "not_empty": ErrNotEmpty,
}

// Info describes one file or directory.
type Info struct {
	Name     string
	Size     int64
	Mode     os.FileMode
	Modified time.Time
}

func infoOf(name string, st *unix.Stat_t) Info {
	mode := os.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= os.ModeDir
	case unix.S_IFLNK:
		mode |= os.ModeSymlink
	case unix.S_IFREG:
	default:
		mode |= os.ModeIrregular
	}
	return Info{Name: name, Size: st.Size, Mode: mode, Modified: time.Unix(st.Mtim.Unix())}
}

// Written is what Put wrote.
type Written struct {
	Size   int64
	SHA256 string
}

// tmpPrefix names uploads under way; a crash may leave one behind, in
// the desktop's own home, counted in its own quota.
const tmpPrefix = ".atelier-upload-"

// Put writes r (at most limit bytes) to rel, replacing a file there: into
// a new file beside it, renamed over rel once whole, so a reader never
// sees half a file and a failure leaves rel as it was. rel's directory
// must exist. A link at rel is replaced, never followed.
func (h *Home) Put(rel string, r io.Reader, limit int64) (Written, error) {
	dir, base, err := h.parent(rel)
	if err != nil {
		return Written{}, err
	}
	defer unix.Close(dir)
	var tmp string
	var fd int
	for range 10 { // a name the desktop planted is skipped, not opened
		tmp = tmpPrefix + randHex()
		fd, err = unix.Openat(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if !errors.Is(err, unix.EEXIST) {
			break
		}
	}
	if err != nil {
		return Written{}, pathErr(rel, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	w, err := h.fill(f, r, limit)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dir, tmp, dir, base)
		if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			err = fmt.Errorf("%w: %q is a directory", ErrNotFile, rel)
		}
	}
	if err != nil {
		unix.Unlinkat(dir, tmp, 0)
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) {
			return Written{}, fmt.Errorf("%w: writing %q: %w", ErrFull, rel, err)
		}
		return Written{}, fmt.Errorf("write %q: %w", rel, err)
	}
	return w, nil
}

// fill copies r into f, hashing it, and gives f to the desktop.
func (h *Home) fill(f *os.File, r io.Reader, limit int64) (Written, error) {
	if err := f.Chown(h.uid, h.gid); err != nil {
		return Written{}, err
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, sum), io.LimitReader(r, limit+1))
	if err != nil {
		return Written{}, err
	}
	if n > limit {
		return Written{}, fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)
	}
	// The quota may only show at the flush: ENOSPC here, not after.
	if err := f.Sync(); err != nil {
		return Written{}, err
	}
	return Written{Size: n, SHA256: hex.EncodeToString(sum.Sum(nil))}, nil
}

// Get opens the regular file at rel for reading; Info is its size and
// times. It refuses anything but a regular file the desktop owns: a fifo
// would block the fleet, a device is nobody's download, and a hard link to
// a file of another owner (on a home sharing the host's filesystem) is
// not the desktop's to give.
func (h *Home) Get(rel string) (io.ReadCloser, Info, error) {
	if rel == "" {
		return nil, Info{}, fmt.Errorf("%w: the home is a directory", ErrNotFile)
	}
	// O_NONBLOCK: opening a fifo must not wait for a writer.
	fd, err := h.resolve(rel, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return nil, Info{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, Info{}, fmt.Errorf("stat %q: %w", rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != h.uid {
		unix.Close(fd)
		return nil, Info{}, fmt.Errorf("%w: %q", ErrNotFile, rel)
	}
	return os.NewFile(uintptr(fd), rel), infoOf(path.Base(rel), &st), nil
}

// List reports the entries of the directory at rel, sorted by name.
// Links are listed as links, never followed.
func (h *Home) List(rel string) ([]Info, error) {
	fd, err := h.resolve(rel, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat %q: %w", rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("%w: %q", ErrNotDir, rel)
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", rel, err)
	}
	out := make([]Info, 0, len(names))
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // removed meanwhile
		}
		out = append(out, infoOf(n, &st))
	}
	sortInfos(out)
	return out, nil
}

// Delete removes the file, link or empty directory at rel; a link is
// removed, not its target.
func (h *Home) Delete(rel string) error {
	dir, base, err := h.parent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	err = unix.Unlinkat(dir, base, 0)
	if errors.Is(err, unix.EISDIR) {
		err = unix.Unlinkat(dir, base, unix.AT_REMOVEDIR)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST):
		return fmt.Errorf("%w: %q", ErrNotEmpty, rel)
	}
	return pathErr(rel, err)
}

func randHex() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func sortInfos(is []Info) {
	slices.SortFunc(is, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
}
