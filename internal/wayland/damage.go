package wayland

import (
	"context"
	"sync"
	"time"
)

// damageWatch tells when the output changes. It keeps a one-pixel
// copy_with_damage frame armed at all times: the compositor answers it at
// the first commit that changes anything on the output (the damage is the
// whole output's, whatever the region), and each answer bumps a counter.
//
// wlroots keeps one damage record per client and output, cleared by the
// first with-damage frame a commit answers, so every with-damage copy on
// this connection goes through here; two watchers would steal each
// other's damage.
//
// Why a counter can be trusted: a second frame is always prepared (its
// buffer parameters known) while the first is armed, and the answer's
// handler arms it before anyone can read the bumped counter. A reader that
// saw counter n while armed, and then sent a request, has the arming
// before its request on the socket; so any change the compositor shows
// after handling that request answers an armed frame and moves the
// counter past n. Between an answer and the re-arming a change can go
// unreported, but the counter has already moved then, and Seq reports
// the watch unarmed until the next frame is armed.
type damageWatch struct {
	mu      sync.Mutex
	running bool
	seq     uint64        // answered frames (changes seen), plus watch restarts
	armed   bool          // a frame waits for damage
	spare   uint32        // a prepared frame not yet asked to copy, or 0
	changed chan struct{} // closed and replaced at each bump
	last    time.Time     // when seq last moved
	buf     capturer      // the one-pixel buffer every watch frame copies into
}

// start makes sure the watch runs. w.mu is held.
func (w *damageWatch) start(d *Display) error {
	if w.running {
		return nil
	}
	if d.screencopyVersion < 2 {
		return ErrNoDamage
	}
	if w.changed == nil {
		w.changed = make(chan struct{})
	}
	w.running = true
	w.bump()
	return w.prepare(d)
}

// bump records a change. w.mu is held.
func (w *damageWatch) bump() {
	w.seq++
	w.last = time.Now()
	close(w.changed)
	w.changed = make(chan struct{})
}

// prepare asks for a new one-pixel frame; its handler arms it, or keeps
// it as the spare, once the compositor has described its buffer. w.mu is
// held.
func (w *damageWatch) prepare(d *Display) error {
	var params frameEvent
	_, err := d.Create(func(e *Event) {
		id := e.Sender
		w.mu.Lock()
		defer w.mu.Unlock()
		switch e.Opcode {
		case 0: // buffer (shm): the parameters; version 2 sends nothing after it
			params = frameEvent{format: e.Uint(), w: e.Uint(), h: e.Uint(), stride: e.Uint()}
			if d.screencopyVersion < 3 {
				w.prepared(d, id, params)
			}
		case 6: // buffer_done
			w.prepared(d, id, params)
		case 2: // ready: the output changed
			d.Send(NewMessage(id, 1)) // destroy
			w.bump()
			w.armed = false
			w.arm(d)
		case 3: // failed: stop; the next reader starts over
			d.Send(NewMessage(id, 1))
			w.bump()
			w.armed, w.running = false, false
			if w.spare != 0 {
				d.Send(NewMessage(w.spare, 1))
				w.spare = 0
			}
		}
	}, func(id uint32) *Message {
		return NewMessage(d.screencopy, 1).Uint(id).Int(0).Uint(d.output).Int(0).Int(0).Int(1).Int(1)
	})
	return err
}

// prepared takes a frame whose buffer is described: it is armed at once
// if nothing is, else kept as the spare. w.mu is held.
func (w *damageWatch) prepared(d *Display, id uint32, params frameEvent) {
	if !w.running || params.w == 0 {
		d.Send(NewMessage(id, 1))
		return
	}
	if err := w.buf.ensure(d.Conn, d.shm, params); err != nil {
		d.Send(NewMessage(id, 1))
		return
	}
	w.spare = id
	if !w.armed {
		w.arm(d)
	}
}

// arm asks the spare frame, if there is one, to copy on the next damage,
// and prepares the next spare. w.mu is held.
func (w *damageWatch) arm(d *Display) {
	if w.spare == 0 {
		return // the frame being prepared arms itself
	}
	id := w.spare
	w.spare = 0
	if d.Send(NewMessage(id, 2).Uint(w.buf.buffer)) != nil { // copy_with_damage
		return
	}
	w.armed = true
	w.prepare(d)
}

// DamageSeq reports a counter that moves whenever the output changes, and
// whether it can be trusted: two equal counters read while armed mean no
// change was shown between the first read and the second (a change the
// compositor showed before the first read has moved it already: the read
// waits for the compositor to deliver what it sent before).
func (d *Display) DamageSeq(ctx context.Context) (seq uint64, armed bool, err error) {
	w := &d.damage
	w.mu.Lock()
	err = w.start(d)
	w.mu.Unlock()
	if err != nil {
		return 0, false, err
	}
	if err := d.Roundtrip(ctx); err != nil {
		return 0, false, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq, w.armed && w.running, nil
}

// DamageSeqNow is DamageSeq without its round trip, for a caller that has
// just made one; it does not start the watch.
func (d *Display) DamageSeqNow() (seq uint64, armed bool) {
	w := &d.damage
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seq, w.armed && w.running
}

// WaitDamage returns once the damage counter has moved past after, or
// when timeout has passed, with the counter as it then is.
func (d *Display) WaitDamage(ctx context.Context, after uint64, timeout time.Duration) (uint64, error) {
	w := &d.damage
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		w.mu.Lock()
		seq, changed := w.seq, w.changed
		w.mu.Unlock()
		if seq != after {
			return seq, nil
		}
		select {
		case <-changed:
		case <-t.C:
			return seq, nil
		case <-ctx.Done():
			return seq, ctx.Err()
		case <-d.Done():
			return seq, d.closedErr()
		}
	}
}

// WaitStill returns once the output has shown no change for quiet, or
// when ceiling has passed, whichever comes first. still says which;
// frames counts the changes seen since the previous WaitStill ended (so
// a change made just before the call counts, and its repaint is waited
// out as part of the quiet period).
func (d *Display) WaitStill(ctx context.Context, quiet, ceiling time.Duration) (still bool, frames int, err error) {
	d.settleMu.Lock()
	defer d.settleMu.Unlock()
	began := time.Now()
	deadline := began.Add(ceiling)
	seen := d.settled
	defer func() { d.settled = seen }()
	if _, _, err := d.DamageSeq(ctx); err != nil {
		return false, 0, err
	}
	w := &d.damage
	for {
		w.mu.Lock()
		seq, changed, last, running := w.seq, w.changed, w.last, w.running
		if !running {
			err = w.start(d)
		}
		w.mu.Unlock()
		if err != nil {
			return false, frames, err
		}
		if seen != 0 && seq != seen {
			frames += int(seq - seen)
		}
		seen = seq
		now := time.Now()
		left := deadline.Sub(now)
		if left <= 0 {
			return false, frames, nil
		}
		// The quiet period runs from the last change or the call, whichever
		// is later: a change just asked for may not have been painted yet.
		from := began
		if last.After(from) {
			from = last
		}
		wait := min(quiet-now.Sub(from), left)
		if wait <= 0 {
			return true, frames, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-changed:
			t.Stop()
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, frames, ctx.Err()
		case <-d.Done():
			t.Stop()
			return false, frames, d.closedErr()
		}
	}
}
