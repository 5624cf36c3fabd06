// Package archive reads and writes the home archives of snapshots: tar
// streams of directories, regular files and symbolic links, gzipped and
// checksummed while written, and extracted so that no entry of a hostile
// archive can reach outside its target or leave half a tree behind.
package archive

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Info describes a written archive.
type Info struct {
	SHA256 string // hex digest of the gzipped bytes written
	Size   int64  // gzipped bytes written
	Files  int    // entries: directories, regular files and links
}

// Create writes the tree at srcDir to w as a gzipped tar: directories,
// regular files and symbolic links (stored as links, never followed);
// sockets, pipes and devices are left out. Every access goes through an
// os.Root, so nothing outside srcDir is read whatever links the tree holds
// or grows meanwhile.
func Create(ctx context.Context, w io.Writer, srcDir string) (Info, error) {
	pw := newPacker(w)
	n, err := WriteTar(ctx, pw.tw, srcDir, nil)
	if err != nil {
		return Info{}, fmt.Errorf("archive %s: %w", srcDir, err)
	}
	return pw.close(n)
}

// Pack reads a plain tar stream (such as a runtime's ExportHome) and writes
// it to w gzipped, keeping only directories, regular files and symbolic
// links, with their names, permission bits, link targets and times.
func Pack(ctx context.Context, w io.Writer, r io.Reader) (Info, error) {
	pw := newPacker(w)
	tr := tar.NewReader(r)
	files := 0
	for {
		if err := ctx.Err(); err != nil {
			return Info{}, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Info{}, fmt.Errorf("read tar: %w", err)
		}
		out := &tar.Header{Name: hdr.Name, Mode: hdr.Mode & 0o7777, ModTime: hdr.ModTime, Format: tar.FormatPAX}
		switch hdr.Typeflag {
		case tar.TypeDir:
			out.Typeflag = tar.TypeDir
		case tar.TypeSymlink:
			out.Typeflag, out.Linkname = tar.TypeSymlink, hdr.Linkname
		case tar.TypeReg:
			out.Typeflag, out.Size = tar.TypeReg, hdr.Size
		default:
			continue // sockets, pipes, devices, hard links: not part of a home
		}
		if err := pw.tw.WriteHeader(out); err != nil {
			return Info{}, err
		}
		files++
		if out.Typeflag == tar.TypeReg {
			if _, err := io.Copy(pw.tw, tr); err != nil {
				return Info{}, fmt.Errorf("copy %s: %w", hdr.Name, err)
			}
		}
	}
	return pw.close(files)
}

// Owner, when given, is written as the owner of every entry.
type Owner struct{ UID, GID int }

// WriteTar writes the tree at dir to tw (which it does not close), as
// Create describes, with owner as every entry's owner if not nil. It
// returns the number of entries written.
func WriteTar(ctx context.Context, tw *tar.Writer, dir string, owner *Owner) (int, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, err
	}
	defer root.Close()
	n := 0
	own := func(h *tar.Header) *tar.Header {
		h.Format = tar.FormatPAX // names and sizes of any length
		if owner != nil {
			h.Uid, h.Gid = owner.UID, owner.GID
		}
		n++
		return h
	}
	err = fs.WalkDir(root.FS(), ".", func(name string, e fs.DirEntry, err error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err != nil {
			return vanished(name, err)
		}
		if name == "." {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return vanished(name, err)
		}
		switch {
		case fi.Mode().IsDir():
			return tw.WriteHeader(own(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime()}))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := root.Readlink(name)
			if err != nil {
				return vanished(name, err)
			}
			return tw.WriteHeader(own(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: fi.ModTime()}))
		case fi.Mode().IsRegular():
			return writeFile(tw, root, name, own)
		}
		return nil
	})
	return n, err
}

// vanished drops err when it says the entry name was removed after the walk
// listed it: a live tree (a running desktop's home) loses files at any time,
// and such a file is simply not in the archive. Any other error stands.
func vanished(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) && name != "." {
		return nil
	}
	return err
}

// writeFile writes the regular file name of root as it is when opened; one
// removed before it is opened is skipped.
func writeFile(tw *tar.Writer, root *os.Root, name string, own func(*tar.Header) *tar.Header) error {
	f, err := root.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return vanished(name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil // replaced by something else since the walk saw it
	}
	if err := tw.WriteHeader(own(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(fi.Mode().Perm()), Size: fi.Size(), ModTime: fi.ModTime()})); err != nil {
		return err
	}
	if n, err := io.CopyN(tw, f, fi.Size()); err != nil {
		return fmt.Errorf("%s changed while archived (%d of %d bytes): %w", name, n, fi.Size(), err)
	}
	return nil
}

// packer is a tar writer over gzip over a hash and a byte count of what
// reaches the destination.
type packer struct {
	tw  *tar.Writer
	gz  *gzip.Writer
	sum hash.Hash
	cw  countWriter
}

func newPacker(w io.Writer) *packer {
	p := &packer{sum: sha256.New()}
	p.cw.w = io.MultiWriter(w, p.sum)
	// BestSpeed: a home is mostly already-compressed data (caches, images,
	// browser profiles); a higher level costs seconds and saves little.
	p.gz, _ = gzip.NewWriterLevel(&p.cw, gzip.BestSpeed) // the level is valid
	p.tw = tar.NewWriter(p.gz)
	return p
}

// close finishes the tar and gzip streams and reports what was written.
func (p *packer) close(files int) (Info, error) {
	if err := p.tw.Close(); err != nil {
		return Info{}, err
	}
	if err := p.gz.Close(); err != nil {
		return Info{}, err
	}
	return Info{SHA256: hex.EncodeToString(p.sum.Sum(nil)), Size: p.cw.n, Files: files}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}
