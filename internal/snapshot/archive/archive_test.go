package archive_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"atelier/internal/snapshot/archive"
)

// entry is one tar entry of a hand-made archive.
type entry struct {
	typ  byte
	name string
	link string
	body string
	mode int64
	size int64 // if not 0, the header's size instead of len(body)
}

func reg(name, body string) entry {
	return entry{typ: tar.TypeReg, name: name, body: body, mode: 0o644}
}
func dir(name string) entry { return entry{typ: tar.TypeDir, name: name, mode: 0o755} }
func symlink(name, target string) entry {
	return entry{typ: tar.TypeSymlink, name: name, link: target, mode: 0o777}
}
func hardlink(name, target string) entry { return entry{typ: tar.TypeLink, name: name, link: target} }

// makeTar writes entries as a tar stream, as a hostile writer would: no
// checks beyond what archive/tar itself insists on.
func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		size := int64(len(e.body))
		if e.typ != tar.TypeReg {
			size = 0
		}
		if e.size != 0 {
			size = e.size
		}
		hdr := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: e.mode, Size: size, ModTime: time.Unix(1_700_000_000, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("write header %q: %v", e.name, err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body)) // short bodies on purpose in some cases
		}
	}
	tw.Flush() // not Close: a truncated entry must stay truncated
	return buf.Bytes()
}

// sandbox is a parent directory with a target path and a sibling that
// must stay empty whatever the archive does.
type sandbox struct{ parent, dst, outside string }

func newSandbox(t testing.TB) sandbox {
	parent := t.TempDir()
	s := sandbox{parent: parent, dst: filepath.Join(parent, "home"), outside: filepath.Join(parent, "outside")}
	if err := os.Mkdir(s.outside, 0o755); err != nil {
		t.Fatal(err)
	}
	return s
}

// untouched fails unless the sandbox holds exactly what it held before an
// extraction that was refused: the empty sibling, and no target.
func (s sandbox) untouched(t testing.TB) {
	t.Helper()
	ents, err := os.ReadDir(s.parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "outside" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("after a refused archive the parent holds %q, want only [outside]", names)
	}
	if ents, _ := os.ReadDir(s.outside); len(ents) != 0 {
		t.Errorf("a refused archive wrote %d entries outside the target", len(ents))
	}
}

func TestExtractRefusesEscapes(t *testing.T) {
	ok := reg("ok.txt", "fine")
	cases := []struct {
		name    string
		entries []entry
		entry   string // the entry the error must name
	}{
		{"absolute path", []entry{ok, reg("/etc/evil", "x")}, "/etc/evil"},
		{"dot-dot", []entry{ok, reg("../outside/evil", "x")}, "../outside/evil"},
		{"dot-dot in the middle", []entry{ok, reg("a/../../outside/evil", "x")}, "a/../../outside/evil"},
		{"dot-dot directory", []entry{ok, dir("../outside/d/")}, "../outside/d/"},
		{"file under an absolute symlink", []entry{ok, symlink("l", "/tmp"), reg("l/evil", "x")}, "l/evil"},
		{"file under a relative symlink", []entry{ok, symlink("l", "../outside"), reg("l/evil", "x")}, "l/evil"},
		{"directory under a symlink", []entry{ok, symlink("l", "../outside"), dir("l/sub/")}, "l/sub/"},
		{"deep file under a symlink", []entry{ok, dir("a/"), symlink("a/l", "../../outside"), reg("a/l/b/evil", "x")}, "a/l/b/evil"},
		{"symlink replaced by a directory", []entry{ok, symlink("l", "../outside"), dir("l/")}, "l/"},
		{"hard link to an absolute path", []entry{ok, hardlink("h", "/etc/passwd")}, "h"},
		{"hard link out", []entry{ok, hardlink("h", "../outside/x")}, "h"},
		{"hard link to a later entry", []entry{ok, hardlink("h", "later"), reg("later", "x")}, "h"},
		{"hard link to a symlink", []entry{ok, symlink("l", "/etc/passwd"), hardlink("h", "l")}, "h"},
		{"hard link to a directory", []entry{ok, dir("d/"), hardlink("h", "d")}, "h"},
		{"hard link through a symlink", []entry{ok, symlink("l", "../outside"), hardlink("h", "l/x")}, "h"},
		{"character device", []entry{ok, {typ: tar.TypeChar, name: "null", mode: 0o666}}, "null"},
		{"block device", []entry{ok, {typ: tar.TypeBlock, name: "sda", mode: 0o660}}, "sda"},
		{"fifo", []entry{ok, {typ: tar.TypeFifo, name: "pipe", mode: 0o644}}, "pipe"},
		{"file over a directory", []entry{ok, dir("d/"), reg("d", "x")}, "d"},
		{"symlink over a directory", []entry{ok, dir("d/"), symlink("d", "/etc")}, "d"},
		{"symlink over an implied directory", []entry{ok, reg("d/f", "x"), symlink("d", "/etc")}, "d"},
		{"file twice", []entry{ok, reg("f", "1"), reg("f", "2")}, "f"},
		{"file under a file", []entry{ok, reg("f", "1"), reg("f/g", "2")}, "f/g"},
		{"target as a file", []entry{ok, reg(".", "x")}, "."},
		{"empty name", []entry{ok, reg("", "x")}, ""},
		{"symlink with no target", []entry{ok, symlink("l", "")}, "l"},
		{"truncated body", []entry{ok, {typ: tar.TypeReg, name: "short", body: "abc", mode: 0o644, size: 4096}}, "short"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSandbox(t)
			err := archive.ExtractTar(s.dst, bytes.NewReader(makeTar(t, c.entries...)), archive.ExtractOptions{})
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, archive.ErrUnsafe) {
				t.Errorf("error %v is not ErrUnsafe", err)
			}
			if want := `"` + c.entry + `"`; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name the entry %s", err, want)
			}
			s.untouched(t)
		})
	}
}

func TestExtractLimits(t *testing.T) {
	s := newSandbox(t)
	data := makeTar(t, reg("a", "12345"), reg("b", "67890"))
	err := archive.ExtractTar(s.dst, bytes.NewReader(data), archive.ExtractOptions{MaxBytes: 9})
	if !errors.Is(err, archive.ErrUnsafe) || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("10 bytes with a limit of 9: %v, want a refusal naming b", err)
	}
	s.untouched(t)

	var many []entry
	for i := range 11 {
		many = append(many, reg(strings.Repeat("x", i+1), ""))
	}
	err = archive.ExtractTar(s.dst, bytes.NewReader(makeTar(t, many...)), archive.ExtractOptions{MaxEntries: 10})
	if !errors.Is(err, archive.ErrUnsafe) || !strings.Contains(err.Error(), "more than 10 entries") {
		t.Errorf("11 entries with a limit of 10: %v, want a refusal", err)
	}
	s.untouched(t)

	// At the limits, the same archives pass.
	if err := archive.ExtractTar(s.dst, bytes.NewReader(data), archive.ExtractOptions{MaxBytes: 10}); err != nil {
		t.Errorf("10 bytes with a limit of 10: %v", err)
	}
}

func TestExtractTargetMustBeEmpty(t *testing.T) {
	s := newSandbox(t)
	os.Mkdir(s.dst, 0o700)
	os.WriteFile(filepath.Join(s.dst, "keep"), []byte("mine"), 0o600)
	if err := archive.ExtractTar(s.dst, bytes.NewReader(makeTar(t, reg("f", "x"))), archive.ExtractOptions{}); err == nil {
		t.Fatal("extracted over a non-empty directory")
	}
	if b, _ := os.ReadFile(filepath.Join(s.dst, "keep")); string(b) != "mine" {
		t.Errorf("the existing file was changed: %q", b)
	}
	// An empty existing directory is replaced.
	os.Remove(filepath.Join(s.dst, "keep"))
	if err := archive.ExtractTar(s.dst, bytes.NewReader(makeTar(t, reg("f", "x"))), archive.ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.dst, "f")); string(b) != "x" {
		t.Errorf("f = %q, want x", b)
	}
}

func TestExtractStripsSpecialBits(t *testing.T) {
	s := newSandbox(t)
	data := makeTar(t, entry{typ: tar.TypeDir, name: "d/", mode: 0o3775}, entry{typ: tar.TypeReg, name: "d/suid", body: "x", mode: 0o4755})
	if err := archive.ExtractTar(s.dst, bytes.NewReader(data), archive.ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]fs.FileMode{"d": fs.ModeDir | 0o775, "d/suid": 0o755} {
		fi, err := os.Lstat(filepath.Join(s.dst, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
}

func TestExtractHardLink(t *testing.T) {
	s := newSandbox(t)
	data := makeTar(t, reg("a/f", "shared"), hardlink("b", "a/f"))
	if err := archive.ExtractTar(s.dst, bytes.NewReader(data), archive.ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	fa, _ := os.Stat(filepath.Join(s.dst, "a/f"))
	fb, _ := os.Stat(filepath.Join(s.dst, "b"))
	if fa == nil || fb == nil || !os.SameFile(fa, fb) {
		t.Errorf("b is not a hard link of a/f")
	}
}

// makeTree builds a home with the kinds of things homes hold.
func makeTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, ".config/app"), 0o755))
	must(os.Mkdir(filepath.Join(root, "private"), 0o700))
	must(os.Mkdir(filepath.Join(root, "empty"), 0o750))
	must(os.WriteFile(filepath.Join(root, ".config/app/settings.json"), []byte(`{"a":1}`), 0o644))
	must(os.WriteFile(filepath.Join(root, "private/key"), []byte("secret"), 0o600))
	must(os.WriteFile(filepath.Join(root, "run.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must(os.WriteFile(filepath.Join(root, "empty-file"), nil, 0o644))
	long := strings.Repeat("long-name-", 15) + "ünïcode ✓"
	must(os.WriteFile(filepath.Join(root, long), []byte("long"), 0o644))
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	must(os.WriteFile(filepath.Join(root, "big.bin"), big, 0o644))
	must(os.Symlink(".config/app/settings.json", filepath.Join(root, "rel-link")))
	must(os.Symlink("/home/operator/run.sh", filepath.Join(root, "abs-link")))
	must(os.Symlink("does/not/exist", filepath.Join(root, "dangling")))
	must(os.Symlink("/etc", filepath.Join(root, "etc-link"))) // stored, never followed
	old := time.Unix(1_600_000_000, 0)
	must(os.Chtimes(filepath.Join(root, "run.sh"), old, old))
	must(os.Chtimes(filepath.Join(root, "empty"), old, old))
}

// treeOf describes a tree: per path, its type, permissions, content or
// link target, and (files and directories) modification time.
func treeOf(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:8]) + " " + fi.ModTime().UTC().Format(time.RFC3339)
		case fi.IsDir() && rel != ".":
			desc += " " + fi.ModTime().UTC().Format(time.RFC3339)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src)
	var gz bytes.Buffer
	info, err := archive.Create(t.Context(), &gz, src)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(gz.Bytes())
	if info.SHA256 != hex.EncodeToString(sum[:]) || info.Size != int64(gz.Len()) {
		t.Errorf("info %+v does not describe the %d bytes written (sha256 %x)", info, gz.Len(), sum)
	}
	want := treeOf(t, src)
	if info.Files != len(want)-1 { // the root has no entry
		t.Errorf("info.Files = %d, want %d", info.Files, len(want)-1)
	}
	zr, err := gzip.NewReader(&gz)
	if err != nil {
		t.Fatal(err)
	}
	s := newSandbox(t)
	if err := archive.ExtractTar(s.dst, zr, archive.ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	got := treeOf(t, s.dst)
	for p, w := range want {
		if p == "." {
			continue // a fresh target is private (0700) when the archive has no "." entry
		}
		if got[p] != w {
			t.Errorf("%s: got %q, want %q", p, got[p], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("extracted %d paths, want %d", len(got), len(want))
	}
	if fi, _ := os.Stat(s.dst); fi.Mode().Perm() != 0o700 {
		t.Errorf("target mode %v, want 0700", fi.Mode().Perm())
	}
}

func TestPackKeepsOnlyHomeEntries(t *testing.T) {
	in := makeTar(t, dir("d/"), reg("d/f", "x"), symlink("l", "d/f"), entry{typ: tar.TypeFifo, name: "p", mode: 0o644})
	var gz bytes.Buffer
	info, err := archive.Pack(t.Context(), &gz, bytes.NewReader(append(in, make([]byte, 1024)...)))
	if err != nil {
		t.Fatal(err)
	}
	if info.Files != 3 {
		t.Errorf("packed %d entries, want 3 (the fifo left out)", info.Files)
	}
	zr, _ := gzip.NewReader(&gz)
	s := newSandbox(t)
	if err := archive.ExtractTar(s.dst, zr, archive.ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.dst, "l")); string(b) != "x" {
		t.Errorf("l -> d/f reads %q, want x", b)
	}
}

// failingReader returns its data, then err instead of io.EOF: a verifying
// reader that found a bad checksum at the end.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func TestExtractReadsToTheEnd(t *testing.T) {
	s := newSandbox(t)
	// The tar writer's end marker and padding come after the last entry:
	// the extractor must read past them to see the reader's verdict.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "f", Size: 1, Mode: 0o644})
	tw.Write([]byte("x"))
	tw.Close()
	bad := errors.New("checksum mismatch")
	err := archive.ExtractTar(s.dst, &failingReader{r: &buf, err: bad}, archive.ExtractOptions{})
	if !errors.Is(err, bad) {
		t.Errorf("got %v, want the reader's checksum error", err)
	}
	s.untouched(t)
}

// FuzzExtractTar: whatever the bytes, the extractor never panics and never
// writes outside its target; a refused archive leaves nothing behind.
func FuzzExtractTar(f *testing.F) {
	f.Add(makeTar(f, reg("a", "x"), dir("d/"), symlink("d/l", "../a"), hardlink("h", "a")))
	f.Add(makeTar(f, symlink("l", "../outside"), reg("l/evil", "x")))
	f.Add(makeTar(f, reg("../outside/evil", "x")))
	f.Add(makeTar(f, dir("d/"), symlink("d", "/")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSandbox(t)
		err := archive.ExtractTar(s.dst, bytes.NewReader(data), archive.ExtractOptions{MaxBytes: 1 << 20, MaxEntries: 1000})
		if ents, _ := os.ReadDir(s.outside); len(ents) != 0 {
			t.Fatalf("wrote %d entries outside the target (err %v)", len(ents), err)
		}
		ents, _ := os.ReadDir(s.parent)
		for _, e := range ents {
			if e.Name() != "outside" && (err != nil || e.Name() != "home") {
				t.Fatalf("left %q beside the target (err %v)", e.Name(), err)
			}
		}
		if err != nil {
			return
		}
		// What was accepted holds directories, files and links only.
		filepath.WalkDir(s.dst, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.Type().IsDir() && !d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0 {
				t.Errorf("extracted %s of type %v", p, d.Type())
			}
			return nil
		})
	})
}
