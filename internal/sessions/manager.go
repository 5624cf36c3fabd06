// Package sessions runs the fleet's sessions: one desktop each, on a
// Runtime. It creates, starts, stops and removes them, derives their state
// (creating, starting, ready, degraded, stopped, failed) from the runtime
// and the desktop's agent, keeps what they should be in the store so a
// restarted fleet re-adopts them, and forwards actions to their agents.
package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"atelier/desktop"
	"atelier/internal/agentapi"
	"atelier/internal/egress"
	"atelier/internal/runtime"
	"atelier/internal/store"
)

// MaxLabelRunes bounds a session's label.
const MaxLabelRunes = 64

// SnapshotSource opens a snapshot to create a session from. The snapshot
// package's store satisfies it; without one, snapshot_id is refused.
type SnapshotSource interface {
	// OpenSnapshot returns the snapshot's home archive (a tar stream) and,
	// for runtimes with images, the image to start from.
	OpenSnapshot(ctx context.Context, id string) (home io.ReadCloser, image string, err error)
}

// Options configure a Manager. Zero values take the defaults noted.
type Options struct {
	Runtime runtime.Runtime // required
	Store   *store.Store    // required
	Logger  *slog.Logger    // nil: discard
	// Auditor, if set, records every action sent through Act and every
	// lifecycle event (created, started, stopped, deleted, restarted).
	Auditor Auditor
	// Observer, if set, is told every action's verb, outcome and
	// duration, for the fleet's metrics.
	Observer Observer
	// Control, if set, admits each input action of Act and each input
	// the live view passes (AdmitInput): the control lease. Nil admits
	// everything.
	Control Gate
	// Snapshots, if set, lets sessions be created from a snapshot.
	Snapshots SnapshotSource
	// Gateway, if set, serves each running desktop's egress on the
	// runtime's gate socket.
	Gateway Gateway
	// Egress is the policy of sessions that name none. Default
	// egress.Default.
	Egress egress.Policy
	// ReadyGrace is how long a desktop may take to report ready before a
	// silent agent makes it degraded. Default 60s.
	ReadyGrace time.Duration
	// Reconcile is how often the manager starts desktops that should run
	// and do not. Default 2s.
	Reconcile time.Duration
	// StatusTimeout bounds one agent status query. Default 2s.
	StatusTimeout time.Duration
	// Settle is how long an observing action list waits before its
	// screenshot, when the request names no time. Default 300ms.
	Settle time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// MaxSessions is how many sessions may run (or be wanted running) at
	// once; a create or start past it fails with ErrTooMany having made
	// nothing. 0: no limit.
	MaxSessions int
}

// Gateway serves desktops' egress; *egress.Gateway satisfies it.
type Gateway interface {
	// Open serves desktop id on the unix socket at path with policy p, or
	// gives an open one the policy p.
	Open(id, path string, p egress.Policy) error
	// Close stops serving desktop id.
	Close(id string)
}

// Auditor records actions and lifecycle events; the audit log satisfies
// it.
type Auditor interface {
	RecordAction(ctx context.Context, sessionID string, a ActionRecord) error
	// RecordSession records a lifecycle event (EventCreated, …) by ctx's
	// actor, else the fleet.
	RecordSession(ctx context.Context, sessionID, event string) error
}

// Observer watches the input pipeline and the desktops. Its methods must
// not block.
type Observer interface {
	// ObserveAction is called once per action sent through Act, run or
	// not; outcome is "ok", the protocol's error code, or "not_run".
	ObserveAction(verb, outcome string, took time.Duration)
	// ObserveScreenshot is called for every screenshot taken (Screenshot,
	// an observation, a screenshot action).
	ObserveScreenshot(format string, bytes int, took time.Duration)
	// ObserveRestarts is told of n restarts seen since the last look: of
	// the whole desktop when component is empty, else of that component
	// by the desktop's agent.
	ObserveRestarts(runtime, component string, n int)
}

// Outcomes of an action beside the protocol's error codes, as the audit
// log names them too.
const (
	OutcomeOK     = "ok"
	OutcomeNotRun = "not_run"
)

// ActionRecord is one action as the audit log keeps it.
type ActionRecord struct {
	// Actor is who sent it; empty means ctx's actor.
	Actor   string
	Request agentapi.Request
	OK      bool
	Error   *agentapi.Error
	// NotRun says why the action did not run; empty when it ran.
	NotRun string
	Took   time.Duration
	// Detail holds facts of the action kept in place of its content: a
	// clipboard's bytes and SHA-256 (Request.Data is emptied).
	Detail map[string]any
}

// Session is a session as the manager reports it: the stored facts and the
// derived state.
type Session struct {
	store.Session
	State State
	// Reason says why the state is degraded, failed or starting.
	Reason string
	// Detail is the runtime's, for people: a pid, a container id.
	Detail string
	// AgentVersion is what the running desktop's agent reports; empty when
	// it was not asked (not running) or predates reporting it.
	AgentVersion string
	// Egress is the policy the session's desktop gets; EgressOwn says it
	// is the session's own, not the fleet's.
	Egress    egress.Policy
	EgressOwn bool
	// Home is how full the session's home is, if it has a quota.
	Home *runtime.HomeUsage
}

// Manager runs sessions. It is safe for concurrent use.
type Manager struct {
	rt   runtime.Runtime
	st   *store.Store
	log  *slog.Logger
	opts Options

	mu   sync.Mutex
	live map[string]*live

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// reconciled is set once the first reconcile after adoption is done.
	reconciled atomic.Bool
	// watchers are told every lifecycle event (Watch).
	watchers watchers
}

// live is what the manager holds in memory for one session.
type live struct {
	// op serializes lifecycle operations (create, start, stop, remove,
	// theme) on the session; a second one at the same time gets ErrBusy.
	op sync.Mutex

	mu       sync.Mutex
	creating bool
	lastErr  error
	agent    *agentapi.Client
	// status asks the agent for its status on a connection of its own, so
	// a long action (a wait, a hold_key) does not make the session look
	// unresponsive.
	status *agentapi.Client
	// restarts are the restart counts last seen, by component ("" for
	// the whole desktop); nil until the first look, which is the
	// baseline (restarts before this fleet are not its to count).
	restarts map[string]int
}

// closeClients closes the session's agent connections. l.mu must be held.
func (l *live) closeClients() {
	for _, c := range []*agentapi.Client{l.agent, l.status} {
		if c != nil {
			c.Close()
		}
	}
}

// Open returns a Manager over opts.Runtime and opts.Store. It re-adopts what
// the store knows: desktops that run are taken over as they are, those that
// should run and do not are started, those that should not run are
// stopped. Then, until Close, it keeps starting desktops that should run.
func Open(ctx context.Context, opts Options) (*Manager, error) {
	if opts.Runtime == nil || opts.Store == nil {
		return nil, errors.New("sessions: a runtime and a store are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReadyGrace <= 0 {
		opts.ReadyGrace = 60 * time.Second
	}
	if opts.Reconcile <= 0 {
		opts.Reconcile = 2 * time.Second
	}
	if opts.StatusTimeout <= 0 {
		opts.StatusTimeout = 2 * time.Second
	}
	if opts.Settle <= 0 {
		opts.Settle = 300 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Egress.Mode == "" {
		opts.Egress = egress.Default
	}
	m := &Manager{rt: opts.Runtime, st: opts.Store, log: opts.Logger, opts: opts, live: map[string]*live{}}
	if err := m.adopt(ctx); err != nil {
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	m.wg.Go(func() { m.reconcileLoop(loopCtx) })
	return m, nil
}

// ErrNotReconciled is CheckReconciled's answer until the first reconcile.
var ErrNotReconciled = errors.New("sessions: desktops not reconciled yet")

// CheckReconciled answers nil once the manager has adopted the desktops
// and reconciled them with the store at least once.
func (m *Manager) CheckReconciled(context.Context) error {
	if !m.reconciled.Load() {
		return ErrNotReconciled
	}
	return nil
}

// Close stops the manager's background work and closes agent connections.
// Desktops keep running: the next fleet re-adopts them.
func (m *Manager) Close() error {
	m.cancel()
	m.wg.Wait()
	m.watchers.closeAll()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.live {
		l.mu.Lock()
		l.closeClients()
		l.mu.Unlock()
	}
	return nil
}

// entry returns the in-memory half of session id, creating it.
func (m *Manager) entry(id string) *live {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.live[id]
	if l == nil {
		l = &live{}
		m.live[id] = l
	}
	return l
}

// lock takes session id's operation lock, or returns ErrBusy.
func (m *Manager) lock(id string) (*live, error) {
	l := m.entry(id)
	if !l.op.TryLock() {
		return nil, fmt.Errorf("%w: %s: another operation on it is under way", ErrBusy, id)
	}
	return l, nil
}

func (l *live) setErr(err error) {
	l.mu.Lock()
	l.lastErr = err
	l.mu.Unlock()
}

// adopt matches the store with what the runtime runs.
func (m *Manager) adopt(ctx context.Context) error {
	stored, err := m.st.ListSessions(ctx)
	if err != nil {
		return fmt.Errorf("adopt sessions: %w", err)
	}
	insts, err := m.rt.List(ctx)
	if err != nil {
		return fmt.Errorf("adopt sessions: list %s desktops: %w", m.rt.Name(), err)
	}
	byID := map[string]runtime.Instance{}
	for _, in := range insts {
		byID[in.ID] = in
	}
	for _, se := range stored {
		in, ok := byID[se.ID]
		delete(byID, se.ID)
		switch {
		case se.Desired == store.DesiredRunning && ok && in.Running:
			m.log.Info("session adopted", "session", se.ID, "runtime", m.rt.Name(), "detail", in.Detail)
			if err := m.openGate(se); err != nil {
				m.log.Error("session adopted without egress", "session", se.ID, "err", err)
			}
		case se.Desired == store.DesiredRunning:
			m.ensureRunning(ctx, se, ok)
		case ok && in.Running:
			if err := m.rt.Stop(ctx, se.ID); err != nil {
				m.log.Warn("stop desktop of stopped session", "session", se.ID, "err", err)
			}
		}
	}
	for id := range byID {
		m.log.Warn("desktop without a session left alone", "runtime", m.rt.Name(), "desktop", id)
	}
	return nil
}

// ensureRunning creates (if the runtime lost it) and starts se's desktop,
// recording a failure as the session's state. exists tells whether the
// runtime has the desktop.
func (m *Manager) ensureRunning(ctx context.Context, se store.Session, exists bool) {
	l := m.entry(se.ID)
	if !l.op.TryLock() {
		return // an operation on it is under way; the next round looks again
	}
	defer l.op.Unlock()
	// The round's list may predate a delete or stop that held the lock
	// meanwhile: starting from it would bring a deleted desktop back.
	se, err := m.stored(ctx, se.ID)
	if err != nil || se.Desired != store.DesiredRunning {
		return
	}
	t0 := time.Now()
	if !exists {
		if err := m.rt.Create(ctx, m.spec(se)); err != nil {
			m.recordStartErr(l, se.ID, fmt.Errorf("create desktop: %w", err))
			return
		}
	}
	if err := m.startLocked(ctx, se); err != nil {
		m.recordStartErr(l, se.ID, err)
		return
	}
	l.setErr(nil)
	// The fleet did it, whatever context it was opened with.
	m.recordLifecycle(context.Background(), se.ID, EventRestarted)
	if m.opts.Observer != nil {
		m.opts.Observer.ObserveRestarts(m.rt.Name(), "", 1)
	}
	m.log.Info("session restarted", "session", se.ID, "runtime", m.rt.Name(), "took", time.Since(t0))
}

// recordStartErr keeps err as the session's failure, logging it when it
// changes so a desktop that keeps failing does not flood the log.
func (m *Manager) recordStartErr(l *live, id string, err error) {
	l.mu.Lock()
	same := l.lastErr != nil && l.lastErr.Error() == err.Error()
	l.lastErr = err
	l.mu.Unlock()
	if !same {
		m.log.Error("session does not start", "session", id, "err", err)
	}
}

func (m *Manager) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(m.opts.Reconcile)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.reconcile(ctx)
		m.reconciled.Store(true)
	}
}

// reconcile starts every desktop that should run and does not.
func (m *Manager) reconcile(ctx context.Context) {
	stored, err := m.st.ListSessions(ctx)
	if err != nil {
		m.log.Warn("reconcile", "err", err)
		return
	}
	for _, se := range stored {
		if se.Desired != store.DesiredRunning || m.isCreating(se.ID) {
			continue
		}
		in, err := m.rt.Inspect(ctx, se.ID)
		switch {
		case errors.Is(err, runtime.ErrNotFound):
			m.ensureRunning(ctx, se, false)
		case err != nil:
			m.log.Warn("reconcile: inspect", "session", se.ID, "err", err)
		case !in.Running:
			m.ensureRunning(ctx, se, true)
		}
	}
}

func (m *Manager) isCreating(id string) bool {
	l := m.entry(id)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.creating
}

func (m *Manager) spec(se store.Session) runtime.Spec {
	return runtime.Spec{ID: se.ID, Label: se.Label, Theme: se.Theme, Resolution: se.Resolution}
}

// startLocked starts se's desktop and hands it its theme. The session's
// operation lock must be held.
func (m *Manager) startLocked(ctx context.Context, se store.Session) error {
	if err := m.rt.Start(ctx, se.ID); err != nil {
		return fmt.Errorf("start desktop: %w", err)
	}
	if err := m.openGate(se); err != nil {
		return err
	}
	// The theme and size may have changed while the desktop was stopped.
	if err := m.rt.WriteRunFile(ctx, se.ID, desktop.ThemeFile, []byte(se.Theme+"\n")); err != nil {
		m.log.Warn("write theme file", "session", se.ID, "err", err)
	}
	if err := m.rt.WriteRunFile(ctx, se.ID, desktop.ResolutionFile, []byte(se.Resolution.String()+"\n")); err != nil {
		m.log.Warn("write resolution file", "session", se.ID, "err", err)
	}
	return nil
}

// egressOf returns the policy of se's desktop and whether it is se's own.
func (m *Manager) egressOf(se store.Session) (egress.Policy, bool) {
	if se.Egress == "" {
		return m.opts.Egress, false
	}
	var p egress.Policy
	if err := json.Unmarshal([]byte(se.Egress), &p); err != nil || p.Validate() != nil {
		// Written by Create from a checked policy: a damaged row gets no
		// egress rather than more than it was given.
		m.log.Error("session egress policy unreadable: none applied", "session", se.ID, "policy", se.Egress, "err", err)
		return egress.Policy{Mode: egress.ModeNone}, true
	}
	return p, true
}

// openGate serves se's egress on its desktop's gate socket.
func (m *Manager) openGate(se store.Session) error {
	if m.opts.Gateway == nil {
		return nil
	}
	path, err := m.rt.GateSocket(se.ID)
	if err == nil {
		p, _ := m.egressOf(se)
		err = m.opts.Gateway.Open(se.ID, path, p)
	}
	if err != nil {
		return fmt.Errorf("egress gate: %w", err)
	}
	return nil
}

// closeGate stops serving session id's egress.
func (m *Manager) closeGate(id string) {
	if m.opts.Gateway != nil {
		m.opts.Gateway.Close(id)
	}
}

// CreateOptions is what a new session is made of. Zero values take the
// defaults: no label, desktop.DefaultTheme, desktop.DefaultResolution.
type CreateOptions struct {
	Label      string
	Theme      string
	Resolution string // WIDTHxHEIGHT
	SnapshotID string
	// Egress, if set, is the session's own egress policy, kept across
	// fleet restarts; nil takes the fleet's.
	Egress *egress.Policy
}

// themeName returns the canonical name of a theme, or ErrBadTheme naming
// the known ones.
func themeName(name string) (string, error) {
	t, err := desktop.LookupTheme(name)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadTheme, strings.TrimPrefix(err.Error(), desktop.ErrUnknownTheme.Error()+" "))
	}
	return t.Name, nil
}

func checkLabel(label string) error {
	if !utf8.ValidString(label) || utf8.RuneCountInString(label) > MaxLabelRunes {
		return fmt.Errorf("%w: label: want at most %d characters of UTF-8", ErrBadInput, MaxLabelRunes)
	}
	if strings.IndexFunc(label, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("%w: label: control characters are not allowed", ErrBadInput)
	}
	return nil
}

// Create makes a new session and starts its desktop. It returns once the
// desktop is launched; WaitReady waits for it to answer. Bad options are
// refused before anything is made.
func (m *Manager) Create(ctx context.Context, o CreateOptions) (Session, error) {
	now := m.opts.Now().UTC()
	se := store.Session{Label: o.Label, Theme: o.Theme, Resolution: desktop.DefaultResolution,
		Desired: store.DesiredRunning, Runtime: m.rt.Name(), SnapshotID: o.SnapshotID, CreatedAt: now, UpdatedAt: now}
	if se.Theme == "" {
		se.Theme = desktop.DefaultTheme
	}
	if err := checkLabel(se.Label); err != nil {
		return Session{}, err
	}
	theme, err := themeName(se.Theme)
	if err != nil {
		return Session{}, err
	}
	se.Theme = theme
	if o.Resolution != "" {
		r, err := desktop.ParseResolution(o.Resolution)
		if err != nil {
			return Session{}, fmt.Errorf("%w: %v", ErrBadResolution, err)
		}
		se.Resolution = r
	}
	if o.Egress != nil {
		p, err := egress.NewPolicy(string(o.Egress.Mode), o.Egress.Allow)
		if err != nil {
			return Session{}, fmt.Errorf("%w: egress: %v", ErrBadInput, err)
		}
		b, err := json.Marshal(p)
		if err != nil {
			return Session{}, fmt.Errorf("egress: %w", err)
		}
		se.Egress = string(b)
	}
	spec := m.spec(se)
	if o.SnapshotID != "" {
		if m.opts.Snapshots == nil {
			return Session{}, fmt.Errorf("%w: snapshot_id: this fleet has no snapshots", ErrBadInput)
		}
		home, image, err := m.opts.Snapshots.OpenSnapshot(ctx, o.SnapshotID)
		if err != nil {
			return Session{}, fmt.Errorf("%w: snapshot %q: %w", ErrBadInput, o.SnapshotID, err)
		}
		defer home.Close()
		spec.HomeArchive, spec.Image = home, image
	}
	se.ID = runtime.NewID()
	spec.ID = se.ID

	l, err := m.lock(se.ID)
	if err != nil {
		return Session{}, err
	}
	defer l.op.Unlock()
	l.mu.Lock()
	l.creating = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.creating = false
		l.mu.Unlock()
	}()

	t0 := time.Now()
	if err := m.st.AdmitSession(ctx, se, m.opts.MaxSessions); err != nil {
		return Session{}, fmt.Errorf("create session: %w", tooMany(err))
	}
	err = m.rt.Create(ctx, spec)
	if err == nil {
		err = m.startLocked(ctx, se)
	}
	if err != nil {
		// A session that never ran leaves nothing behind.
		cleanup := context.WithoutCancel(ctx)
		m.closeGate(se.ID)
		if rerr := m.rt.Remove(cleanup, se.ID, true); rerr != nil && !errors.Is(rerr, runtime.ErrNotFound) {
			m.log.WarnContext(ctx, "remove desktop of failed session", "session", se.ID, "err", rerr)
		}
		if derr := m.st.DeleteSession(cleanup, se.ID); derr != nil {
			m.log.WarnContext(ctx, "delete failed session", "session", se.ID, "err", derr)
		}
		m.forget(se.ID)
		return Session{}, fmt.Errorf("create session: %w", err)
	}
	m.recordLifecycle(ctx, se.ID, EventCreated)
	m.log.InfoContext(ctx, "session created", "session", se.ID, "runtime", m.rt.Name(), "resolution", se.Resolution.String(), "took", time.Since(t0))
	return m.session(se, StateStarting), nil
}

// tooMany maps the store's refusal to ErrTooMany.
func tooMany(err error) error {
	if errors.Is(err, store.ErrLimit) {
		return fmt.Errorf("%w: %v; stop or delete one first", ErrTooMany, err)
	}
	return err
}

// forget drops the in-memory half of session id.
func (m *Manager) forget(id string) {
	m.mu.Lock()
	l := m.live[id]
	delete(m.live, id)
	m.mu.Unlock()
	if l != nil {
		l.mu.Lock()
		l.closeClients()
		l.mu.Unlock()
	}
}

// stored returns the store's row of session id, mapping a miss to
// ErrNoSession.
func (m *Manager) stored(ctx context.Context, id string) (store.Session, error) {
	if err := runtime.CheckID(id); err != nil {
		return store.Session{}, err
	}
	se, err := m.st.GetSession(ctx, id)
	if errors.Is(err, store.ErrSessionNotFound) {
		return store.Session{}, fmt.Errorf("%w: %s", ErrNoSession, id)
	}
	return se, err
}

// Get returns one session with its current state.
func (m *Manager) Get(ctx context.Context, id string) (Session, error) {
	se, err := m.stored(ctx, id)
	if err != nil {
		return Session{}, err
	}
	return m.observe(ctx, se), nil
}

// List returns every session with its current state, oldest first.
func (m *Manager) List(ctx context.Context) ([]Session, error) {
	stored, err := m.st.ListSessions(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Session, len(stored))
	var wg sync.WaitGroup
	for i, se := range stored {
		wg.Go(func() { out[i] = m.observe(ctx, se) })
	}
	wg.Wait()
	return out, nil
}

// observe derives se's state from the runtime and the agent.
func (m *Manager) observe(ctx context.Context, se store.Session) Session {
	l := m.entry(se.ID)
	l.mu.Lock()
	o := observation{desired: se.Desired, creating: l.creating, lastErr: l.lastErr, now: m.opts.Now(), grace: m.opts.ReadyGrace}
	l.mu.Unlock()
	if !o.creating {
		in, err := m.rt.Inspect(ctx, se.ID)
		switch {
		case err == nil:
			o.inst = &in
		case !errors.Is(err, runtime.ErrNotFound):
			o.lastErr = fmt.Errorf("inspect desktop: %w", err)
		}
		if o.desired == store.DesiredRunning && o.inst != nil && o.inst.Running && !o.inst.Degraded {
			sctx, cancel := context.WithTimeout(ctx, m.opts.StatusTimeout)
			resp, err := m.statusClient(se.ID).Do(sctx, agentapi.Request{Action: agentapi.StatusVerb})
			cancel()
			o.status, o.statusErr = resp.Status, err
		}
	}
	m.countRestarts(l, o)
	st, reason := derive(o)
	out := m.session(se, st)
	out.Reason = reason
	if o.inst != nil {
		out.Detail, out.Home = o.inst.Detail, o.inst.Home
	}
	if o.status != nil {
		out.AgentVersion = o.status.AgentVersion
	}
	return out
}

// countRestarts tells the observer of the restarts o shows that the
// last look at the session did not: the runtime's of the whole desktop
// and the agent's of its components. A count lower than the last one
// seen started again (a new desktop, a new agent): all of it is new.
func (m *Manager) countRestarts(l *live, o observation) {
	if m.opts.Observer == nil || o.inst == nil {
		return
	}
	l.mu.Lock()
	seen := l.restarts
	// Without the agent's answer its components keep their last counts.
	now := maps.Clone(seen)
	if now == nil {
		now = map[string]int{}
	}
	now[""] = o.inst.Restarts
	if o.status != nil {
		for _, c := range o.status.Components {
			now[c.Name] = c.Restarts
		}
	}
	l.restarts = now
	l.mu.Unlock()
	if seen == nil {
		return
	}
	for name, n := range now {
		last, ok := seen[name]
		if ok && n >= last {
			n -= last
		}
		if n > 0 {
			m.opts.Observer.ObserveRestarts(m.rt.Name(), name, n)
		}
	}
}

// session reports se in state st.
func (m *Manager) session(se store.Session, st State) Session {
	p, own := m.egressOf(se)
	return Session{Session: se, State: st, Egress: p, EgressOwn: own}
}

// agent returns session id's agent client, made on first use and reused:
// it keeps one connection and redials after an agent restart.
func (m *Manager) agent(id string) *agentapi.Client {
	return m.client(id, func(l *live) **agentapi.Client { return &l.agent })
}

// statusClient returns the client status queries of session id use.
func (m *Manager) statusClient(id string) *agentapi.Client {
	return m.client(id, func(l *live) **agentapi.Client { return &l.status })
}

func (m *Manager) client(id string, which func(*live) **agentapi.Client) *agentapi.Client {
	l := m.entry(id)
	l.mu.Lock()
	defer l.mu.Unlock()
	c := which(l)
	if *c == nil {
		*c = agentapi.NewClient(func(ctx context.Context) (net.Conn, error) {
			return m.rt.Dial(ctx, id, runtime.EndpointAgent)
		})
	}
	return *c
}

// Agent returns the agent client of a running session (for tasks).
func (m *Manager) Agent(ctx context.Context, id string) (*agentapi.Client, error) {
	se, err := m.stored(ctx, id)
	if err != nil {
		return nil, err
	}
	if se.Desired != store.DesiredRunning {
		return nil, fmt.Errorf("%w: %s", ErrNotRunning, id)
	}
	return m.agent(id), nil
}

// DialVNC connects to a running session's VNC server (for the live view).
func (m *Manager) DialVNC(ctx context.Context, id string) (net.Conn, error) {
	se, err := m.stored(ctx, id)
	if err != nil {
		return nil, err
	}
	if se.Desired != store.DesiredRunning {
		return nil, fmt.Errorf("%w: %s", ErrNotRunning, id)
	}
	conn, err := m.rt.Dial(ctx, id, runtime.EndpointVNC)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, id, err)
	}
	return conn, nil
}

// WaitReady waits until session id is ready, for at most timeout. It
// returns the session as last seen; ErrNotReady (with the state and its
// reason) when the time is up or the session failed or was stopped.
func (m *Manager) WaitReady(ctx context.Context, id string, timeout time.Duration) (Session, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The agent offers no readiness event to wait on, so this polls, briefly
	// and within the deadline.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last Session
	for {
		s, err := m.Get(ctx, id)
		switch {
		case err != nil && ctx.Err() == nil:
			return s, err
		case err == nil:
			last = s
		}
		switch {
		case err == nil && s.State == StateReady:
			return s, nil
		case err == nil && (s.State == StateFailed || s.State == StateStopped):
			return s, fmt.Errorf("%w: %s is %s: %s", ErrNotReady, id, s.State, s.Reason)
		}
		select {
		case <-ctx.Done():
			if err := context.Cause(ctx); !errors.Is(err, context.DeadlineExceeded) {
				return last, err
			}
			why := string(last.State)
			if last.Reason != "" {
				why += ": " + last.Reason
			}
			return last, fmt.Errorf("%w: %s after %v (%s); it may still come up: GET /sessions/%s", ErrNotReady, id, timeout, why, id)
		case <-tick.C:
		}
	}
}

// Stop stops a session's desktop, keeping its home.
func (m *Manager) Stop(ctx context.Context, id string) (Session, error) {
	return m.setDesired(ctx, id, store.DesiredStopped)
}

// Start starts a stopped session's desktop. It returns once the desktop is
// launched; WaitReady waits for it to answer.
func (m *Manager) Start(ctx context.Context, id string) (Session, error) {
	return m.setDesired(ctx, id, store.DesiredRunning)
}

func (m *Manager) setDesired(ctx context.Context, id, desired string) (Session, error) {
	se, err := m.stored(ctx, id)
	if err != nil {
		return Session{}, err
	}
	l, err := m.lock(id)
	if err != nil {
		return Session{}, err
	}
	defer l.op.Unlock()
	t0 := time.Now()
	// The desired state is recorded first: a fleet killed half-way through
	// finishes the job when it re-adopts.
	if desired == store.DesiredRunning {
		err = tooMany(m.st.AdmitStart(ctx, id, m.opts.MaxSessions, m.opts.Now().UTC()))
	} else {
		err = m.st.SetSessionDesired(ctx, id, desired, m.opts.Now().UTC())
	}
	if err != nil {
		return Session{}, err
	}
	se.Desired = desired
	if desired == store.DesiredStopped {
		l.mu.Lock()
		l.closeClients()
		l.mu.Unlock()
		if err := m.rt.Stop(ctx, id); err != nil {
			return Session{}, fmt.Errorf("stop %s: %w", id, err)
		}
		m.closeGate(id)
		l.setErr(nil)
		m.recordLifecycle(ctx, id, EventStopped)
		m.log.InfoContext(ctx, "session stopped", "session", id, "took", time.Since(t0))
		return m.session(se, StateStopped), nil
	}
	_, err = m.rt.Inspect(ctx, id)
	if errors.Is(err, runtime.ErrNotFound) {
		err = m.rt.Create(ctx, m.spec(se))
	}
	if err == nil {
		err = m.startLocked(ctx, se)
	}
	if err != nil {
		l.setErr(err)
		return Session{}, fmt.Errorf("start %s: %w", id, err)
	}
	l.setErr(nil)
	m.recordLifecycle(ctx, id, EventStarted)
	m.log.InfoContext(ctx, "session started", "session", id, "took", time.Since(t0))
	return m.session(se, StateStarting), nil
}

// Delete removes a session and its desktop. Its home is kept, for a later
// session of the same id to find, unless purge.
func (m *Manager) Delete(ctx context.Context, id string, purge bool) error {
	if _, err := m.stored(ctx, id); err != nil {
		return err
	}
	l, err := m.lock(id)
	if err != nil {
		return err
	}
	defer l.op.Unlock()
	if err := m.rt.Remove(ctx, id, purge); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	m.closeGate(id)
	if err := m.st.DeleteSession(ctx, id); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	m.forget(id)
	m.recordLifecycle(ctx, id, EventDeleted)
	m.log.InfoContext(ctx, "session deleted", "session", id, "purge", purge)
	return nil
}

// SetResolution changes a session's output size. A running desktop takes
// it live (its output's mode; screenshots, the live view and the bounds of
// actions follow), a stopped one at its next start.
func (m *Manager) SetResolution(ctx context.Context, id, res string) (Session, error) {
	se, err := m.stored(ctx, id)
	if err != nil {
		return Session{}, err
	}
	r, err := desktop.ParseResolution(res)
	if err != nil {
		return Session{}, fmt.Errorf("%w: %v", ErrBadResolution, err)
	}
	l, err := m.lock(id)
	if err != nil {
		return Session{}, err
	}
	defer l.op.Unlock()
	// Stored first: the actions' bounds are checked against it, and a
	// desktop restarting meanwhile is handed it.
	if err := m.st.SetSessionResolution(ctx, id, r, m.opts.Now().UTC()); err != nil {
		return Session{}, err
	}
	if se.Desired == store.DesiredRunning {
		if err := m.rt.WriteRunFile(ctx, id, desktop.ResolutionFile, []byte(r.String()+"\n")); err != nil {
			return Session{}, fmt.Errorf("%w: %s: write resolution: %v", ErrUnavailable, id, err)
		}
	}
	m.log.Info("session resolution set", "session", id, "resolution", r.String())
	se.Resolution = r
	return m.observe(ctx, se), nil
}

// SetTheme changes a session's theme. A running desktop takes it live,
// without a restart; a stopped one at its next start.
func (m *Manager) SetTheme(ctx context.Context, id, theme string) (Session, error) {
	se, err := m.stored(ctx, id)
	if err != nil {
		return Session{}, err
	}
	if theme, err = themeName(theme); err != nil {
		return Session{}, err
	}
	l, err := m.lock(id)
	if err != nil {
		return Session{}, err
	}
	defer l.op.Unlock()
	if se.Desired == store.DesiredRunning {
		if err := m.rt.WriteRunFile(ctx, id, desktop.ThemeFile, []byte(theme+"\n")); err != nil {
			return Session{}, fmt.Errorf("%w: %s: write theme: %v", ErrUnavailable, id, err)
		}
	}
	if err := m.st.SetSessionTheme(ctx, id, theme, m.opts.Now().UTC()); err != nil {
		return Session{}, err
	}
	m.log.InfoContext(ctx, "session theme set", "session", id, "theme", theme)
	se.Theme = theme
	return m.observe(ctx, se), nil
}
