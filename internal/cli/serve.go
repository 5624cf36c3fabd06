package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"atelier/internal/api"
	"atelier/internal/audit"
	"atelier/internal/config"
	"atelier/internal/egress"
	"atelier/internal/fleetwire"
	"atelier/internal/sessions"
	"atelier/internal/store"
	"atelier/internal/version"
)

// shutdownTimeout bounds how long serve waits for requests in flight.
const shutdownTimeout = 10 * time.Second

// runServe is `atelier serve`: the fleet. It is the one place that wires
// the concrete parts together. On SIGINT or SIGTERM it stops accepting,
// lets requests in flight finish, and leaves the desktops running for the
// next fleet to re-adopt.
func runServe(ctx context.Context, env *Env, args []string) error {
	cfg, err := config.Load(env.Getenv, args, env.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, nil))
	log.Info("atelier starting", "version", version.Version, "config", cfg)
	if cfg.InsecureNoToken {
		log.Warn("INSECURE: no " + config.EnvToken + " (--insecure-no-token): anything on this machine that reaches " + cfg.Addr +
			" can drive, read and delete every desktop; the API listens on loopback only. Set a token for anything but a trial.")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	st, err := store.Open(ctx, cfg.DBPath())
	if err != nil {
		return err
	}
	defer st.Close()
	// Opened before the runtime so it closes after the runtime detaches.
	al, err := audit.Open(filepath.Join(cfg.DataDir, "audit"), audit.Options{Sync: cfg.Records.AuditSync, RedactTypedText: cfg.Records.AuditRedactTyped, Logger: log.With("part", "audit")})
	if err != nil {
		return err
	}
	defer al.Close()
	rt, images, err := fleetwire.Runtime(ctx, cfg, log.With("runtime", cfg.Runtime))
	if err != nil {
		return err
	}
	defer rt.Close()
	snaps, err := newSnapshots(cfg, st, images, log.With("part", "snapshot"))
	if err != nil {
		return err
	}
	auditor := fleetwire.Audit{Log: al}
	// Closed after the sessions: desktops keep running without egress
	// until the next fleet opens their gates again.
	gw := egress.New(egress.Options{Recorder: auditor, Logger: log.With("part", "egress")})
	defer gw.Shutdown()
	mgr, err := sessions.Open(ctx, sessions.Options{Runtime: rt, Store: st, Logger: log, Snapshots: snaps, Auditor: auditor,
		Gateway: gw, Egress: cfg.Egress, MaxSessions: cfg.Limits.MaxSessions})
	if err != nil {
		return err
	}
	defer mgr.Close()
	leases := fleetwire.Control(al, cfg.View.ControlIdle)
	defer leases.Close()
	vh, err := newView(cfg, mgr, st, leases, auditor.RecordViewer, log.With("part", "view"))
	if err != nil {
		return err
	}
	// Deferred, so it runs after Shutdown: Shutdown leaves hijacked
	// connections (the views' WebSockets) to their owner.
	defer vh.Close()
	spend, tm, stopTasks, err := fleetwire.Tasks(ctx, fleetwire.TaskParts{Store: st, Sessions: mgr, Runtime: rt, Audit: al, Control: leases,
		Model: cfg.Model, CapUSD: cfg.MaxUSDPerDay, DataDir: cfg.DataDir, StepRetention: cfg.Records.StepRetention, Logger: log.With("part", "tasks")})
	if err != nil {
		return err
	}
	defer stopTasks()
	srv := api.New(api.Options{Sessions: mgr, Token: cfg.APIToken, Version: version.Version, Logger: log,
		View: vh, Snapshots: snaps, Desktops: rt, Budget: spend, Tasks: tm, Audit: al, Control: leases,
		ReadTimeout: cfg.HTTP.ReadTimeout, IdleTimeout: cfg.HTTP.IdleTimeout, MaxStreams: cfg.Limits.MaxStreams})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := srv.HTTPServer()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	log.Info("atelier listening", "url", "http://"+ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("atelier stopping; desktops keep running")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("requests cut short at shutdown", "err", err)
		hs.Close()
	}
	<-served
	return nil
}
