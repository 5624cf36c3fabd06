package snapshot_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"atelier/internal/snapshot"
	"atelier/internal/snapshot/archive"
	"atelier/internal/store"
)

// homes is a runtime of homes only: each desktop id is a directory, and
// ExportHome writes it as every runtime does, a plain tar stream.
type homes struct{ root string }

func (h homes) Name() string { return "homes" }

func (h homes) ExportHome(ctx context.Context, id string, w io.Writer) error {
	dir := filepath.Join(h.root, id)
	if _, err := os.Stat(dir); err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if _, err := archive.WriteTar(ctx, tw, dir, nil); err != nil {
		return err
	}
	return tw.Close()
}

func newStore(t *testing.T) (*snapshot.Store, homes, string) {
	t.Helper()
	data := t.TempDir()
	db, err := store.Open(t.Context(), filepath.Join(data, "atelier.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir := filepath.Join(data, "snapshots")
	s, err := snapshot.New(snapshot.Options{DB: db, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	h := homes{root: filepath.Join(data, "homes")}
	home := filepath.Join(h.root, "sess_a")
	if err := os.MkdirAll(filepath.Join(home, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(home, "docs/note.txt"), []byte("remember"), 0o640)
	os.Symlink("docs/note.txt", filepath.Join(home, "note"))
	return s, h, dir
}

// restore extracts snapshot id into a new directory and returns its path.
func restore(t *testing.T, s *snapshot.Store, id string) (string, error) {
	t.Helper()
	rc, _, err := s.OpenSnapshot(t.Context(), id)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	dst := filepath.Join(t.TempDir(), "home")
	return dst, archive.ExtractTar(dst, rc, archive.ExtractOptions{})
}

func TestTakeAndRestore(t *testing.T) {
	s, h, dir := newStore(t)
	sn, err := s.Take(t.Context(), h, "sess_a")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, sn.ID+".tar.gz"))
	if err != nil || fi.Size() != sn.Size {
		t.Fatalf("archive of %s: %v (size %v, recorded %d)", sn.ID, err, fi, sn.Size)
	}
	if sn.SessionID != "sess_a" || sn.Runtime != "homes" || sn.Files != 3 || len(sn.SHA256) != 64 || sn.Image != "" {
		t.Errorf("snapshot %+v", sn)
	}
	got, err := s.Get(t.Context(), sn.ID)
	if err != nil || got.SHA256 != sn.SHA256 {
		t.Errorf("Get: %+v, %v", got, err)
	}
	list, err := s.List(t.Context())
	if err != nil || len(list) != 1 || list[0].ID != sn.ID {
		t.Errorf("List: %+v, %v", list, err)
	}
	dst, err := restore(t, s, sn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "note")); string(b) != "remember" {
		t.Errorf("restored note = %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(dst, "docs/note.txt")); fi == nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("restored docs/note.txt: %v", fi)
	}
}

func TestRestoreVerifiesChecksum(t *testing.T) {
	s, h, dir := newStore(t)
	a, err := s.Take(t.Context(), h, "sess_a")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(h.root, "sess_a", "docs/note.txt"), []byte("forged"), 0o640)
	b, err := s.Take(t.Context(), h, "sess_a")
	if err != nil {
		t.Fatal(err)
	}
	// a's archive replaced by b's: a valid gzip and tar, the wrong bytes.
	if err := os.Rename(filepath.Join(dir, b.ID+".tar.gz"), filepath.Join(dir, a.ID+".tar.gz")); err != nil {
		t.Fatal(err)
	}
	dst, err := restore(t, s, a.ID)
	if !errors.Is(err, snapshot.ErrCorrupt) {
		t.Fatalf("restore of a swapped archive: %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a corrupt archive left %s behind", dst)
	}
}

func TestDeleteRefusedWhileOpen(t *testing.T) {
	s, h, dir := newStore(t)
	sn, err := s.Take(t.Context(), h, "sess_a")
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.OpenSnapshot(t.Context(), sn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(t.Context(), sn.ID); !errors.Is(err, snapshot.ErrInUse) {
		t.Errorf("Delete while open: %v, want ErrInUse", err)
	}
	if _, err := s.Get(t.Context(), sn.ID); err != nil {
		t.Errorf("a refused Delete removed the snapshot: %v", err)
	}
	rc.Close()
	rc.Close() // a second Close releases nothing more
	if err := s.Delete(t.Context(), sn.ID); err != nil {
		t.Fatalf("Delete after Close: %v", err)
	}
	if _, err := s.Get(t.Context(), sn.ID); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("Delete left %d files in %s", len(ents), dir)
	}
	if err := s.Delete(t.Context(), sn.ID); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
}

func TestBadInput(t *testing.T) {
	s, h, dir := newStore(t)
	if _, err := s.Take(t.Context(), h, "sess_missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Take of a missing desktop: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a failed Take left %d files", len(ents))
	}
	if list, _ := s.List(t.Context()); len(list) != 0 {
		t.Errorf("a failed Take left rows: %+v", list)
	}
	for _, id := range []string{"", "../x", "snap_", "snap_../../../../etc/passwd", "snap_ABCDEFGHIJKLMNOPQRSTUVWXYZ"} {
		if _, _, err := s.OpenSnapshot(t.Context(), id); !errors.Is(err, snapshot.ErrBadID) {
			t.Errorf("OpenSnapshot(%q): %v, want ErrBadID", id, err)
		}
		if err := s.Delete(t.Context(), id); !errors.Is(err, snapshot.ErrBadID) {
			t.Errorf("Delete(%q): %v, want ErrBadID", id, err)
		}
	}
	if _, _, err := s.OpenSnapshot(t.Context(), snapshot.NewID()); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("OpenSnapshot of an unknown id: %v, want ErrNotFound", err)
	}
}
