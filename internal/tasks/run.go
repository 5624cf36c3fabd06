package tasks

import (
	"context"
	"slices"
	"sync"
)

// run is a task in flight: its record and its events, which subscribers
// follow.
type run struct {
	cancel context.CancelCauseFunc

	mu     sync.Mutex
	task   Task
	events []Event
	ended  bool
	wake   chan struct{} // closed and replaced on every change
}

func newRun(t Task) *run { return &run{task: t, wake: make(chan struct{})} }

// add appends ev (numbering it) and updates the record under one lock.
// Nothing follows the final event: after it, add returns an event with
// ID 0 and changes nothing.
func (r *run) add(ev Event, update func(*Task)) Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return Event{}
	}
	ev.ID = len(r.events) + 1
	r.events = append(r.events, ev)
	if update != nil {
		update(&r.task)
	}
	if ev.Type == EventEnd {
		r.ended = true
	}
	close(r.wake)
	r.wake = make(chan struct{})
	return ev
}

func (r *run) snapshot() Task {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.task
	t.Events = slices.Clone(r.events)
	return t
}

// follow sends ch every event after the id given, as they come, and closes
// ch after the final one or when ctx ends.
func (r *run) follow(ctx context.Context, after int, ch chan<- Event) {
	defer close(ch)
	for {
		r.mu.Lock()
		var pending []Event
		if after < len(r.events) {
			pending = slices.Clone(r.events[max(after, 0):])
		}
		ended, wake := r.ended, r.wake
		r.mu.Unlock()
		for _, ev := range pending {
			select {
			case ch <- ev:
				after = ev.ID
			case <-ctx.Done():
				return
			}
		}
		if ended && len(pending) == 0 {
			return
		}
		if len(pending) > 0 {
			continue // look again before sleeping: more may have come
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return
		}
	}
}
