// Package fleet is the composition root: it opens every part of a fleet
// from its configuration, in order (store, audit, runtime, snapshots,
// egress gateway, sessions, control, live view, tasks, console, API) with
// its metrics and (if the environment asks) traces, serves the API, and
// closes the parts in the reverse order. `atelier serve` and the test
// fleets (fleettest) are both made here, so a test runs the fleet users
// run.
package fleet

import (
	"atelier/internal/client"
	"atelier/internal/mcp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"atelier/internal/api"
	"atelier/internal/audit"
	"atelier/internal/batches"
	"atelier/internal/config"
	"atelier/internal/console"
	"atelier/internal/egress"
	"atelier/internal/fleetwire"
	"atelier/internal/metrics"
	"atelier/internal/runtime"
	"atelier/internal/sessions"
	"atelier/internal/snapshot"
	"atelier/internal/store"
	"atelier/internal/tasks"
	"atelier/internal/tracing"
	"atelier/internal/view"
)

// ShutdownTimeout bounds how long Serve waits for requests in flight.
const ShutdownTimeout = 10 * time.Second

// Options are what a fleet takes beside its configuration.
type Options struct {
	Logger  *slog.Logger // nil: discard
	Version string       // reported by /health and the OpenAPI document
	// Reconcile is how often sessions are checked against their desktops;
	// 0: the sessions manager's default. Tests shorten it.
	Reconcile time.Duration
	// Gateway holds the egress gateway's test-only options (a resolver,
	// exempt ranges); its recorder and logger are the fleet's own.
	Gateway egress.Options
}

// Fleet is an open fleet: its parts, for callers that need one (a test
// reading a desktop's home), and the API that serves them.
type Fleet struct {
	Config   config.Config
	Store    *store.Store
	Audit    *audit.Log
	Runtime  runtime.Runtime
	Sessions *sessions.Manager
	Tasks    *tasks.Manager
	API      *api.Server

	log     *slog.Logger
	closers []func() error // in the order the parts were opened
}

// Open opens a fleet on cfg. Desktops that run are re-adopted, as they
// are. On an error, what was opened is closed again.
func Open(ctx context.Context, cfg config.Config, opts Options) (_ *Fleet, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// A part that logs with a request's context names the request.
	log = slog.New(api.RequestIDLogs(log.Handler()))
	f := &Fleet{Config: cfg, log: log}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	// Traces, if the environment asks for them, close last: every part's
	// spans are flushed.
	stopTraces, err := tracing.Setup(ctx, opts.Version)
	if err != nil {
		return nil, err
	}
	f.closing(func() error {
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		return stopTraces(sctx)
	})
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if f.Store, err = store.Open(ctx, cfg.DBPath()); err != nil {
		return nil, err
	}
	f.closing(f.Store.Close)
	// The metrics are fed by the audit log, the input pipeline, the task
	// loop and the egress gateway, and read the sessions, the budget and
	// the open streams at scrape time.
	mx := metrics.New()
	mx.SetAuditSync(cfg.Records.AuditSync.String())
	// Opened before the runtime so it closes after the runtime detaches.
	f.Audit, err = audit.Open(filepath.Join(cfg.DataDir, "audit"), audit.Options{Sync: cfg.Records.AuditSync,
		RedactTypedText: cfg.Records.AuditRedactTyped, Logger: log.With("part", "audit"), OnAppend: mx.ObserveAuditAppend})
	if err != nil {
		return nil, err
	}
	f.closing(f.Audit.Close)
	auditor := fleetwire.Audit{Log: f.Audit}
	var images snapshot.Images
	if f.Runtime, images, err = OpenRuntime(ctx, cfg, log.With("runtime", cfg.Runtime)); err != nil {
		return nil, err
	}
	f.closing(f.Runtime.Close)
	snaps, err := snapshot.New(snapshot.Options{DB: f.Store, Dir: filepath.Join(cfg.DataDir, "snapshots"), Images: images, Logger: log.With("part", "snapshot")})
	if err != nil {
		return nil, err
	}
	// Closed after the sessions: desktops keep running without egress
	// until the next fleet opens their gates again.
	gwOpts := opts.Gateway
	gwOpts.Recorder, gwOpts.Logger = egressRecorders{auditor, mx}, log.With("part", "egress")
	gw := egress.New(gwOpts)
	f.closing(func() error { gw.Shutdown(); return nil })
	// One control lease per session, which every input path passes
	// through the sessions' pipeline.
	leases := fleetwire.Control(f.Audit, cfg.View.ControlIdle)
	f.closing(func() error { leases.Close(); return nil })
	f.Sessions, err = sessions.Open(ctx, sessions.Options{Runtime: f.Runtime, Store: f.Store, Logger: log, Snapshots: snaps, Auditor: auditor, Observer: mx,
		Control: leases, Gateway: gw, Egress: cfg.Egress, MaxSessions: cfg.Limits.MaxSessions, Reconcile: opts.Reconcile})
	if err != nil {
		return nil, err
	}
	f.closing(func() error { f.Sessions.Close(); return nil })
	tokens, err := view.NewTokens(filepath.Join(cfg.DataDir, "embed.key"))
	if err != nil {
		return nil, err
	}
	vh, err := view.NewHandler(view.Options{Dialer: f.Sessions, Tokens: tokens, FrameAncestors: cfg.View.FrameAncestors,
		PublicURL: cfg.View.PublicURL, DefaultTTL: cfg.View.EmbedTTL, NoVNCDir: cfg.View.NoVNCDir, Control: leases, Input: f.Sessions,
		OnViewer: auditor.RecordViewer, Logger: log.With("part", "view"), Generations: f.Store, MaxViews: cfg.Limits.MaxStreams})
	if err != nil {
		return nil, err
	}
	// Closed after the HTTP server's Shutdown, which leaves hijacked
	// connections (the views' WebSockets) to their owner.
	f.closing(func() error { vh.Close(); return nil })
	spend, tm, stopTasks, err := fleetwire.Tasks(ctx, fleetwire.TaskParts{Store: f.Store, Sessions: f.Sessions, Runtime: f.Runtime,
		Audit: f.Audit, Control: leases, Model: cfg.Model, CapUSD: cfg.MaxUSDPerDay, DataDir: cfg.DataDir,
		StepRetention: cfg.Records.StepRetention, Logger: log.With("part", "tasks"), Observer: mx})
	if err != nil {
		return nil, err
	}
	f.Tasks = tm
	mx.Watch(f.Sessions, spend)
	f.closing(func() error { stopTasks(); return nil })
	// The MCP endpoint drives the fleet through its own API, in process,
	// audited as mcp.
	// Closed before the parts it watches: it ends its MCP sessions.
	self := client.New("http://fleet.in-process", cfg.APIToken, &http.Client{Transport: inProcess{handler: func() http.Handler { return f.API.Handler() }, actor: audit.ActorMCP}})
	ms := mcp.NewServer(self, opts.Version, log.With("part", "mcp"))
	f.closing(ms.Close)
	cons := console.New(console.Options{Store: f.Store, Token: cfg.APIToken, API: func() http.Handler { return f.API.Handler() },
		Shots: f.Sessions, Audit: f.Audit, CapUSD: cfg.MaxUSDPerDay, Secure: strings.HasPrefix(cfg.View.PublicURL, "https:"),
		Logger: log.With("part", "console")})
	f.closing(func() error { cons.Close(); return nil })
	f.API = api.New(api.Options{Console: cons, MCP: ms.HTTPHandler(), Sessions: f.Sessions, Token: cfg.APIToken, Version: opts.Version, Logger: log,
		View: vh, Snapshots: snaps, Desktops: f.Runtime, Budget: spend, Tasks: tm, Audit: f.Audit, Control: leases,
		Batches: &batches.Manager{Store: f.Store, Tasks: tm, Sessions: f.Sessions},
		Metrics: mx.Handler(), MetricsToken: cfg.MetricsToken,
		Ready: []api.ReadyCheck{{Name: "store", Check: f.Store.CheckWritable}, {Name: "runtime", Check: f.runtimeAnswers},
			{Name: "sessions", Check: f.Sessions.CheckReconciled}},
		ReadTimeout: cfg.HTTP.ReadTimeout, IdleTimeout: cfg.HTTP.IdleTimeout, MaxStreams: cfg.Limits.MaxStreams})
	mx.WatchStreams(metrics.Streams{Views: vh.OpenViews, SSE: f.API.OpenStreams, MCPSessions: ms.OpenSessions})
	return f, nil
}

// egressRecorders tells each recorder of a connection in turn.
type egressRecorders []egress.Recorder

func (rs egressRecorders) RecordEgress(session string, r egress.Record) {
	for _, rec := range rs {
		rec.RecordEgress(session, r)
	}
}

// runtimeAnswers is the runtime's readiness: it lists its desktops.
func (f *Fleet) runtimeAnswers(ctx context.Context) error {
	if _, err := f.Runtime.List(ctx); err != nil {
		return fmt.Errorf("%s runtime: %w", f.Runtime.Name(), err)
	}
	return nil
}

// closing registers close to run when the fleet closes.
func (f *Fleet) closing(close func() error) { f.closers = append(f.closers, close) }

// Close closes the fleet's parts in the reverse order of their opening and
// leaves its desktops running, for the next fleet to re-adopt. Shut the
// HTTP server down first (Serve does).
func (f *Fleet) Close() error {
	var errs []error
	for _, c := range slices.Backward(f.closers) {
		errs = append(errs, c())
	}
	f.closers = nil
	return errors.Join(errs...)
}

// Serve serves the API on ln until ctx ends, then lets requests in flight
// finish (for at most ShutdownTimeout). It does not close the fleet.
func (f *Fleet) Serve(ctx context.Context, ln net.Listener) error {
	hs := f.API.HTTPServer()
	hs.ErrorLog = slog.NewLogLogger(f.log.Handler(), slog.LevelWarn)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		f.log.Warn("requests cut short at shutdown", "err", err)
		hs.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
