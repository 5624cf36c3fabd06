package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// runCp is `atelier cp SRC DST`: one side is SESSION:PATH (a path in the
// session's home), the other a local file, or - for stdin or stdout.
func runCp(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "cp", "LOCAL SESSION:PATH | SESSION:PATH LOCAL   (PATH relative to the home; LOCAL - is stdin or stdout)")
	pos, c, asJSON, err := clientCommand(env, fs, args, 2)
	if err != nil {
		return err
	}
	srcID, srcPath, srcRemote := remotePath(pos[0])
	dstID, dstPath, dstRemote := remotePath(pos[1])
	switch {
	case srcRemote == dstRemote:
		fs.Usage()
		return fmt.Errorf("%w: cp copies between this machine and a session: exactly one side is SESSION:PATH", ErrUsage)
	case dstRemote:
		in, size, name, err := openLocal(env, pos[0])
		if err != nil {
			return err
		}
		defer in.Close()
		if dstPath == "" || strings.HasSuffix(dstPath, "/") {
			dstPath += name // into a directory of the home, as cp does
		}
		w, err := c.PutFile(ctx, dstID, dstPath, in, size)
		if err != nil {
			return explain(err)
		}
		if *asJSON {
			return printJSON(env.Stdout, w)
		}
		_, err = fmt.Fprintf(env.Stderr, "%s:%s: %d bytes, sha256 %s\n", dstID, w.Path, w.Size, w.SHA256)
		return err
	}
	resp, err := c.GetFile(ctx, srcID, srcPath)
	if err != nil {
		return explain(err)
	}
	defer resp.Body.Close()
	if pos[1] == "-" {
		_, err := io.Copy(env.Stdout, resp.Body)
		return err
	}
	dst := pos[1]
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
		dst = filepath.Join(dst, path.Base(srcPath))
	}
	return writeLocal(dst, resp.Body, resp.ContentLength)
}

// remotePath splits SESSION:PATH; a local path has no colon before its
// first slash (./a:b is local).
func remotePath(arg string) (id, p string, ok bool) {
	id, p, ok = strings.Cut(arg, ":")
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", "", false
	}
	return id, p, true
}

// openLocal opens a file to upload (- is stdin) with its size (-1 if not
// known) and base name.
func openLocal(env *Env, name string) (io.ReadCloser, int64, string, error) {
	if name == "-" {
		return io.NopCloser(env.Stdin), -1, "stdin", nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, "", err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, "", fmt.Errorf("cp: %s is not a regular file", name)
	}
	return f, fi.Size(), filepath.Base(name), nil
}

// writeLocal writes a download to dst whole or not at all: into a
// temporary file beside it, renamed once every announced byte arrived.
func writeLocal(dst string, r io.Reader, want int64) error {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part-*")
	if err != nil {
		return fmt.Errorf("cp: %w", err)
	}
	defer os.Remove(f.Name()) // a no-op after the rename
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && want >= 0 && n != want {
		err = fmt.Errorf("the download ended after %d of %d bytes", n, want)
	}
	if err != nil {
		return fmt.Errorf("cp to %s: %w", dst, err)
	}
	return os.Rename(f.Name(), dst)
}
