// Package control keeps one control lease per session: who may send input
// to a desktop right now — a task, a person, or nobody. Every input path
// (the actions API, a running task, a control-mode viewer) passes through
// Leases.Act, which admits only the holder; a person's lease pauses the
// session's task, handing back resumes it, and a person's lease left idle
// returns by itself. View-only viewers send no input and never meet it.
//
// Holding is not the same as owning the session's task: a task keeps its
// place on the session (a second task is refused) while a person holds the
// lease, and gets the lease back when they hand it back.
package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"
)

// Kind is who holds a lease.
type Kind string

// Kinds of holder.
const (
	KindTask   Kind = "task"
	KindPerson Kind = "person"
)

// Holder is who holds a session's lease, and since when.
type Holder struct {
	Kind Kind `json:"kind"`
	// Who is the task's id for a task; for a person, the actor that took
	// control ("api", "viewer", "token:ops").
	Who   string    `json:"who"`
	Since time.Time `json:"since"`
}

// TaskState is where the session's task stands.
type TaskState string

// Task states the lease decides.
const (
	TaskRunning        TaskState = "running"
	TaskPausedForHuman TaskState = "paused_for_human"
	TaskNeedsHelp      TaskState = "needs_help"
)

// State is a session's control, as reported to clients (GET
// /sessions/{id}/control and the viewer).
type State struct {
	Session string `json:"session_id"`
	// Holder is nil when nobody holds the lease.
	Holder *Holder `json:"holder"`
	// Task is the session's task, if any, and where it stands.
	Task      string    `json:"task_id,omitempty"`
	TaskState TaskState `json:"task_state,omitempty"`
	// Question is what the task asked a person, while it needs help.
	Question string `json:"question,omitempty"`
	// IdleSeconds is how long a person's lease lasts without input.
	IdleSeconds float64 `json:"idle_timeout_seconds"`
}

// Claim says on whose behalf an input is sent. Set the one field that
// applies.
type Claim struct {
	Task   string // a task's id: the task loop
	Lease  string // a person's lease id: the actions API
	Viewer string // a control viewer's id: the live view
	// Inputs is how many input events the admission covers (a batch of
	// API actions), for a person's period summary; 0 counts as 1.
	Inputs int
}

// Lease is a person's hold on a session.
type Lease struct {
	ID      string `json:"lease_id"`
	Session string `json:"session_id"`
	Holder  Holder `json:"holder"`
	// Viewer is the control viewer that took it, if one did: its input
	// passes without naming the lease.
	Viewer string `json:"-"`
	// PausedTask is the task the takeover paused, if any.
	PausedTask  string  `json:"paused_task_id,omitempty"`
	IdleSeconds float64 `json:"idle_timeout_seconds"`
}

// Reasons for a change of holder.
const (
	WhyTaskStart = "task_start"
	WhyTaskEnd   = "task_end"
	WhyTakeover  = "takeover"
	WhyHandback  = "handback"
	WhyIdle      = "idle"
	WhyHelp      = "needs_help"
)

// Change is a change of a session's holder (or of its task's state), as
// the audit log and the task hear of it.
type Change struct {
	Session string
	// From and To are the holders before and after; nil is nobody.
	From, To *Holder
	// TaskState is where the session's task stands after the change;
	// empty without a task.
	TaskState TaskState
	Why       string
	// By is the actor that made the change: the person taking over or
	// handing back, the task starting, ending or asking; empty when the
	// fleet did (an idle lease returning).
	By   string
	Time time.Time
	// Message is the person's hand-back message, or the task's question.
	Message string
	// Period summarises the person's control that just ended (handback,
	// idle).
	Period *Period
}

// Period is one person's control of a session, as the audit log keeps
// it: how long, and how many input events — never the input itself.
type Period struct {
	Who         string
	Duration    time.Duration
	InputEvents int
}

// Resumed is what a task hears when it gets the lease back: each person's
// control since it last had it, and the answer to its question if it
// asked one.
type Resumed struct {
	Periods  []Handback
	Answered bool
	Answer   string
}

// Handback is one person's control of the desktop between two turns of a
// task.
type Handback struct {
	Period
	Message string
	// Idle is set when the lease returned by itself.
	Idle bool
}

// Errors callers branch on.
var (
	// ErrHeld: someone else holds the lease (a *HeldError says who).
	ErrHeld = errors.New("control is held by someone else")
	// ErrTaskRunning: the session already has a task.
	ErrTaskRunning = errors.New("a task is already running on this session")
	// ErrNoLease: the lease named is not (or no longer) this session's.
	ErrNoLease = errors.New("no such lease on this session")
	// ErrNotTask: a task that no longer has the session tried to act.
	ErrNotTask = errors.New("this task no longer has the session")
	// ErrBadMessage: a hand-back message too long or not text.
	ErrBadMessage = errors.New("hand-back message refused")
	// ErrNothingHeld: a hand-back with nothing to hand back.
	ErrNothingHeld = errors.New("nobody holds control of this session and no task is waiting for help")
)

// HeldError is a refusal because another party holds the lease.
type HeldError struct {
	Session string
	Holder  Holder
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s: control is held by %s %s since %s", e.Session, e.Holder.Kind, e.Holder.Who,
		e.Holder.Since.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrHeld) hold.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Options configure Leases.
type Options struct {
	// IdleTimeout returns a person's lease after this long without input;
	// 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// OnChange hears every change of holder, after it happened, outside
	// any lock (the fleet writes them to the audit log). Optional.
	OnChange func(Change)
	Now      func() time.Time
}

// DefaultIdleTimeout is how long a person's lease lasts without input.
const DefaultIdleTimeout = 5 * time.Minute

// Leases holds the control lease of every session. It is safe for
// concurrent use; Close stops the idle timers.
type Leases struct {
	opts Options

	mu     sync.Mutex
	closed bool
	byID   map[string]*entry
}

// entry is one session's control.
type entry struct {
	task      string
	taskSince time.Time
	onTask    func(Change) // the task's hook, set by BeginTask
	question  string       // set while the task needs help
	answered  *string      // the answer, once given and not yet taken
	periods   []Handback   // control periods the task has not heard of

	person *personLease

	// gen counts holder changes; inflight counts Act calls admitted per
	// generation, so a takeover can wait for the previous holder's.
	gen      uint64
	inflight map[uint64]int
	drained  map[uint64]chan struct{}
	// turn is closed and replaced whenever the task may be able to go on.
	turn chan struct{}
}

type personLease struct {
	Lease
	lastInput time.Time
	inputs    int
	timer     *time.Timer
}

// New returns Leases.
func New(opts Options) *Leases {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Leases{opts: opts, byID: map[string]*entry{}}
}

// Close stops every idle timer. Leases are not usable afterwards.
func (l *Leases) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for _, e := range l.byID {
		if e.person != nil {
			e.person.timer.Stop()
		}
	}
}

// IdleTimeout is how long a person's lease lasts without input.
func (l *Leases) IdleTimeout() time.Duration { return l.opts.IdleTimeout }

// get returns session's entry, making it; l.mu is held.
func (l *Leases) get(session string) *entry {
	e := l.byID[session]
	if e == nil {
		e = &entry{inflight: map[uint64]int{}, drained: map[uint64]chan struct{}{}, turn: make(chan struct{})}
		l.byID[session] = e
	}
	return e
}

// forget drops an entry that holds nothing; l.mu is held.
func (l *Leases) forget(session string, e *entry) {
	if e.task == "" && e.person == nil && len(e.inflight) == 0 {
		delete(l.byID, session)
	}
}

// holder is e's current holder, nil for nobody; l.mu is held.
func (e *entry) holder() *Holder {
	switch {
	case e.person != nil:
		h := e.person.Holder
		return &h
	case e.task != "":
		return &Holder{Kind: KindTask, Who: e.task, Since: e.taskSince}
	}
	return nil
}

// wakeTask tells a waiting task to look again; l.mu is held.
func (e *entry) wakeTask() {
	close(e.turn)
	e.turn = make(chan struct{})
}

// newGen starts a new holder generation; l.mu is held.
func (e *entry) newGen() { e.gen++ }

func (l *Leases) changed(c Change, hook func(Change)) {
	if hook != nil {
		hook(c)
	}
	if l.opts.OnChange != nil {
		l.opts.OnChange(c)
	}
}

// State reports a session's control.
func (l *Leases) State(session string) State {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := State{Session: session, IdleSeconds: l.opts.IdleTimeout.Seconds()}
	e := l.byID[session]
	if e == nil {
		return st
	}
	st.Holder = e.holder()
	if e.task != "" {
		st.Task, st.TaskState = e.task, e.taskState()
		st.Question = e.question
	}
	return st
}

func (e *entry) taskState() TaskState {
	switch {
	case e.person != nil:
		return TaskPausedForHuman
	case e.question != "":
		return TaskNeedsHelp
	}
	return TaskRunning
}

// BeginTask gives session's lease to a task. hook hears every change
// while the task has the session (pauses, hand-backs); it must not block
// for long. It fails with ErrTaskRunning if the session has a task and a
// *HeldError if a person holds the lease.
func (l *Leases) BeginTask(session, task string, hook func(Change)) error {
	l.mu.Lock()
	e := l.get(session)
	switch {
	case e.task != "":
		l.mu.Unlock()
		return fmt.Errorf("%s: %w", session, ErrTaskRunning)
	case e.person != nil:
		err := &HeldError{Session: session, Holder: e.person.Holder}
		l.mu.Unlock()
		return err
	}
	now := l.opts.Now()
	e.task, e.taskSince, e.onTask = task, now, hook
	e.question, e.answered, e.periods = "", nil, nil
	e.newGen()
	to := e.holder()
	l.mu.Unlock()
	l.changed(Change{Session: session, To: to, TaskState: TaskRunning, Why: WhyTaskStart, By: to.Who, Time: now}, nil)
	return nil
}

// EndTask takes the session from its task. A person's lease, if one is
// held, stays.
func (l *Leases) EndTask(session, task string) {
	l.mu.Lock()
	e := l.byID[session]
	if e == nil || e.task != task {
		l.mu.Unlock()
		return
	}
	from := e.holder()
	e.task, e.onTask, e.question, e.answered, e.periods = "", nil, "", nil, nil
	e.wakeTask()
	var to *Holder
	if e.person == nil {
		e.newGen()
	} else {
		to = e.holder()
	}
	l.forget(session, e)
	l.mu.Unlock()
	if to == nil {
		l.changed(Change{Session: session, From: from, Why: WhyTaskEnd, By: task, Time: l.opts.Now()}, nil)
	}
}

// Act admits one input on session for claim, or refuses it: with a
// *HeldError when someone else holds the lease, ErrNoLease when the claim
// names a lease that is not held. Nobody holding admits anyone but a stale
// task. done must be called once the input has been delivered: a takeover
// waits for the inputs admitted before it.
func (l *Leases) Act(session string, c Claim) (done func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.get(session)
	if err := e.admits(session, c); err != nil {
		l.forget(session, e)
		return nil, err
	}
	if p := e.person; p != nil {
		p.lastInput = l.opts.Now()
		p.inputs += max(c.Inputs, 1)
	}
	gen := e.gen
	e.inflight[gen]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if e.inflight[gen]--; e.inflight[gen] == 0 {
			delete(e.inflight, gen)
			if ch := e.drained[gen]; ch != nil {
				close(ch)
				delete(e.drained, gen)
			}
		}
		l.forget(session, e)
	}, nil
}

// admits decides a claim; l.mu is held.
func (e *entry) admits(session string, c Claim) error {
	if p := e.person; p != nil {
		if (c.Lease != "" && c.Lease == p.ID) || (c.Viewer != "" && c.Viewer == p.Viewer) {
			return nil
		}
		if c.Lease != "" {
			return fmt.Errorf("%s: lease %s: %w (control is held by %s %s)", session, c.Lease, ErrNoLease, p.Holder.Kind, p.Holder.Who)
		}
		return &HeldError{Session: session, Holder: p.Holder}
	}
	if c.Lease != "" {
		return fmt.Errorf("%s: lease %s: %w: it was handed back or returned after being idle", session, c.Lease, ErrNoLease)
	}
	if e.task != "" && c.Task != e.task {
		return &HeldError{Session: session, Holder: *e.holder()}
	}
	if e.task == "" && c.Task != "" {
		return fmt.Errorf("%s: task %s: %w", session, c.Task, ErrNotTask)
	}
	return nil
}

// TakeOver gives session's lease to a person (who: the actor; viewer: the
// control viewer asking, if one is). A task holding it is paused: the
// input it has in flight finishes first, and TakeOver returns once it has,
// so no input of the task follows. A viewer that already holds the lease
// gets it again; any other person holding it means a *HeldError.
func (l *Leases) TakeOver(ctx context.Context, session, who, viewer string) (Lease, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return Lease{}, errors.New("control: the fleet is shutting down")
	}
	e := l.get(session)
	if p := e.person; p != nil {
		l.mu.Unlock()
		if viewer != "" && viewer == p.Viewer {
			return p.Lease, nil
		}
		return Lease{}, &HeldError{Session: session, Holder: p.Holder}
	}
	now := l.opts.Now()
	from := e.holder()
	p := &personLease{Lease: Lease{ID: newLeaseID(), Session: session, Holder: Holder{Kind: KindPerson, Who: who, Since: now},
		Viewer: viewer, PausedTask: e.task, IdleSeconds: l.opts.IdleTimeout.Seconds()}, lastInput: now}
	e.person = p
	e.newGen()
	// Input admitted under any earlier holder — the task's, or anyone's
	// while nobody held it — is waited for.
	var drained []chan struct{}
	for g, n := range e.inflight {
		if g >= e.gen || n == 0 {
			continue
		}
		ch := e.drained[g]
		if ch == nil {
			ch = make(chan struct{})
			e.drained[g] = ch
		}
		drained = append(drained, ch)
	}
	p.timer = time.AfterFunc(l.opts.IdleTimeout, func() { l.idle(session, p) })
	hook := e.onTask
	to := e.holder()
	var state TaskState
	if e.task != "" {
		state = e.taskState()
	}
	l.mu.Unlock()

	for _, ch := range drained {
		select {
		case <-ch:
		case <-ctx.Done():
			// The lease is taken either way; only the wait is cut short.
		}
	}
	l.changed(Change{Session: session, From: from, To: to, TaskState: state, Why: WhyTakeover, By: who, Time: now}, hook)
	return p.Lease, nil
}

// HandBack ends a person's lease (leaseID names it) with an optional
// message for the task; by is the actor handing back. When no person holds
// the lease but the task waits for help, leaseID may be empty and message
// is the answer. The task, if any, resumes: it hears of the person's
// control and the message.
func (l *Leases) HandBack(session, by, leaseID, message string) (Change, error) {
	if len(message) > MaxMessageBytes || !utf8.ValidString(message) {
		return Change{}, fmt.Errorf("%w: want UTF-8 text of at most %d bytes", ErrBadMessage, MaxMessageBytes)
	}
	l.mu.Lock()
	e := l.byID[session]
	if e == nil || (e.person == nil && e.question == "") {
		l.mu.Unlock()
		if leaseID != "" {
			return Change{}, fmt.Errorf("%s: lease %s: %w", session, leaseID, ErrNoLease)
		}
		return Change{}, fmt.Errorf("%s: %w", session, ErrNothingHeld)
	}
	if e.person != nil && leaseID != e.person.ID {
		err := error(&HeldError{Session: session, Holder: e.person.Holder})
		if leaseID != "" {
			err = fmt.Errorf("%s: lease %s: %w (control is held by %s %s)", session, leaseID, ErrNoLease, e.person.Holder.Kind, e.person.Holder.Who)
		}
		l.mu.Unlock()
		return Change{}, err
	}
	c, hook := l.release(session, e, WhyHandback, message)
	c.By = by
	l.mu.Unlock()
	l.changed(c, hook)
	return c, nil
}

// idle returns p's lease if it has had no input for the idle timeout.
func (l *Leases) idle(session string, p *personLease) {
	l.mu.Lock()
	e := l.byID[session]
	if l.closed || e == nil || e.person != p {
		l.mu.Unlock()
		return
	}
	if left := l.opts.IdleTimeout - l.opts.Now().Sub(p.lastInput); left > 0 {
		p.timer.Reset(left)
		l.mu.Unlock()
		return
	}
	c, hook := l.release(session, e, WhyIdle, "")
	l.mu.Unlock()
	l.changed(c, hook)
}

// release ends the person's lease, if one is held, and answers the task's
// question with message, if it asked one; l.mu is held.
func (l *Leases) release(session string, e *entry, why, message string) (Change, func(Change)) {
	now := l.opts.Now()
	c := Change{Session: session, From: e.holder(), Why: why, Time: now, Message: message}
	if p := e.person; p != nil {
		p.timer.Stop()
		c.Period = &Period{Who: p.Holder.Who, Duration: now.Sub(p.Holder.Since), InputEvents: p.inputs}
		e.person = nil
		e.newGen()
		if e.task != "" {
			e.periods = append(e.periods, Handback{Period: *c.Period, Message: message, Idle: why == WhyIdle})
		}
	}
	if e.question != "" && why == WhyHandback {
		e.question, e.answered = "", &message
	}
	if e.task != "" {
		e.taskSince = now
	}
	c.To = e.holder()
	if e.task != "" {
		c.TaskState = e.taskState()
	}
	e.wakeTask()
	hook := e.onTask
	l.forget(session, e)
	return c, hook
}

// AskHelp records that the session's task needs a person: it waits in
// WaitTurn until someone hands back with an answer.
func (l *Leases) AskHelp(session, task, question string) error {
	l.mu.Lock()
	e := l.byID[session]
	if e == nil || e.task != task {
		l.mu.Unlock()
		return fmt.Errorf("%s: task %s: %w", session, task, ErrNotTask)
	}
	e.question, e.answered = question, nil
	h := e.holder()
	hook := e.onTask
	l.mu.Unlock()
	l.changed(Change{Session: session, From: h, To: h, TaskState: TaskNeedsHelp, Why: WhyHelp, By: task, Time: l.opts.Now(), Message: question}, hook)
	return nil
}

// WaitTurn blocks while a person holds session's lease or the task waits
// for an answer, and returns what happened meanwhile (nothing, when the
// task had the lease all along). It fails when ctx ends or the task no
// longer has the session.
func (l *Leases) WaitTurn(ctx context.Context, session, task string) (Resumed, error) {
	for {
		l.mu.Lock()
		e := l.byID[session]
		if e == nil || e.task != task {
			l.mu.Unlock()
			return Resumed{}, fmt.Errorf("%s: task %s: %w", session, task, ErrNotTask)
		}
		if e.person == nil && e.question == "" {
			r := Resumed{Periods: e.periods}
			if e.answered != nil {
				r.Answered, r.Answer = true, *e.answered
			}
			e.periods, e.answered = nil, nil
			l.mu.Unlock()
			return r, nil
		}
		turn := e.turn
		l.mu.Unlock()
		select {
		case <-turn:
		case <-ctx.Done():
			return Resumed{}, context.Cause(ctx)
		}
	}
}

func newLeaseID() string {
	var b [12]byte
	rand.Read(b[:])
	return "lease_" + hex.EncodeToString(b[:])
}

// MaxMessageBytes bounds a hand-back message (it is shown to the model).
const MaxMessageBytes = 4 << 10
