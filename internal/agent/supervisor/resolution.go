package supervisor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"atelier/desktop"
)

// readResolution reads the run dir's resolution file.
func (s *Supervisor) readResolution() (desktop.Resolution, error) {
	b, err := os.ReadFile(filepath.Join(s.opts.RunDir, desktop.ResolutionFile))
	if err != nil {
		return desktop.Resolution{}, err
	}
	return desktop.ParseResolution(strings.TrimSpace(string(b)))
}

// applyResolutionFile sets the output's mode to the resolution file's, live
// through sway's IPC (no reload: keyboards and windows stay as they are),
// and renders it into the configuration so a restarted sway keeps it.
// Clients see the new mode (wl_output), so screenshots and the live view
// follow. A malformed file is logged and changes nothing.
func (s *Supervisor) applyResolutionFile(ctx context.Context) {
	r, err := s.readResolution()
	if err != nil {
		s.log.Warn("resolution file ignored", "err", err)
		return
	}
	s.mu.Lock()
	old := s.res
	s.res = r
	s.mu.Unlock()
	if old == r {
		return
	}
	if err := s.render(); err != nil {
		s.log.Error("apply resolution", "resolution", r.String(), "err", err)
		return
	}
	if err := swayCommand(ctx, s.swaySock, fmt.Sprintf("output HEADLESS-1 mode %dx%d", r.Width, r.Height)); err != nil {
		s.log.Warn("apply resolution: sway", "resolution", r.String(), "err", err)
		return
	}
	s.log.Info("resolution applied", "resolution", r.String(), "was", old.String())
}
