package supervisor

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"

	"atelier/desktop"
)

// watchTheme applies the run dir's theme and resolution files whenever
// they are written, until ctx is done.
func (s *Supervisor) watchTheme(ctx context.Context) {
	w, err := WatchDir(s.opts.RunDir)
	if err == nil {
		err = w.Run(ctx, func(name string) {
			switch name {
			case desktop.ThemeFile:
				s.applyThemeFile(ctx)
			case desktop.ResolutionFile:
				s.applyResolutionFile(ctx)
			}
		})
	}
	if err != nil {
		s.log.Error("theme and resolution changes will not apply live", "err", err)
	}
}

// DirWatch reports the files written in one directory. The fleet writes
// run files atomically (rename) or in place; both end in an inotify event
// on the directory, so a watcher sleeps until something is written.
type DirWatch struct {
	dir string
	f   *os.File
}

// WatchDir starts watching dir: a file written from now on is reported by
// Run, even if Run is called later.
func WatchDir(dir string) (*DirWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	// A non-blocking descriptor goes through the runtime's poller, so Close
	// ends a pending Read.
	f := os.NewFile(uintptr(fd), "inotify")
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO); err != nil {
		f.Close()
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	return &DirWatch{dir: dir, f: f}, nil
}

// Run calls changed with the name of each file written, until ctx is done
// (it then returns nil) or the watch fails; either way the watch ends.
func (w *DirWatch) Run(ctx context.Context, changed func(name string)) error {
	defer w.f.Close()
	stop := context.AfterFunc(ctx, func() { w.f.Close() })
	defer stop()
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("watch %s: %w", w.dir, err)
		}
		for _, name := range eventNames(buf[:n]) {
			changed(name)
		}
	}
}

// eventNames returns the file names of a batch of inotify events, each once.
func eventNames(b []byte) []string {
	var names []string
	for len(b) >= unix.SizeofInotifyEvent {
		nameLen := int(binary.NativeEndian.Uint32(b[12:16]))
		end := unix.SizeofInotifyEvent + nameLen
		if end > len(b) {
			break
		}
		name := string(bytes.TrimRight(b[unix.SizeofInotifyEvent:end], "\x00"))
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
		b = b[end:]
	}
	return names
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
