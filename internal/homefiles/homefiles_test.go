package homefiles

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const uid, gid = 4242, 4343

// home makes a home under a temporary directory, beside an "outside"
// directory holding a secret the home must never reach.
func home(t testing.TB) (h *Home, root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "home"), filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(outside, "secret"), uid, gid); err != nil { // "owned" like a desktop file: only the path protects it
		t.Fatal(err)
	}
	h, err := Open(root, uid, gid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, root, outside
}

func TestParsePath(t *testing.T) {
	for in, want := range map[string]string{
		"": "", ".": "", "a": "a", "a/b": "a/b", "a//b/": "a/b", "./a/./b": "a/b", "a b/ç.txt": "a b/ç.txt", "...": "...", "..a": "..a",
	} {
		got, err := ParsePath(in)
		if err != nil || got != want {
			t.Errorf("ParsePath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"/etc/shadow", "..", "../x", "a/../../x", "a/..", "a\x00b", "a\nb", "\xff", strings.Repeat("a", 256), strings.Repeat("a/", 2100)} {
		if got, err := ParsePath(in); !errors.Is(err, ErrBadPath) {
			t.Errorf("ParsePath(%q) = %q, %v; want ErrBadPath", in, got, err)
		}
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"", "a/b", "../x", "/etc", "a/./b//c", "a/..", "\x00", "é/ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := ParsePath(p)
		if err != nil {
			if !errors.Is(err, ErrBadPath) {
				t.Fatalf("%q: %v is not ErrBadPath", p, err)
			}
			return
		}
		// A clean path: relative, no "..", ".", or empty segments, and
		// stable under a second parse.
		if strings.HasPrefix(got, "/") || filepath.Clean("/"+got) != "/"+got && got != "" {
			t.Fatalf("%q parsed to unclean %q", p, got)
		}
		for s := range strings.SplitSeq(got, "/") {
			if got != "" && (s == "" || s == "." || s == "..") {
				t.Fatalf("%q parsed to %q with segment %q", p, got, s)
			}
		}
		if again, err := ParsePath(got); err != nil || again != got {
			t.Fatalf("%q → %q → %q, %v", p, got, again, err)
		}
	})
}

func TestPutGetListDelete(t *testing.T) {
	h, root, _ := home(t)
	data := bytes.Repeat([]byte("atelier "), 10000)
	w, err := h.Put("f.txt", bytes.NewReader(data), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if w.Size != int64(len(data)) || w.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("Put = %+v", w)
	}
	fi, err := os.Stat(filepath.Join(root, "f.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != gid {
		t.Fatalf("owner %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
	}
	f, info, err := h.Get("f.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, data) || info.Size != int64(len(data)) {
		t.Fatalf("Get: %d bytes, info %+v", len(got), info)
	}
	// Replace, into a subdirectory.
	os.Mkdir(filepath.Join(root, "d"), 0o700)
	if _, err := h.Put("d/g", strings.NewReader("one"), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Put("d/g", strings.NewReader("two"), 10); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "d/g")); string(b) != "two" {
		t.Fatalf("d/g = %q", b)
	}
	os.Symlink("/etc", filepath.Join(root, "link"))
	list, err := h.List("")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range list {
		names = append(names, i.Name+":"+i.Mode.Type().String())
	}
	if strings.Join(names, ",") != "d:d---------,f.txt:----------,link:L---------" {
		t.Fatalf("list = %v", names)
	}
	if _, err := h.List("f.txt"); !errors.Is(err, ErrNotDir) {
		t.Fatalf("list of a file: %v", err)
	}
	if err := h.Delete("d"); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("delete of a full dir: %v", err)
	}
	for _, p := range []string{"d/g", "d", "f.txt", "link"} {
		if err := h.Delete(p); err != nil {
			t.Fatalf("delete %s: %v", p, err)
		}
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatal("deleting the link reached its target")
	}
	if _, _, err := h.Get("f.txt"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if _, err := h.Put("missing/x", strings.NewReader("x"), 10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("put in a missing dir: %v", err)
	}
}

func TestPutTooLargeLeavesNothing(t *testing.T) {
	h, root, _ := home(t)
	os.WriteFile(filepath.Join(root, "keep"), []byte("old"), 0o644)
	if _, err := h.Put("keep", strings.NewReader("0123456789!"), 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	assertOnly(t, root, "keep")
	if b, _ := os.ReadFile(filepath.Join(root, "keep")); string(b) != "old" {
		t.Fatalf("keep = %q", b)
	}
}

// TestPutFull fills a small filesystem: the error says so and the partial
// file is gone.
func TestPutFull(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("SKIP: cannot mount a small tmpfs to fill (needs root): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	h, err := Open(dir, uid, gid)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, err = h.Put("big", bytes.NewReader(make([]byte, 4<<20)), 8<<20)
	if !errors.Is(err, ErrFull) {
		t.Fatalf("err = %v, want ErrFull", err)
	}
	assertOnly(t, dir)
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	es, _ := os.ReadDir(dir)
	var got []string
	for _, e := range es {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("%s holds %v, want %v", dir, got, names)
	}
}

// TestEscapes: every way out of the home is refused, by the kernel, even
// for paths ParsePath would have refused first.
func TestEscapes(t *testing.T) {
	h, root, outside := home(t)
	os.Symlink("/etc/shadow", filepath.Join(root, "shadow"))
	os.Symlink(outside, filepath.Join(root, "out"))
	os.Symlink("../outside/secret", filepath.Join(root, "rel"))
	os.Mkdir(filepath.Join(root, "d"), 0o700)
	os.Symlink("/", filepath.Join(root, "d", "up"))
	if _, err := h.Put("d/up/x", strings.NewReader("x"), 1); !errors.Is(err, ErrBadPath) {
		t.Errorf("Put through a link to /: %v, want ErrBadPath", err)
	}
	// A hard link to a file the desktop does not own.
	os.WriteFile(filepath.Join(outside, "roots"), []byte("ROOT"), 0o600)
	hard := os.Link(filepath.Join(outside, "roots"), filepath.Join(root, "hard"))
	for _, p := range []string{"shadow", "out/secret", "rel", "d/up/etc/shadow", "../outside/secret", "/etc/shadow", "d/../../outside/secret", "/proc/self/root/etc/shadow"} {
		if f, _, err := h.Get(p); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Errorf("Get(%q) read %q", p, b)
		} else if !errors.Is(err, ErrBadPath) && !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q): %v", p, err)
		}
		if _, err := h.Put(p, strings.NewReader("PWNED"), 10); err == nil && p != "shadow" && p != "rel" {
			t.Errorf("Put(%q) succeeded", p)
		}
		if _, err := h.List(p); err == nil {
			t.Errorf("List(%q) succeeded", p)
		}
		if _, err := h.Put(p+"/x", strings.NewReader("PWNED"), 10); !errors.Is(err, ErrBadPath) && !errors.Is(err, ErrNotFound) {
			t.Errorf("Put(%q/x): %v", p, err)
		}
	}
	if hard == nil {
		if _, _, err := h.Get("hard"); !errors.Is(err, ErrNotFile) {
			t.Errorf("Get of a hard link to root's file: %v", err)
		}
	}
	// A Put at a link replaces the link, never writes through it.
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "SECRET" {
		t.Fatalf("the outside secret became %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(root, "shadow")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("the link was not replaced by a file: %v %v", fi, err)
	}
	for _, name := range []string{"secret", "PWNED"} {
		if _, err := os.Stat(filepath.Join(outside, name)); name == "PWNED" && err == nil {
			t.Fatal("a file was written outside")
		}
	}
}

// TestSwapRace swaps a directory of the home with a link to the outside
// in a loop while files are read and written through it: no request ever
// reads or writes outside.
func TestSwapRace(t *testing.T) {
	h, root, outside := home(t)
	d, tmp := filepath.Join(root, "d"), filepath.Join(root, "d.tmp")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// The real directory, with a file named like the secret.
			os.RemoveAll(tmp) // a link left by a failed swap: never written through
			os.Mkdir(tmp, 0o700)
			os.WriteFile(filepath.Join(tmp, "secret"), []byte("inside"), 0o600)
			os.Chown(filepath.Join(tmp, "secret"), uid, gid)
			os.RemoveAll(d)
			os.Rename(tmp, d)
			// Then the link.
			os.RemoveAll(tmp)
			os.Symlink(outside, tmp)
			os.RemoveAll(d)
			os.Rename(tmp, d)
		}
	})
	inside := 0
	for range 3000 {
		if f, _, err := h.Get("d/secret"); err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			if string(b) != "inside" {
				t.Fatalf("read %q through a swapped link", b)
			}
			inside++
		}
		h.Put("d/new", strings.NewReader("x"), 1)
		h.Delete("d/secret")
	}
	close(stop)
	wg.Wait()
	es, _ := os.ReadDir(outside)
	if len(es) != 1 {
		t.Fatalf("outside holds %d entries, want only the secret", len(es))
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "SECRET" {
		t.Fatalf("secret = %q", b)
	}
	t.Logf("%d reads landed inside", inside)
}
