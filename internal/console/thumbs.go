package console

import (
	"context"
	"sync"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/sessions"
)

// Thumbnail shape: small JPEGs, shared by every viewer for thumbFresh, so
// many open consoles cost one capture per session per interval.
const (
	thumbScale   = 0.25
	thumbQuality = 50
	thumbFresh   = 1500 * time.Millisecond
	thumbTimeout = 5 * time.Second
	// thumbForget drops a thumbnail nobody asked for in this long.
	thumbForget = time.Minute
)

// Shooter takes a session's screenshot (the sessions manager).
type Shooter interface {
	Screenshot(ctx context.Context, id string, o sessions.ScreenshotOptions) (*agentapi.Image, error)
}

// thumbs caches each session's latest thumbnail; one capture per session
// runs at a time and every viewer waiting shares its result.
type thumbs struct {
	base  context.Context // ends captures when the console closes
	shots Shooter
	now   func() time.Time
	mu    sync.Mutex
	byID  map[string]*thumb
}

type thumb struct {
	data   []byte
	err    error
	at     time.Time     // when data was taken
	asked  time.Time     // when it was last asked for
	taking chan struct{} // closed when the capture in flight ends; nil when none
}

// get returns a thumbnail of session id no older than thumbFresh (or the
// error of the capture that tried), capturing one if needed.
func (t *thumbs) get(ctx context.Context, id string) ([]byte, error) {
	t.mu.Lock()
	now := t.now()
	for k, th := range t.byID {
		if th.taking == nil && now.Sub(th.asked) > thumbForget {
			delete(t.byID, k)
		}
	}
	th := t.byID[id]
	if th == nil {
		th = &thumb{}
		t.byID[id] = th
	}
	th.asked = now
	if th.taking == nil && (th.at.IsZero() || now.Sub(th.at) >= thumbFresh) {
		th.taking = make(chan struct{})
		// The capture is the cache's, not the first asker's: it finishes
		// for the others even if that one leaves.
		go t.take(id, th)
	}
	wait := th.taking
	t.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return th.data, th.err
}

func (t *thumbs) take(id string, th *thumb) {
	ctx, cancel := context.WithTimeout(t.base, thumbTimeout)
	defer cancel()
	im, err := t.shots.Screenshot(ctx, id, sessions.ScreenshotOptions{Format: "jpeg", Scale: thumbScale, Quality: thumbQuality})
	t.mu.Lock()
	defer t.mu.Unlock()
	th.err, th.at = err, t.now()
	if err == nil {
		th.data = im.Data
	}
	close(th.taking)
	th.taking = nil
}
