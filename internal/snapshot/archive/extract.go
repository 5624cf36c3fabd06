package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ErrUnsafe is wrapped by every refusal of an archive's content (as opposed
// to a failure to read or write): the archive is hostile or broken.
var ErrUnsafe = errors.New("unsafe archive")

// EntryError names the entry an archive was refused for.
type EntryError struct {
	Name   string // the entry's name as the archive spells it
	Reason string
}

func (e *EntryError) Error() string { return fmt.Sprintf("entry %q: %s", e.Name, e.Reason) }

// Unwrap makes every EntryError an ErrUnsafe.
func (e *EntryError) Unwrap() error { return ErrUnsafe }

// Defaults of ExtractOptions.
const (
	DefaultMaxBytes   = 16 << 30 // 16 GiB of file content
	DefaultMaxEntries = 1 << 20
)

// ExtractOptions bound an extraction. Zero values take the defaults.
type ExtractOptions struct {
	// MaxBytes bounds the total size of the regular files.
	MaxBytes int64
	// MaxEntries bounds the number of entries.
	MaxEntries int
	// Owner, if set, owns every entry extracted (and the target itself);
	// it needs the privilege to chown.
	Owner *Owner
}

// ExtractTar extracts the plain tar stream r into a new directory dst, which
// must not exist or be an empty directory. The archive is accepted whole or
// refused whole: it is extracted into a temporary directory beside dst and
// renamed into place only once every entry passed and r was read to its end
// (so a reader that verifies a checksum at its end can still refuse it).
//
// Refused, with an EntryError naming the entry: absolute names, ".."
// components, entries under a symbolic link or a file placed earlier,
// hard links to paths not seen earlier as regular files, devices, pipes,
// sockets and every other type but directories, regular files, symbolic
// links and hard links, a second entry for a path (two entries for one
// directory excepted), and archives beyond opts' size or entry limits.
// Setuid, setgid and sticky bits are stripped rather than refused: a home
// has no use for them and real archives carry them by accident. Symbolic
// links are stored as they are: they are never followed while extracting,
// and inside a desktop they resolve in the desktop's own filesystem.
func ExtractTar(dst string, r io.Reader, opts ExtractOptions) error {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	dst = filepath.Clean(dst)
	if ents, err := os.ReadDir(dst); err == nil && len(ents) > 0 {
		return fmt.Errorf("extract into %s: not empty", dst)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("extract into %s: %w", dst, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".extract-")
	if err != nil {
		return fmt.Errorf("extract into %s: %w", dst, err)
	}
	if err := extract(tmp, r, opts); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("extract into %s: %w", dst, err)
	}
	// An empty target is removed first (rmdir fails if it is not empty any
	// more): rename(2) over an empty directory fails on some filesystems
	// (overlayfs). The rename fails on anything that appeared meanwhile.
	if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		os.RemoveAll(tmp)
		return fmt.Errorf("extract into %s: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("extract into %s: %w", dst, err)
	}
	return nil
}

// kind is what an extracted path is.
type kind uint8

const (
	kindDir kind = iota + 1
	kindFile
	kindSymlink
)

// extractor holds the state of one extraction into a fresh directory.
type extractor struct {
	root    *os.Root
	opts    ExtractOptions
	seen    map[string]kind
	dirs    map[string]*tar.Header // directories whose mode and times are set last
	bytes   int64
	entries int
}

func extract(dir string, r io.Reader, opts ExtractOptions) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	x := &extractor{root: root, opts: opts, seen: map[string]kind{".": kindDir}, dirs: map[string]*tar.Header{}}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: read tar: %v", ErrUnsafe, err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return err
		}
	}
	// The end of the tar is not the end of the stream: reading on lets a
	// verifying reader see every byte it guards.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	return x.finishDirs()
}

func (x *extractor) refuse(hdr *tar.Header, format string, args ...any) error {
	return &EntryError{Name: hdr.Name, Reason: fmt.Sprintf(format, args...)}
}

// cleanName checks an entry name and returns it relative to the target.
func cleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("empty name")
	case strings.ContainsRune(name, 0):
		return "", errors.New("NUL in name")
	case strings.HasPrefix(name, "/"):
		return "", errors.New("absolute path")
	}
	if slices.Contains(strings.Split(name, "/"), "..") {
		return "", errors.New(`".." component`)
	}
	return path.Clean(name), nil
}

func (x *extractor) entry(hdr *tar.Header, body io.Reader) error {
	x.entries++
	if x.entries > x.opts.MaxEntries {
		return x.refuse(hdr, "more than %d entries", x.opts.MaxEntries)
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return x.refuse(hdr, "%v", err)
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return x.refuse(hdr, "the target itself must be a directory")
		}
		x.dirs["."] = hdr
		return nil
	}
	if err := x.checkParents(hdr, name); err != nil {
		return err
	}
	if k, ok := x.seen[name]; ok && !(k == kindDir && hdr.Typeflag == tar.TypeDir) {
		return x.refuse(hdr, "a second entry for the same path")
	}
	mode := os.FileMode(hdr.Mode) & os.ModePerm // setuid, setgid, sticky: stripped
	switch hdr.Typeflag {
	case tar.TypeDir:
		if _, ok := x.seen[name]; !ok {
			if err := x.root.Mkdir(name, 0o700); err != nil {
				return err
			}
			x.seen[name] = kindDir
		}
		x.dirs[name] = hdr
		return nil
	case tar.TypeReg:
		if hdr.Size < 0 || hdr.Size > x.opts.MaxBytes-x.bytes {
			return x.refuse(hdr, "archive content beyond the limit of %d bytes", x.opts.MaxBytes)
		}
		x.bytes += hdr.Size
		if err := x.writeFile(name, mode, hdr.Size, body); err != nil {
			return err
		}
		x.seen[name] = kindFile
		return x.finish(name, hdr.ModTime)
	case tar.TypeSymlink:
		if hdr.Linkname == "" || strings.ContainsRune(hdr.Linkname, 0) {
			return x.refuse(hdr, "symbolic link with an empty or NUL target")
		}
		if err := x.root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
		x.seen[name] = kindSymlink
		return x.own(name)
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return x.refuse(hdr, "hard link target %q: %v", hdr.Linkname, err)
		}
		if x.seen[target] != kindFile {
			return x.refuse(hdr, "hard link to %q, which is not a regular file earlier in the archive", hdr.Linkname)
		}
		if err := x.root.Link(target, name); err != nil {
			return err
		}
		x.seen[name] = kindFile
		return nil
	default:
		return x.refuse(hdr, "type %q is not a directory, regular file or link", hdr.Typeflag)
	}
}

// checkParents makes the missing parents of name and refuses a name under
// anything but a directory.
func (x *extractor) checkParents(hdr *tar.Header, name string) error {
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		switch x.seen[p] {
		case kindDir:
		case 0:
			if err := x.root.Mkdir(p, 0o700); err != nil {
				return err
			}
			x.seen[p] = kindDir
		default:
			return x.refuse(hdr, "lies under %q, which is not a directory", p)
		}
	}
	return nil
}

func (x *extractor) writeFile(name string, mode os.FileMode, size int64, body io.Reader) error {
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, body, size); err != nil {
		f.Close()
		return fmt.Errorf("%w: entry %q: %v", ErrUnsafe, name, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// finish sets the owner and modification time of an extracted file.
func (x *extractor) finish(name string, mtime time.Time) error {
	if err := x.own(name); err != nil {
		return err
	}
	return x.root.Chtimes(name, mtime, mtime)
}

func (x *extractor) own(name string) error {
	if x.opts.Owner == nil {
		return nil
	}
	return x.root.Lchown(name, x.opts.Owner.UID, x.opts.Owner.GID)
}

// finishDirs sets the modes and times of directories once nothing more is
// written into them (a read-only directory would refuse its own content),
// deepest first, so setting a child's time does not change its parent's.
func (x *extractor) finishDirs() error {
	names := make([]string, 0, len(x.seen))
	for name, k := range x.seen {
		if k == kindDir {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	// "." has no "/" and sorts with the top level: move it last.
	names = slices.DeleteFunc(names, func(n string) bool { return n == "." })
	names = append(names, ".")
	for _, name := range names {
		mode, mtime := os.FileMode(0o755), time.Time{}
		if hdr, ok := x.dirs[name]; ok {
			mode, mtime = os.FileMode(hdr.Mode)&os.ModePerm, hdr.ModTime
		}
		if name == "." && x.dirs["."] == nil {
			mode = 0o700 // a home is private unless the archive says otherwise
		}
		if err := x.own(name); err != nil {
			return err
		}
		if err := x.root.Chmod(name, mode); err != nil {
			return err
		}
		if !mtime.IsZero() {
			if err := x.root.Chtimes(name, mtime, mtime); err != nil {
				return err
			}
		}
	}
	return nil
}
