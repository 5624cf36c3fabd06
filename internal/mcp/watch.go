package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"atelier/internal/apitype"
	"atelier/internal/audit"
	"atelier/internal/sessions"
)

// retryMax bounds the pause before a dropped fleet stream is reopened.
const retryMax = 30 * time.Second

// watch turns the fleet's events into MCP change notifications: the
// session list's (from GET /events, which also keeps one audit resource
// listed per session, so the resource list changes as sessions come and
// go) and each subscribed session audit's (from its audit, followed while
// someone subscribes). Its goroutines end with Close.
type watch struct {
	srv *sdk.Server
	t   tools
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once // starts the sessions' follower

	mu     sync.Mutex
	closed bool            // no goroutine starts once set
	listed map[string]bool // sessions whose audit resource is listed
	// subs holds who subscribes to each audit resource, and follows its
	// follower's cancel.
	subs    map[string]map[*sdk.ServerSession]bool
	follows map[string]context.CancelFunc
	// ended are the MCP sessions whose end is watched, to drop their
	// subscriptions (the SDK calls no unsubscribe for them).
	ended map[*sdk.ServerSession]bool
}

func newWatch(t tools, log *slog.Logger) *watch {
	ctx, cancel := context.WithCancel(context.Background())
	return &watch{t: t, log: log, ctx: ctx, cancel: cancel, listed: map[string]bool{},
		subs: map[string]map[*sdk.ServerSession]bool{}, follows: map[string]context.CancelFunc{}, ended: map[*sdk.ServerSession]bool{}}
}

// initialized starts following the fleet's sessions once a client is
// initialized: a fleet serving /mcp answers its own API only once it
// serves.
func (w *watch) initialized(context.Context, *sdk.InitializedRequest) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.startLocked()
}

// startLocked starts following the fleet's sessions, once. A client of
// the newer protocol sends no initialized notification: its first
// subscription starts it. w.mu must be held.
func (w *watch) startLocked() {
	if !w.closed {
		w.once.Do(func() { w.wg.Go(w.followSessions) })
	}
}

// close ends the MCP sessions and stops every goroutine of the watch.
func (w *watch) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.cancel()
	for ss := range w.srv.Sessions() {
		ss.Close()
	}
	w.wg.Wait()
}

// followSessions keeps the audit resources listed and tells subscribers
// of the session list of each lifecycle event, reopening the stream when
// it drops (and listing the sessions again: events may have been lost).
func (w *watch) followSessions() {
	for pause := time.Second; ; {
		err := w.t.c.SessionEvents(w.ctx, w.sync, func(ev apitype.SessionEvent) error {
			pause = time.Second
			w.changed(ev)
			return nil
		})
		if w.ctx.Err() != nil {
			return
		}
		w.log.Warn("mcp: the fleet's session events stopped; reopening", "err", err, "in", pause)
		select {
		case <-w.ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, retryMax) // reset by the next event
	}
}

// sync lists an audit resource for each of the fleet's sessions, and
// none for others, then tells the session list's subscribers.
func (w *watch) sync() {
	all, err := w.t.c.Sessions(w.ctx)
	if err != nil {
		w.log.Warn("mcp: list sessions", "err", err)
		return
	}
	now := map[string]bool{}
	for _, s := range all {
		now[s.ID] = true
		w.list(s.ID, true)
	}
	w.mu.Lock()
	var gone []string
	for id := range w.listed {
		if !now[id] {
			gone = append(gone, id)
		}
	}
	w.mu.Unlock()
	for _, id := range gone {
		w.list(id, false)
	}
	w.updated(sessionsURI)
}

// list adds or removes session id's audit resource; the SDK tells the
// clients the list changed.
func (w *watch) list(id string, present bool) {
	w.mu.Lock()
	was := w.listed[id]
	if present {
		w.listed[id] = true
	} else {
		delete(w.listed, id)
	}
	w.mu.Unlock()
	switch {
	case present && !was:
		w.srv.AddResource(&sdk.Resource{URI: auditURI(id), Name: "audit of " + id, MIMEType: mimeJSONL,
			Description: "The session's most recent audit entries."}, w.t.auditResource)
	case !present && was:
		w.srv.RemoveResources(auditURI(id))
	}
}

// changed handles one lifecycle event. A desktop that starts becomes
// ready later, with no event of its own: its readiness is waited for.
func (w *watch) changed(ev apitype.SessionEvent) {
	w.list(ev.Session, ev.Event != sessions.EventDeleted)
	w.updated(sessionsURI)
	switch ev.Event {
	case sessions.EventCreated, sessions.EventStarted, sessions.EventRestarted:
		w.wg.Go(func() {
			if _, err := w.t.c.Session(w.ctx, ev.Session, readyWait); err == nil {
				w.updated(sessionsURI)
			}
		})
	}
}

// updated tells uri's subscribers it changed.
func (w *watch) updated(uri string) {
	if err := w.srv.ResourceUpdated(w.ctx, &sdk.ResourceUpdatedNotificationParams{URI: uri}); err != nil {
		w.log.Warn("mcp: notify", "uri", uri, "err", err)
	}
}

// subscribe records a subscription; the first to a session's audit
// starts following it from its last entry.
func (w *watch) subscribe(ctx context.Context, req *sdk.SubscribeRequest) error {
	uri := req.Params.URI
	var last int64
	if uri != sessionsURI {
		err := w.t.readAudit(ctx, uri, nil, func(line []byte) (err error) {
			last, err = seqOf(line)
			return err
		})
		if err != nil {
			return err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("the server is closing")
	}
	w.startLocked()
	if !w.ended[req.Session] {
		w.ended[req.Session] = true
		ss := req.Session
		w.wg.Go(func() {
			ss.Wait() // close ends it too
			w.drop(ss)
		})
	}
	if uri == sessionsURI {
		return nil
	}
	if w.subs[uri] == nil {
		w.subs[uri] = map[*sdk.ServerSession]bool{}
	}
	w.subs[uri][req.Session] = true
	if w.follows[uri] == nil {
		ctx, cancel := context.WithCancel(w.ctx)
		w.follows[uri] = cancel
		w.wg.Go(func() { w.followAudit(ctx, uri, last) })
	}
	return nil
}

func (w *watch) unsubscribe(_ context.Context, req *sdk.UnsubscribeRequest) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unsubscribeLocked(req.Params.URI, req.Session)
	return nil
}

// unsubscribeLocked drops ss's subscription to uri; the last one out
// stops the follower. w.mu must be held.
func (w *watch) unsubscribeLocked(uri string, ss *sdk.ServerSession) {
	delete(w.subs[uri], ss)
	if len(w.subs[uri]) > 0 {
		return
	}
	delete(w.subs, uri)
	if cancel := w.follows[uri]; cancel != nil {
		cancel()
		delete(w.follows, uri)
	}
}

// drop forgets an ended MCP session's subscriptions.
func (w *watch) drop(ss *sdk.ServerSession) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.ended, ss)
	for uri := range w.subs {
		w.unsubscribeLocked(uri, ss)
	}
}

// followAudit tells uri's subscribers of each entry appended to the
// audit it names after seq last, until ctx ends or the audit is gone.
func (w *watch) followAudit(ctx context.Context, uri string, last int64) {
	for pause := time.Second; ; {
		q := url.Values{audit.ParamFollow: {"1"}, audit.ParamSince: {strconv.FormatInt(last, 10)}}
		err := w.t.readAudit(ctx, uri, q, func(line []byte) error {
			seq, err := seqOf(line)
			if err != nil {
				return err
			}
			last, pause = seq, time.Second
			w.updated(uri)
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		if _, gone := errors.AsType[*jsonrpc.Error](err); gone {
			w.updated(uri) // its reader finds it gone
			return
		}
		w.log.Warn("mcp: audit follow stopped; reopening", "uri", uri, "err", err, "in", pause)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, retryMax) // reset by the next event
	}
}

// seqOf returns the seq of an audit line.
func seqOf(line []byte) (int64, error) {
	var e struct {
		Seq int64 `json:"seq"`
	}
	err := json.Unmarshal(line, &e)
	return e.Seq, err
}
