package supervisor

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"atelier/desktop"
)

// watchTheme applies the run dir's theme file whenever it is written, until
// ctx is done. The fleet writes it atomically (rename) or in place; both end
// in an inotify event on the directory.
func (s *Supervisor) watchTheme(ctx context.Context) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		s.log.Error("theme changes will not apply live", "err", fmt.Errorf("inotify: %w", err))
		return
	}
	// A non-blocking descriptor goes through the runtime's poller, so Close
	// ends a pending Read.
	f := os.NewFile(uintptr(fd), "inotify")
	defer f.Close()
	if _, err := unix.InotifyAddWatch(fd, s.opts.RunDir, unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO); err != nil {
		s.log.Error("theme changes will not apply live", "err", fmt.Errorf("watch %s: %w", s.opts.RunDir, err))
		return
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("theme watch ended", "err", err)
			}
			return
		}
		if runFileEvent(buf[:n], desktop.ThemeFile) {
			s.applyThemeFile(ctx)
		}
		if runFileEvent(buf[:n], desktop.ResolutionFile) {
			s.applyResolutionFile(ctx)
		}
	}
}

// runFileEvent reports whether a batch of inotify events names file.
func runFileEvent(b []byte, file string) bool {
	for len(b) >= unix.SizeofInotifyEvent {
		nameLen := int(binary.NativeEndian.Uint32(b[12:16]))
		end := unix.SizeofInotifyEvent + nameLen
		if end > len(b) {
			return false
		}
		name := bytes.TrimRight(b[unix.SizeofInotifyEvent:end], "\x00")
		if string(name) == file {
			return true
		}
		b = b[end:]
	}
	return false
}

// applyThemeFile reads the theme file and, if it names another valid theme,
// re-renders the configuration and reloads sway and waybar in place. An
// unknown theme is logged and changes nothing.
func (s *Supervisor) applyThemeFile(ctx context.Context) {
	b, err := os.ReadFile(filepath.Join(s.opts.RunDir, desktop.ThemeFile))
	if err != nil {
		s.log.Warn("read theme file", "err", err)
		return
	}
	th, err := desktop.LookupTheme(string(b))
	if err != nil {
		s.log.Warn("theme file ignored", "err", err)
		return
	}
	s.mu.Lock()
	old := s.theme
	s.theme = th
	s.mu.Unlock()
	if old.Name == th.Name {
		return
	}
	if err := s.render(); err != nil {
		s.log.Error("apply theme", "theme", th.Name, "err", err)
		return
	}
	// sway reads the new config on reload; waybar reloads on SIGUSR2.
	if err := swayCommand(ctx, s.swaySock, "reload"); err != nil {
		s.log.Warn("apply theme: sway reload", "theme", th.Name, "err", err)
	}
	// Even a failed reload may have reset the keyboards.
	if s.opts.SwayReloaded != nil {
		s.opts.SwayReloaded()
	}
	if err := s.signal(Waybar, syscall.SIGUSR2); err != nil {
		s.log.Warn("apply theme: waybar reload", "theme", th.Name, "err", err)
	}
	s.log.Info("theme applied", "theme", th.Name, "was", old.Name)
}
