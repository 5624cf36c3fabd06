package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"atelier/internal/snapshot/archive"
)

// removingCtx removes paths when WriteTar checks it for the second time:
// after the walk has listed the tree's top directory, before it reaches
// the entries listed, as when a desktop deletes files during an export.
type removingCtx struct {
	context.Context
	calls int
	paths []string
}

func (c *removingCtx) Err() error {
	c.calls++
	if c.calls == 2 {
		for _, p := range c.paths {
			os.RemoveAll(p)
		}
	}
	return c.Context.Err()
}

// TestWriteTarSkipsVanishedEntries removes a file and a directory after
// the walk listed them: the export goes on without them (the reported
// failure was "openat .ready-…: no such file or directory").
func TestWriteTarSkipsVanishedEntries(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"a": "kept", "b.ready-1": "gone", "c/d": "gone too", "e": "kept too"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := &removingCtx{Context: t.Context(), paths: []string{filepath.Join(dir, "b.ready-1"), filepath.Join(dir, "c")}}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if _, err := archive.WriteTar(ctx, tw, dir, nil); err != nil {
		t.Fatalf("WriteTar with vanished entries: %v", err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if ctx.calls < 2 {
		t.Fatalf("the context was checked %d times; the test removed nothing", ctx.calls)
	}
	var names []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	// The walk had c's details before it vanished: c stays, empty.
	if want := []string{"a", "c/", "e"}; !slices.Equal(names, want) {
		t.Errorf("archived %q, want %q", names, want)
	}
}

// TestWriteTarMissingRootFails: only entries may vanish, not the tree.
func TestWriteTarMissingRootFails(t *testing.T) {
	tw := tar.NewWriter(io.Discard)
	if _, err := archive.WriteTar(t.Context(), tw, filepath.Join(t.TempDir(), "none"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("WriteTar of a missing dir: err = %v, want not exist", err)
	}
}
