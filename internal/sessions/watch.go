package sessions

import (
	"context"
	"sync"
)

// Change is one lifecycle event of a session (EventCreated, …), as Watch
// reports it.
type Change struct {
	Session string
	Event   string
}

// watchBuffer is how many changes a watcher may fall behind before it is
// dropped.
const watchBuffer = 64

// watchers fans the manager's lifecycle events out to its watchers.
type watchers struct {
	mu   sync.Mutex
	subs map[chan Change]struct{}
}

// Watch returns the lifecycle events of every session from now on. The
// channel is closed when ctx ends, when the manager closes, or when the
// reader falls watchBuffer events behind (it missed some: it should read
// the sessions again).
func (m *Manager) Watch(ctx context.Context) <-chan Change {
	w := &m.watchers
	ch := make(chan Change, watchBuffer)
	w.mu.Lock()
	if w.subs == nil {
		w.subs = map[chan Change]struct{}{}
	}
	w.subs[ch] = struct{}{}
	w.mu.Unlock()
	context.AfterFunc(ctx, func() { w.drop(ch) })
	return ch
}

// drop closes ch unless it was already.
func (w *watchers) drop(ch chan Change) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.subs[ch]; ok {
		delete(w.subs, ch)
		close(ch)
	}
}

// publish tells every watcher of c, dropping those too far behind: an
// event must never wait on a slow reader.
func (w *watchers) publish(c Change) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs {
		select {
		case ch <- c:
		default:
			delete(w.subs, ch)
			close(ch)
		}
	}
}

// closeAll ends every watch, as the manager closes.
func (w *watchers) closeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs {
		delete(w.subs, ch)
		close(ch)
	}
}
