package local

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// exportTar writes the tree at dir as a tar stream: directories, regular
// files and symbolic links (as links, never followed); sockets, pipes and
// devices are left out. The home belongs to the desktop, which may change it
// meanwhile, so every access goes through an os.Root: nothing outside dir
// can be reached, whatever links appear.
func exportTar(ctx context.Context, dir string, w io.Writer) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tw := tar.NewWriter(w)
	err = fs.WalkDir(root.FS(), ".", func(name string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if name == "." {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode().IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime()})
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := root.Readlink(name)
			if err != nil {
				return err
			}
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: fi.ModTime()})
		case fi.Mode().IsRegular():
			return addFile(tw, root, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// addFile writes the regular file name of root, as it is when opened.
func addFile(tw *tar.Writer, root *os.Root, name string) error {
	f, err := root.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil // replaced by something else meanwhile
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(fi.Mode().Perm()), Size: fi.Size(), ModTime: fi.ModTime()}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if n, err := io.CopyN(tw, f, fi.Size()); err != nil {
		return fmt.Errorf("%s changed while exported (%d of %d bytes): %w", name, n, fi.Size(), err)
	}
	return nil
}
