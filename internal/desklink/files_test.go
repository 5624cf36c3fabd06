package desklink_test

import (
	"crypto/tls"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"atelier/internal/desklink"
	"atelier/internal/homefiles"
)

// TestFiles: the file operations through the link act on the home, beneath
// it, and a refusal arrives as the error the fleet's API classifies.
func TestFiles(t *testing.T) {
	l := serve(t)
	f := desklink.Files{Dial: func() (*tls.Conn, error) { return l.dial(t, l.fleet, desklink.ProtoFiles) }}
	w, err := f.Put("a.txt", strings.NewReader("hello"), 100)
	if err != nil || w.Size != 5 {
		t.Fatalf("put: %+v, %v", w, err)
	}
	if b, err := os.ReadFile(filepath.Join(l.home, "a.txt")); err != nil || string(b) != "hello" {
		t.Errorf("the home's a.txt: %q, %v", b, err)
	}
	r, info, err := f.Get("a.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(b) != "hello" || info.Size != 5 || info.Name != "a.txt" {
		t.Errorf("get: %q %+v, %v", b, info, err)
	}
	if l, err := f.List(""); err != nil || len(l) != 1 || l[0].Name != "a.txt" {
		t.Errorf("list: %+v, %v", l, err)
	}
	os.Symlink("/etc", filepath.Join(l.home, "out"))
	os.Mkdir(filepath.Join(l.home, "d"), 0o755)
	for name, c := range map[string]struct {
		err  error
		want error
	}{
		"through a link":     {third(f.Get("out/passwd")), homefiles.ErrBadPath},
		"put through a link": {second(f.Put("out/x", strings.NewReader("x"), 10)), homefiles.ErrBadPath},
		"missing":            {third(f.Get("nope")), homefiles.ErrNotFound},
		"a directory":        {third(f.Get("d")), homefiles.ErrNotFile},
		"too large":          {second(f.Put("big", strings.NewReader("0123456789"), 5)), homefiles.ErrTooLarge},
		"list a file":        {second(f.List("a.txt")), homefiles.ErrNotDir},
		"delete missing":     {f.Delete("nope"), homefiles.ErrNotFound},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", name, c.err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(l.home, "big")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused put left big: %v", err)
	}
	if err := f.Delete("a.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(l.home, "a.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a.txt after delete: %v", err)
	}
}

func second[A, B any](_ A, b B) B { return b }

func third[A, B, C any](_ A, _ B, c C) C { return c }

// TestFilesUsage: the link reports the home's filesystem as statfs sees it.
func TestFilesUsage(t *testing.T) {
	l := serve(t)
	f := desklink.Files{Dial: func() (*tls.Conn, error) { return l.dial(t, l.fleet, desklink.ProtoFiles) }}
	u, err := f.Usage()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(l.home, &st); err != nil {
		t.Fatal(err)
	}
	if want := int64(st.Blocks) * int64(st.Bsize); u.Size != want || u.Used <= 0 || u.Free <= 0 || u.Used+u.Free > u.Size {
		t.Errorf("usage %+v, want size %d, used and free within it", u, want)
	}
}
