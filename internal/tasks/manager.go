package tasks

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"atelier/internal/agentapi"
	"atelier/internal/audit"
	"atelier/internal/budget"
	"atelier/internal/control"
	"atelier/internal/model"
	"atelier/internal/store"
	"atelier/internal/tracing"
)

// Options configure a Manager. Zero values take defaults where one is named.
type Options struct {
	Store    *store.Store
	Budget   *budget.Budget
	Desktops Desktops
	// Backends by name ("holo", "anthropic", "scripted").
	Backends map[string]Backend
	// DefaultBackend is used when a spec names none and has no script.
	DefaultBackend string
	// Prices prices each call; nil means model.DefaultPrices().
	Prices model.Prices
	// DataDir holds step screenshots, under DataDir/tasks/<id>/.
	DataDir string
	// Retention is how long step screenshots are kept; 0 means 7 days.
	Retention time.Duration
	// After a step's actions, the next screenshot waits until the screen
	// has shown no change for SettleQuiet, SettleMax at most (0 means
	// agentapi.DefaultQuiet and 3s).
	SettleQuiet, SettleMax time.Duration
	// ModelTimeout bounds one model call, retries included; 0 means 3 minutes.
	ModelTimeout time.Duration
	// Control is the sessions' control lease, the one the Desktops'
	// input pipeline admits actions with; nil means a lease of the
	// manager's own, for a pipeline without one.
	Control  Control
	Recorder Recorder // optional
	Observer Observer // optional
	Logger   *slog.Logger
	Now      func() time.Time
}

// Manager runs tasks. It is safe for concurrent use; Close stops every
// running task and waits for its goroutine.
type Manager struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context // parent of every task; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	bySession map[string]*run // the per-session lock: one running task each
	byID      map[string]*run
}

// errCancelled is the cause a Cancel call gives a task's context, telling
// it apart from the fleet shutting down.
var errCancelled = errors.New("cancelled")

// New returns a Manager. Tasks a previous fleet left running are marked
// interrupted, and step screenshots past their retention are deleted.
func New(ctx context.Context, opts Options) (*Manager, error) {
	if opts.Store == nil || opts.Budget == nil || opts.Desktops == nil {
		return nil, errors.New("tasks: Store, Budget and Desktops are required")
	}
	if opts.DataDir == "" {
		return nil, errors.New("tasks: DataDir is required")
	}
	if opts.Prices == nil {
		opts.Prices = model.DefaultPrices()
	}
	if opts.Retention == 0 {
		opts.Retention = 7 * 24 * time.Hour
	}
	opts.SettleQuiet = cmp.Or(opts.SettleQuiet, agentapi.DefaultQuiet)
	opts.SettleMax = cmp.Or(opts.SettleMax, 3*time.Second)
	if opts.ModelTimeout == 0 {
		opts.ModelTimeout = 3 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Control == nil {
		opts.Control = control.New(control.Options{Now: opts.Now})
	}
	ids, err := opts.Store.InterruptRunningTasks(ctx, opts.Now())
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		opts.Logger.Warn("task interrupted by a fleet restart", "task", id)
	}
	if err := os.MkdirAll(filepath.Join(opts.DataDir, "tasks"), 0o700); err != nil {
		return nil, fmt.Errorf("tasks: %w", err)
	}
	m := &Manager{opts: opts, log: opts.Logger, bySession: map[string]*run{}, byID: map[string]*run{}}
	m.ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.prune()
	return m, nil
}

// Close cancels every running task (they end interrupted) and waits.
func (m *Manager) Close() error {
	m.cancel()
	m.wg.Wait()
	return nil
}

func newTaskID() string {
	var b [8]byte
	rand.Read(b[:])
	return "task_" + hex.EncodeToString(b[:])
}

// check validates s and fills its defaults.
func (m *Manager) check(s *Spec) error {
	s.Goal = strings.TrimSpace(s.Goal)
	switch {
	case s.Goal == "" && len(s.Script) == 0:
		return fmt.Errorf("%w: goal is empty", ErrInvalid)
	case len(s.Goal) > MaxGoalBytes || !utf8.ValidString(s.Goal):
		return fmt.Errorf("%w: goal must be UTF-8 text of at most %d bytes", ErrInvalid, MaxGoalBytes)
	case s.MaxSteps < 0 || s.MaxSteps > MaxMaxSteps:
		return fmt.Errorf("%w: max_steps %d: want 1 to %d", ErrInvalid, s.MaxSteps, MaxMaxSteps)
	case s.MaxUSD < 0 || s.MaxUSD != s.MaxUSD:
		return fmt.Errorf("%w: max_usd %v: want a non-negative amount", ErrInvalid, s.MaxUSD)
	case len(s.Script) > MaxScriptLen:
		return fmt.Errorf("%w: script has %d actions; the limit is %d", ErrInvalid, len(s.Script), MaxScriptLen)
	}
	if s.MaxSteps == 0 {
		s.MaxSteps = DefaultMaxSteps
	}
	if s.Backend == "" {
		s.Backend = m.opts.DefaultBackend
		if len(s.Script) > 0 {
			s.Backend = "scripted"
		}
	}
	if s.Goal == "" {
		s.Goal = "run the script"
	}
	if _, ok := m.opts.Backends[s.Backend]; !ok {
		names := make([]string, 0, len(m.opts.Backends))
		for n := range m.opts.Backends {
			names = append(names, n)
		}
		return fmt.Errorf("%w: unknown backend %q; configured: %s", ErrInvalid, s.Backend, strings.Join(names, ", "))
	}
	return nil
}

// Submit starts a task on a session. It returns ErrBusy if the session
// already runs one, a *control.HeldError while a person holds the
// session's control, ErrInvalid for a bad spec, ErrUnpriced for a model
// without a price while a cap is set, and an error wrapping
// ErrNoDesktop if the session has no running desktop. Nothing is recorded
// when it fails.
func (m *Manager) Submit(ctx context.Context, sessionID string, s Spec) (Task, error) {
	if err := m.check(&s); err != nil {
		return Task{}, err
	}
	// Cheap refusal before any work; the authoritative check is below.
	m.mu.Lock()
	_, busy := m.bySession[sessionID]
	m.mu.Unlock()
	if busy {
		return Task{}, ErrBusy
	}
	if _, err := m.opts.Desktops.Agent(ctx, sessionID); err != nil {
		return Task{}, fmt.Errorf("session %s: %w", sessionID, err)
	}
	conv, err := m.opts.Backends[s.Backend].Start(ctx, model.Start{Goal: s.Goal, Model: s.Model, Script: s.Script})
	if err != nil {
		return Task{}, fmt.Errorf("%w: backend %s: %v", ErrInvalid, s.Backend, err)
	}
	// A cap cannot bound what has no price.
	if capped := m.opts.Budget.Cap() > 0 || s.MaxUSD > 0; capped && !m.opts.Prices.Priced(conv.Model()) {
		return Task{}, fmt.Errorf("%w: model %s has no price and a spending cap is set; price it with %s (model=in/out USD per million tokens, or model=free)",
			ErrUnpriced, conv.Model(), "MODEL_PRICES")
	}

	t := Task{
		ID: newTaskID(), SessionID: sessionID, Goal: s.Goal, Backend: s.Backend, Model: conv.Model(),
		MaxSteps: s.MaxSteps, MaxUSD: s.MaxUSD, Status: StatusRunning, CreatedAt: m.opts.Now().UTC(),
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return Task{}, ErrClosed
	}
	if _, busy := m.bySession[sessionID]; busy {
		return Task{}, ErrBusy
	}
	r := newRun(t)
	if err := m.opts.Control.BeginTask(sessionID, t.ID, func(c control.Change) { m.controlChanged(r, c) }); err != nil {
		if errors.Is(err, control.ErrTaskRunning) {
			return Task{}, ErrBusy
		}
		return Task{}, err
	}
	if err := m.opts.Store.InsertTask(ctx, toRow(t)); err != nil {
		m.opts.Control.EndTask(sessionID, t.ID)
		if errors.Is(err, store.ErrTaskRunning) {
			return Task{}, ErrBusy
		}
		return Task{}, err
	}
	if m.opts.Recorder != nil {
		if err := m.opts.Recorder.RecordTaskStart(ctx, t); err != nil {
			m.log.ErrorContext(ctx, "audit task start", "task", t.ID, "err", err)
		}
	}
	// The task outlives the request that started it, but its log lines,
	// audit entries and trace name that request.
	tctx := audit.WithRequestID(m.ctx, audit.RequestIDFrom(ctx))
	tctx, span := tracing.Start(trace.ContextWithSpanContext(tctx, trace.SpanContextFromContext(ctx)), "task",
		attribute.String("atelier.task", t.ID), attribute.String("atelier.session", sessionID),
		attribute.String("atelier.backend", t.Backend), attribute.String("atelier.model", t.Model))
	ctx, cancel := context.WithCancelCause(tctx)
	r.cancel = cancel
	m.bySession[sessionID], m.byID[t.ID] = r, r
	m.wg.Go(func() {
		defer span.End()
		defer cancel(nil)
		m.loop(ctx, r, conv, func() {
			m.opts.Control.EndTask(sessionID, t.ID)
			m.mu.Lock()
			delete(m.bySession, sessionID)
			delete(m.byID, t.ID)
			m.mu.Unlock()
		})
		m.prune()
	})
	m.log.InfoContext(ctx, "task started", "task", t.ID, "session", sessionID, "backend", s.Backend, "model", t.Model)
	return t, nil
}

// Get returns a task with its events so far.
func (m *Manager) Get(ctx context.Context, id string) (Task, error) {
	m.mu.Lock()
	r := m.byID[id]
	m.mu.Unlock()
	if r != nil {
		return r.snapshot(), nil
	}
	row, err := m.opts.Store.GetTask(ctx, id)
	if errors.Is(err, store.ErrTaskNotFound) {
		return Task{}, ErrNotFound
	}
	if err != nil {
		return Task{}, err
	}
	t := fromRow(row)
	if t.Events, err = m.storedEvents(ctx, id); err != nil {
		return Task{}, err
	}
	return t, nil
}

// List returns a session's tasks, newest first (without their events).
func (m *Manager) List(ctx context.Context, sessionID string) ([]Task, error) {
	rows, err := m.opts.Store.ListTasks(ctx, sessionID, 200)
	if err != nil {
		return nil, err
	}
	out := make([]Task, 0, len(rows))
	for _, row := range rows {
		t := fromRow(row)
		// A running task's totals are fresher in memory.
		m.mu.Lock()
		if r := m.byID[t.ID]; r != nil {
			t = r.snapshot()
			t.Events = nil
		}
		m.mu.Unlock()
		out = append(out, t)
	}
	return out, nil
}

// Running returns the id of the task running on a session, if any.
func (m *Manager) Running(sessionID string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.bySession[sessionID]; r != nil {
		return r.task.ID, true
	}
	return "", false
}

// Cancel stops a running task; it ends, cancelled, within one step: the
// model call or action in flight is abandoned.
func (m *Manager) Cancel(ctx context.Context, id string) error {
	m.mu.Lock()
	r := m.byID[id]
	m.mu.Unlock()
	if r != nil {
		r.cancel(errCancelled)
		return nil
	}
	if _, err := m.opts.Store.GetTask(ctx, id); errors.Is(err, store.ErrTaskNotFound) {
		return ErrNotFound
	} else if err != nil {
		return err
	}
	return ErrNotRunning
}

// Subscribe returns a channel carrying the task's events with an id above
// after: first those so far, then live ones. The channel is closed after the
// final event, or when ctx ends; the caller drains it or cancels ctx.
func (m *Manager) Subscribe(ctx context.Context, id string, after int) (<-chan Event, error) {
	m.mu.Lock()
	r := m.byID[id]
	m.mu.Unlock()
	ch := make(chan Event, 16)
	if r == nil {
		if _, err := m.opts.Store.GetTask(ctx, id); errors.Is(err, store.ErrTaskNotFound) {
			return nil, ErrNotFound
		} else if err != nil {
			return nil, err
		}
		evs, err := m.storedEvents(ctx, id)
		if err != nil {
			return nil, err
		}
		m.wg.Go(func() {
			defer close(ch)
			for _, ev := range evs {
				if ev.ID <= after {
					continue
				}
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			}
		})
		return ch, nil
	}
	m.wg.Go(func() { r.follow(ctx, after, ch) })
	return ch, nil
}

func (m *Manager) storedEvents(ctx context.Context, id string) ([]Event, error) {
	raws, err := m.opts.Store.TaskSteps(ctx, id)
	if err != nil {
		return nil, err
	}
	evs := make([]Event, 0, len(raws))
	for _, raw := range raws {
		var ev Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return nil, fmt.Errorf("decode event of %s: %w", id, err)
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// ScreenshotPath returns the file of a task's step screenshot.
func (m *Manager) ScreenshotPath(taskID string, step int) (string, error) {
	if !validTaskID(taskID) || step < 1 {
		return "", ErrNotFound
	}
	matches, _ := filepath.Glob(filepath.Join(m.opts.DataDir, "tasks", taskID, fmt.Sprintf("%d.*", step)))
	if len(matches) == 0 {
		return "", ErrNotFound
	}
	return matches[0], nil
}

// validTaskID keeps ids that reach the file system to the form newTaskID
// makes, so no path can escape the data dir.
func validTaskID(id string) bool {
	hexPart, ok := strings.CutPrefix(id, "task_")
	if !ok || len(hexPart) != 16 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil
}

// prune deletes step screenshots of tasks older than the retention.
func (m *Manager) prune() {
	dir := filepath.Join(m.opts.DataDir, "tasks")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	cutoff := m.opts.Now().Add(-m.opts.Retention)
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !validTaskID(e.Name()) || info.ModTime().After(cutoff) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			m.log.Warn("prune step screenshots", "task", e.Name(), "err", err)
		}
	}
}

func toRow(t Task) store.Task {
	return store.Task{
		ID: t.ID, SessionID: t.SessionID, Goal: t.Goal, Backend: t.Backend, Model: t.Model,
		MaxSteps: t.MaxSteps, MaxUSD: t.MaxUSD, Status: string(t.Status), Answer: t.Answer, Error: t.Error,
		Steps: t.Steps, CostUSD: t.CostUSD, CreatedAt: t.CreatedAt, EndedAt: t.EndedAt,
	}
}

func fromRow(r store.Task) Task {
	return Task{
		ID: r.ID, SessionID: r.SessionID, Goal: r.Goal, Backend: r.Backend, Model: r.Model,
		MaxSteps: r.MaxSteps, MaxUSD: r.MaxUSD, Status: Status(r.Status), Answer: r.Answer, Error: r.Error,
		Steps: r.Steps, CostUSD: r.CostUSD, CreatedAt: r.CreatedAt, EndedAt: r.EndedAt,
	}
}
