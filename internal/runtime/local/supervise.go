package local

import (
	"context"
	"io"
	"os"
	"time"
)

// Restart backoff of a sandbox that keeps exiting.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
	// healthyRun is how long a sandbox must run for its backoff to reset.
	healthyRun = time.Minute
)

// supervisor is the goroutine that restarts one desktop's sandbox.
type supervisor struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// supervise starts d's supervisor unless one runs. d.op must be held.
func (d *desk) supervise(r *Runtime) {
	if d.sup != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &supervisor{cancel: cancel, done: make(chan struct{})}
	d.sup = s
	go func() {
		defer close(s.done)
		d.superviseLoop(ctx, r)
	}()
}

// unsupervise stops d's supervisor, if any, and waits for it; the sandbox
// is left as it is. d.op must be held.
func (d *desk) unsupervise() {
	if d.sup == nil {
		return
	}
	d.sup.cancel()
	<-d.sup.done
	d.sup = nil
}

// superviseLoop waits for the sandbox to exit and starts it again, with
// backoff, until ctx ends. Every lifecycle operation stops the supervisor
// before it touches the sandbox, so the relaunch here needs no d.op.
func (d *desk) superviseLoop(ctx context.Context, r *Runtime) {
	backoff := minBackoff
	for {
		d.mu.Lock()
		p := d.proc
		d.mu.Unlock()
		if p != nil {
			t0 := time.Now()
			if err := p.wait(ctx); err != nil {
				if ctx.Err() == nil {
					r.log.Error("desktop supervision ends", "desktop", d.id, "err", err)
				}
				return
			}
			r.log.Warn("desktop exited while it should run; restarting", "desktop", d.id, "pid", p.pid, "status", p.exit, "ran", time.Since(t0).Round(time.Millisecond), "log_tail", tail(d.logFile(), 1024))
			d.mu.Lock()
			d.proc, d.restarting = nil, true
			d.mu.Unlock()
			p.close()
			if time.Since(t0) > healthyRun {
				backoff = minBackoff
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
		np, err := r.launch(ctx, d)
		if err != nil {
			r.log.Error("desktop restart", "desktop", d.id, "err", err, "retry_in", backoff)
			continue
		}
		d.mu.Lock()
		d.proc = np
		d.restarts++
		d.mu.Unlock()
		r.log.Info("desktop restarted", "desktop", d.id, "pid", np.pid)
	}
}

// tail returns the last n bytes (at most) of the file at path, for logs.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		f.Seek(fi.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, n))
	return string(b)
}
