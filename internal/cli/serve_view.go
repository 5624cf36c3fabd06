package cli

import (
	"log/slog"
	"path/filepath"

	"atelier/internal/config"
	"atelier/internal/sessions"
	"atelier/internal/snapshot"
	"atelier/internal/store"
	"atelier/internal/view"
)

// newView returns the live view of mgr's desktops, its token key kept in
// the data dir and its token generations in st, so links and their
// revocations outlive a restart.
func newView(cfg config.Config, mgr *sessions.Manager, st *store.Store, leases view.Control, onViewer func(view.ViewerEvent), log *slog.Logger) (*view.Handler, error) {
	tokens, err := view.NewTokens(filepath.Join(cfg.DataDir, "embed.key"))
	if err != nil {
		return nil, err
	}
	return view.NewHandler(view.Options{Dialer: mgr, Tokens: tokens, FrameAncestors: cfg.View.FrameAncestors,
		PublicURL: cfg.View.PublicURL, DefaultTTL: cfg.View.EmbedTTL, NoVNCDir: cfg.View.NoVNCDir, Control: leases, OnViewer: onViewer, Logger: log,
		Generations: st, MaxViews: cfg.Limits.MaxStreams})
}

// newSnapshots returns the snapshot store, its archives in the data dir.
func newSnapshots(cfg config.Config, st *store.Store, images snapshot.Images, log *slog.Logger) (*snapshot.Store, error) {
	return snapshot.New(snapshot.Options{DB: st, Dir: filepath.Join(cfg.DataDir, "snapshots"), Images: images, Logger: log})
}
