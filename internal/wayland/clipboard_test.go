package wayland_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/desktoptest"
	"atelier/internal/wayland"
)

// readUntil polls the clipboard (its selection event comes asynchronously)
// until it reads want.
func readUntil(t *testing.T, d *wayland.Display, mime string, want []byte) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		got, _, err := d.ReadClipboard(ctx, mime, 1<<20)
		cancel()
		if err == nil && bytes.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("clipboard %s = %.40q (%v), want %.40q", mime, got, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestClipboard: text and PNG set by one client are read by another and by
// wl-paste; what wl-copy sets is read; a limit refuses more.
func TestClipboard(t *testing.T) {
	s := desktoptest.StartSway(t, desktop.DefaultResolution)
	a, b := dial(t, s), dial(t, s)
	if _, _, err := b.ReadClipboard(context.Background(), wayland.MimeText, 100); !errors.Is(err, wayland.ErrEmpty) {
		t.Fatalf("an empty clipboard: %v", err)
	}
	text := []byte("héllo from the agent\nline 2")
	if err := a.SetClipboard(wayland.MimeText, text); err != nil {
		t.Fatal(err)
	}
	readUntil(t, b, wayland.MimeText, text)
	readUntil(t, a, wayland.MimeText, text) // its own source, served through the compositor
	if _, _, err := b.ReadClipboard(context.Background(), wayland.MimeText, 5); !errors.Is(err, wayland.ErrTooLarge) {
		t.Errorf("a read over its limit: %v", err)
	}
	if _, _, err := b.ReadClipboard(context.Background(), wayland.MimePNG, 100); !errors.Is(err, wayland.ErrEmpty) {
		t.Errorf("a PNG read of text: %v", err)
	}
	png := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0, 1, 2, 255}, 100_000)...) // bigger than a pipe's buffer
	if err := b.SetClipboard(wayland.MimePNG, png); err != nil {
		t.Fatal(err)
	}
	readUntil(t, a, wayland.MimePNG, png)

	if _, err := exec.LookPath("wl-paste"); err != nil {
		t.Skip("SKIP: wl-clipboard is not installed (desktop/install-deps.sh); the interop half cannot run")
	}
	env := append(os.Environ(), "WAYLAND_DISPLAY="+s.WaylandSocket)
	if err := a.SetClipboard(wayland.MimeText, text); err != nil {
		t.Fatal(err)
	}
	readUntil(t, b, wayland.MimeText, text)
	cmd := exec.Command("wl-paste", "--no-newline")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil || !bytes.Equal(out, text) {
		t.Fatalf("wl-paste: %q %v, want %q", out, err, text)
	}
	// In the foreground, so that it is this test's to stop.
	cmd = exec.Command("wl-copy", "--foreground", "copied by wl-copy")
	cmd.Env = env
	if err := cmd.Start(); err != nil {
		t.Fatalf("wl-copy: %v", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	readUntil(t, a, wayland.MimeText, []byte("copied by wl-copy"))
}
