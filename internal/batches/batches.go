// Package batches dispatches one goal to many sessions: one task per
// session through the tasks manager (its one-task-per-session rule and
// daily cap hold for each), each session's outcome recorded without failing
// the rest, and the member tasks followed as one batch. Batches are stored,
// so a batch outlives a fleet restart (its tasks end interrupted).
package batches

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"atelier/internal/control"
	"atelier/internal/sessions"
	"atelier/internal/store"
	"atelier/internal/tasks"
)

// Outcomes of one member session.
const (
	Started  = "started"   // its task runs
	Busy     = "busy"      // it already runs a task
	Held     = "held"      // a person holds its control
	Stopped  = "stopped"   // its desktop does not run
	NotFound = "not_found" // no such session
	Refused  = "refused"   // another refusal; the message says which
)

// MaxSessions bounds the sessions one batch names.
const MaxSessions = 500

// Errors callers branch on.
var (
	// ErrInvalid: the selection is refused (none, both, too many).
	ErrInvalid = errors.New("invalid batch")
	// ErrNoMatch: no session carries the label.
	ErrNoMatch = errors.New("no session matches")
	// ErrNotFound: no batch has this id.
	ErrNotFound = errors.New("batch not found")
)

// Tasks is what a batch needs of the tasks manager.
type Tasks interface {
	Submit(ctx context.Context, sessionID string, s tasks.Spec) (tasks.Task, error)
	Get(ctx context.Context, id string) (tasks.Task, error)
	Subscribe(ctx context.Context, id string, after int) (<-chan tasks.Event, error)
}

// Sessions lists the sessions a label selects.
type Sessions interface {
	List(ctx context.Context) ([]sessions.Session, error)
}

// Manager dispatches and follows batches.
type Manager struct {
	Store    *store.Store
	Tasks    Tasks
	Sessions Sessions
	Now      func() time.Time // nil: time.Now
}

// Selection names a batch's sessions: by id, or every session with a label.
type Selection struct {
	SessionIDs []string
	Label      string
}

// Batch is a batch with its members as they stand.
type Batch struct {
	ID        string
	Goal      string
	Selector  string
	CreatedAt time.Time
	Members   []Member
}

// Member is one session of a batch; Task is set for a started one (its
// events left out but the last step).
type Member struct {
	SessionID string
	Outcome   string
	Message   string
	Task      *tasks.Task
	LastStep  *tasks.Event
}

// Live reports whether any member's task still runs (or waits for a
// person).
func (b Batch) Live() bool {
	return slices.ContainsFunc(b.Members, func(m Member) bool { return m.Task != nil && m.Task.Status.Live() })
}

// Event is one event of a member's task, as a batch's stream carries it.
type Event struct {
	SessionID string
	TaskID    string
	Event     tasks.Event
}

func newBatchID() string {
	var b [8]byte
	rand.Read(b[:])
	return "batch_" + hex.EncodeToString(b[:])
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// resolve turns a selection into session ids, in order, without repeats.
func (m *Manager) resolve(ctx context.Context, sel Selection) (ids []string, selector string, err error) {
	switch {
	case len(sel.SessionIDs) > 0 && sel.Label != "":
		return nil, "", fmt.Errorf("%w: give session_ids or label, not both", ErrInvalid)
	case len(sel.SessionIDs) > MaxSessions:
		return nil, "", fmt.Errorf("%w: %d sessions; a batch takes at most %d", ErrInvalid, len(sel.SessionIDs), MaxSessions)
	case len(sel.SessionIDs) > 0:
		for _, id := range sel.SessionIDs {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		return ids, "", nil
	case strings.TrimSpace(sel.Label) == "":
		return nil, "", fmt.Errorf("%w: name the sessions: session_ids or label", ErrInvalid)
	}
	all, err := m.Sessions.List(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("list sessions: %w", err)
	}
	for _, s := range all {
		if s.Label == sel.Label {
			ids = append(ids, s.ID)
		}
	}
	if len(ids) == 0 {
		return nil, "", fmt.Errorf("%w: no session has the label %q", ErrNoMatch, sel.Label)
	}
	if len(ids) > MaxSessions {
		return nil, "", fmt.Errorf("%w: the label %q selects %d sessions; a batch takes at most %d", ErrInvalid, sel.Label, len(ids), MaxSessions)
	}
	return ids, "label=" + sel.Label, nil
}

// Dispatch starts one task per selected session. A session that cannot
// take it is reported in its member's outcome; the request fails only when
// the selection or the spec itself is refused (then no task started).
func (m *Manager) Dispatch(ctx context.Context, sel Selection, spec tasks.Spec) (Batch, error) {
	ids, selector, err := m.resolve(ctx, sel)
	if err != nil {
		return Batch{}, err
	}
	members := make([]store.BatchMember, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			t, err := m.Tasks.Submit(ctx, id, spec)
			members[i] = store.BatchMember{SessionID: id, TaskID: t.ID, Outcome: outcome(err)}
			if err != nil {
				members[i].Message, errs[i] = err.Error(), err
			}
		})
	}
	wg.Wait()
	// A spec refused for one session is refused for all: fail the request
	// as a single submit would.
	if !slices.ContainsFunc(members, func(mb store.BatchMember) bool { return mb.Outcome == Started }) {
		for _, err := range errs {
			if errors.Is(err, tasks.ErrInvalid) || errors.Is(err, tasks.ErrUnpriced) || errors.Is(err, tasks.ErrClosed) {
				return Batch{}, err
			}
		}
	}
	goal := strings.TrimSpace(spec.Goal)
	if goal == "" {
		goal = "run the script"
	}
	row := store.Batch{ID: newBatchID(), Goal: goal, Selector: selector, CreatedAt: m.now().UTC(), Members: members}
	if err := m.Store.InsertBatch(context.WithoutCancel(ctx), row); err != nil {
		return Batch{}, err
	}
	return m.fill(ctx, row)
}

// outcome names what err made of a member's submit.
func outcome(err error) string {
	switch {
	case err == nil:
		return Started
	case errors.Is(err, tasks.ErrBusy):
		return Busy
	case errors.Is(err, control.ErrHeld):
		return Held
	case errors.Is(err, sessions.ErrNoSession), errors.Is(err, sessions.ErrBadID):
		return NotFound
	case errors.Is(err, tasks.ErrNoDesktop):
		return Stopped
	}
	return Refused
}

// Get returns a batch with its members' tasks as they stand.
func (m *Manager) Get(ctx context.Context, id string) (Batch, error) {
	row, err := m.Store.GetBatch(ctx, id)
	if errors.Is(err, store.ErrBatchNotFound) {
		return Batch{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Batch{}, err
	}
	return m.fill(ctx, row)
}

// List returns the newest batches, their members filled.
func (m *Manager) List(ctx context.Context, limit int) ([]Batch, error) {
	rows, err := m.Store.ListBatches(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Batch, 0, len(rows))
	for _, r := range rows {
		b, err := m.Get(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func (m *Manager) fill(ctx context.Context, row store.Batch) (Batch, error) {
	b := Batch{ID: row.ID, Goal: row.Goal, Selector: row.Selector, CreatedAt: row.CreatedAt, Members: make([]Member, len(row.Members))}
	for i, mb := range row.Members {
		b.Members[i] = Member{SessionID: mb.SessionID, Outcome: mb.Outcome, Message: mb.Message}
		if mb.TaskID == "" {
			continue
		}
		t, err := m.Tasks.Get(ctx, mb.TaskID)
		if err != nil {
			return Batch{}, fmt.Errorf("batch %s: task %s: %w", row.ID, mb.TaskID, err)
		}
		for _, ev := range slices.Backward(t.Events) {
			if ev.Type == tasks.EventStep {
				b.Members[i].LastStep = &ev
				break
			}
		}
		t.Events = nil
		b.Members[i].Task = &t
	}
	return b, nil
}

// Follow streams the events of every started member's task, merged, from
// the first; the channel closes once every member task has ended (or ctx
// ends). Read the batch again then for its final state.
func (m *Manager) Follow(ctx context.Context, id string) (<-chan Event, error) {
	b, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make(chan Event, 16)
	var wg sync.WaitGroup
	for _, mb := range b.Members {
		if mb.Task == nil {
			continue
		}
		evs, err := m.Tasks.Subscribe(ctx, mb.Task.ID, 0)
		if err != nil {
			return nil, fmt.Errorf("batch %s: follow %s: %w", id, mb.Task.ID, err)
		}
		wg.Go(func() {
			for ev := range evs {
				select {
				case out <- Event{SessionID: mb.SessionID, TaskID: mb.Task.ID, Event: ev}:
				case <-ctx.Done():
					// Subscribe closes evs once ctx ends; drain it.
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out, nil
}
