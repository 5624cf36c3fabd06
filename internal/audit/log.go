package audit

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// SyncPolicy says when appended entries reach the disk.
type SyncPolicy int

// Sync policies.
const (
	// SyncAlways: Append returns only after fsync, so an acknowledged entry
	// is on disk. Writers waiting at the same time share one fsync.
	SyncAlways SyncPolicy = iota
	// SyncInterval: a background fsync every Options.Interval; a crash of
	// the machine may lose the last interval.
	SyncInterval
	// SyncNever leaves it to the kernel; files are fsync'd when closed.
	SyncNever
)

var syncNames = []string{"always", "interval", "never"}

// String returns the policy's name, as ParseSyncPolicy reads it.
func (p SyncPolicy) String() string {
	if p < 0 || int(p) >= len(syncNames) {
		return fmt.Sprintf("SyncPolicy(%d)", int(p))
	}
	return syncNames[p]
}

// ParseSyncPolicy reads "always", "interval" or "never".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	for i, n := range syncNames {
		if s == n {
			return SyncPolicy(i), nil
		}
	}
	return 0, fmt.Errorf("audit sync policy %q: want one of %s", s, strings.Join(syncNames, ", "))
}

// Options configure a Log. Zero values take the defaults noted.
type Options struct {
	// Sync is the fsync policy. Default SyncAlways.
	Sync SyncPolicy
	// Interval is the period of SyncInterval. Default 100ms.
	Interval time.Duration
	// MaxOpenFiles bounds the session files kept open; the least recently
	// written is closed first. Default 64.
	MaxOpenFiles int
	// RedactTypedText replaces the text of "type" actions with its length
	// and SHA-256, for fleets where typed text may hold secrets.
	RedactTypedText bool
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger reports repairs and background fsync errors. Default: discard.
	Logger *slog.Logger
	// OnAppend, if set, is told how long each write of an entry took
	// (with its fsync under SyncAlways) and its error, for the fleet's
	// metrics. It must not block.
	OnAppend func(took time.Duration, err error)
}

// Log is a directory of per-session audit files. It is safe for
// concurrent use; one process at a time may open a directory.
type Log struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File // holds the directory's flock

	mu       sync.Mutex
	sessions map[string]*session
	lru      *list.List // of *session with an open file, most recent first
	closed   bool

	done chan struct{} // closed by Close: stops the syncer, ends follows
	wg   sync.WaitGroup
}

// session is the state of one session's file. Its object lives until
// Close or Purge; only the file is closed when the LRU evicts it.
type session struct {
	name, path string

	mu      sync.Mutex
	cond    sync.Cond // on mu: a sync ended or the file closed
	f       *os.File  // nil while closed
	size    int64     // bytes of whole lines in f
	seq     int64     // seq of the last line
	prev    string    // hash of the last line
	synced  int64     // last seq known to be on disk
	syncing bool      // a writer is in fsync, with mu released
	// epoch changes when an fsync fails: the fate of lines written before
	// it is unknown, so their writers get an error, and the file is
	// reopened and rescanned.
	epoch  int
	notify chan struct{} // closed at the next append; made by followers
	purged bool

	elem *list.Element // in Log.lru; guarded by Log.mu
}

// Open opens the audit directory dir, creating it if needed, and locks it
// against other processes. Session files are opened on first use.
func Open(dir string, opts Options) (*Log, error) {
	if opts.Interval <= 0 {
		opts.Interval = 100 * time.Millisecond
	}
	if opts.MaxOpenFiles <= 0 {
		opts.MaxOpenFiles = 64
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sync < SyncAlways || opts.Sync > SyncNever {
		return nil, fmt.Errorf("open audit %s: unknown sync policy %d", dir, opts.Sync)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open audit %s: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit %s: %w", dir, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open audit %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("open audit %s: lock: %w", dir, err)
	}
	l := &Log{
		dir: dir, opts: opts, log: log, lock: lock,
		sessions: make(map[string]*session),
		lru:      list.New(),
		done:     make(chan struct{}),
	}
	l.repairAll()
	if opts.Sync == SyncInterval {
		l.wg.Go(l.syncEvery)
	}
	return l, nil
}

// repairAll repairs, at start, every session file whose last line a crash
// tore, so the repair is recorded even for a session never written again.
// A file damaged beyond that is logged and left as it is: it must not stop
// the fleet, and appending to it fails with an error naming it.
func (l *Log) repairAll() {
	files, _ := filepath.Glob(filepath.Join(l.dir, "*.jsonl"))
	for _, p := range files {
		name := strings.TrimSuffix(filepath.Base(p), ".jsonl")
		torn, err := tornTail(p)
		if err == nil && torn && CheckSession(name) == nil {
			var s *session
			if s, err = l.session(name); err == nil {
				s.mu.Lock()
				var victims []*session
				if err = l.openLocked(s); err == nil {
					victims = l.touch(s)
				}
				s.mu.Unlock()
				l.evict(victims)
			}
		}
		if err != nil {
			l.log.Error("audit file damaged", "file", p, "err", err)
		}
	}
}

// Dir returns the directory the log writes to.
func (l *Log) Dir() string { return l.dir }

// Path returns the file of a session's audit.
func (l *Log) Path(session string) string { return filepath.Join(l.dir, session+".jsonl") }

// Append writes e as the next entry of e.Session and returns it as
// written. It fills Time, Seq and Prev (whatever e holds there), and Actor
// from ctx (WithActor) when e names none, RequestID likewise. With SyncAlways it returns after
// the line is on disk. A bad entry is refused with ErrBadEntry or
// ErrBadSession and writes nothing. ctx is not a deadline: the event it
// records has happened, so a cancelled request is still audited.
func (l *Log) Append(ctx context.Context, e Entry) (Entry, error) {
	if e.Actor == "" {
		e.Actor = ActorFrom(ctx)
	}
	if e.RequestID == "" {
		e.RequestID = RequestIDFrom(ctx)
	}
	if e.Kind == KindAudit {
		return Entry{}, fmt.Errorf("%w: kind audit is written by the log itself", ErrBadEntry)
	}
	e.Time, e.Seq, e.Prev = time.Time{}, 0, ""
	if err := e.check(); err != nil {
		return Entry{}, err
	}
	if l.opts.RedactTypedText && e.Kind == KindAction {
		a, err := redactTyped(e.Action)
		if err != nil {
			return Entry{}, err
		}
		e.Action = a
	}
	body, err := encodeBody(&e)
	if err != nil {
		return Entry{}, err
	}
	for {
		s, err := l.session(e.Session)
		if err != nil {
			return Entry{}, err
		}
		s.mu.Lock()
		if s.purged { // purged while we waited: the session starts afresh
			s.mu.Unlock()
			continue
		}
		t0 := time.Now()
		e, victims, err := l.appendLocked(s, e, body)
		s.mu.Unlock()
		if l.opts.OnAppend != nil {
			l.opts.OnAppend(time.Since(t0), err)
		}
		l.evict(victims)
		return e, err
	}
}

// appendLocked writes e to s, opening s's file if needed, and waits for
// the policy's fsync. s.mu is held. It returns the sessions whose files
// the LRU bound asks to close, for the caller to evict once s.mu is free.
func (l *Log) appendLocked(s *session, e Entry, body []byte) (Entry, []*session, error) {
	if s.f == nil {
		if err := l.openLocked(s); err != nil {
			return Entry{}, nil, err
		}
	}
	victims := l.touch(s)
	e.Seq, e.Prev, e.Time = s.seq+1, s.prev, l.opts.Now().UTC()
	if err := s.writeLocked(line(body, e.Time, e.Seq, e.Prev)); err != nil {
		return Entry{}, victims, fmt.Errorf("append to audit of %s: %w", s.name, err)
	}
	if l.opts.Sync == SyncAlways {
		if err := s.waitSyncedLocked(e.Seq); err != nil {
			return Entry{}, victims, fmt.Errorf("append to audit of %s: %w", s.name, err)
		}
	}
	return e, victims, nil
}

// session returns the state of a session, creating it.
func (l *Log) session(name string) (*session, error) {
	if err := CheckSession(name); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	s := l.sessions[name]
	if s == nil {
		s = &session{name: name, path: l.Path(name)}
		s.cond.L = &s.mu
		l.sessions[name] = s
	}
	return s, nil
}

// touch marks s, whose file is open, as the most recently used, and
// returns the least recently used sessions beyond the bound. s.mu is held:
// their locks must wait until it is released (see evict).
func (l *Log) touch(s *session) []*session {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.elem == nil {
		s.elem = l.lru.PushFront(s)
	} else {
		l.lru.MoveToFront(s.elem)
	}
	var victims []*session
	for l.lru.Len() > l.opts.MaxOpenFiles {
		v := l.lru.Remove(l.lru.Back()).(*session)
		v.elem = nil
		victims = append(victims, v)
	}
	return victims
}

// evict closes the victims' files, unless one was used again since it
// left the LRU. No session lock may be held: that is what keeps two
// evictions from waiting on each other.
func (l *Log) evict(victims []*session) {
	for _, v := range victims {
		v.mu.Lock()
		l.mu.Lock()
		again := v.elem != nil
		l.mu.Unlock()
		if !again && v.f != nil {
			if err := v.closeLocked(); err != nil {
				l.log.Error("close audit file", "session", v.name, "err", err)
			}
		}
		v.mu.Unlock()
	}
}

// writeLocked appends one encoded line.
func (s *session) writeLocked(line []byte) error {
	n, err := s.f.Write(line)
	if err != nil {
		// A short write leaves a torn line: cut it so the next line still
		// chains to the last whole one.
		if n > 0 {
			if terr := s.f.Truncate(s.size); terr != nil {
				s.failLocked()
				return errors.Join(err, terr)
			}
		}
		return err
	}
	s.size += int64(n)
	s.seq++
	s.prev = hashLine(line[:len(line)-1])
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
	return nil
}

var errSyncLost = errors.New("fsync failed: entry may not be on disk")

// waitSyncedLocked returns once seq is on disk. The first waiter to find
// no fsync running runs one for every line written so far; the others
// wait for it (group commit).
func (s *session) waitSyncedLocked(seq int64) error {
	epoch := s.epoch
	for {
		switch {
		case s.epoch != epoch:
			return errSyncLost
		case s.synced >= seq:
			return nil
		case s.syncing:
			s.cond.Wait()
		default:
			s.syncLocked()
		}
	}
}

// syncLocked fsyncs s's file with s.mu released, so writers keep writing
// while the disk works.
func (s *session) syncLocked() error {
	s.syncing = true
	f, upto := s.f, s.seq
	s.mu.Unlock()
	err := f.Sync()
	s.mu.Lock()
	s.syncing = false
	if err != nil {
		s.failLocked()
	} else {
		s.synced = max(s.synced, upto)
	}
	s.cond.Broadcast()
	return err
}

// failLocked gives up on the open file after an I/O error: the next
// append reopens it and rebuilds its state from what is on disk.
func (s *session) failLocked() {
	s.epoch++
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	s.cond.Broadcast()
}

// closeLocked fsyncs and closes s's open file.
func (s *session) closeLocked() error {
	for s.syncing {
		s.cond.Wait()
	}
	if s.f == nil {
		return nil
	}
	var err error
	if s.synced < s.seq {
		if err = s.f.Sync(); err != nil {
			s.epoch++
		} else {
			s.synced = s.seq
		}
	}
	err = errors.Join(err, s.f.Close())
	s.f = nil
	s.cond.Broadcast()
	return err
}

// wakeLocked ends the wait of s's followers.
func (s *session) wakeLocked() {
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
}

// syncEvery is the SyncInterval fsync loop, owned by the Log.
func (l *Log) syncEvery() {
	t := time.NewTicker(l.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
		}
		l.mu.Lock()
		open := make([]*session, 0, l.lru.Len())
		for e := l.lru.Front(); e != nil; e = e.Next() {
			open = append(open, e.Value.(*session))
		}
		l.mu.Unlock()
		for _, s := range open {
			s.mu.Lock()
			if s.f != nil && !s.syncing && s.synced < s.seq {
				if err := s.syncLocked(); err != nil {
					l.log.Error("fsync audit file", "session", s.name, "err", err)
				}
			}
			s.mu.Unlock()
		}
	}
}

// Purge deletes a session's audit: its file and any torn tails kept aside.
// Purging a session with no audit does nothing. Followers of the session
// end with ErrNotFound.
func (l *Log) Purge(session string) error {
	if err := CheckSession(session); err != nil {
		return err
	}
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return ErrClosed
		}
		s := l.sessions[session]
		if s == nil {
			// Holding l.mu keeps an Append from creating the file meanwhile.
			err := l.removeFiles(session)
			l.mu.Unlock()
			return err
		}
		l.mu.Unlock()
		s.mu.Lock()
		l.mu.Lock()
		if l.sessions[session] != s {
			l.mu.Unlock()
			s.mu.Unlock()
			continue
		}
		delete(l.sessions, session)
		if s.elem != nil {
			l.lru.Remove(s.elem)
			s.elem = nil
		}
		s.purged = true
		if s.f != nil {
			s.f.Close() // its lines are about to be deleted: no fsync
			s.f = nil
		}
		s.cond.Broadcast()
		s.wakeLocked()
		err := l.removeFiles(session)
		l.mu.Unlock()
		s.mu.Unlock()
		return err
	}
}

func (l *Log) removeFiles(session string) error {
	torn, err := filepath.Glob(filepath.Join(l.dir, session+".jsonl.torn-*"))
	if err != nil {
		return fmt.Errorf("purge audit of %s: %w", session, err)
	}
	for _, p := range append(torn, l.Path(session)) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("purge audit of %s: %w", session, err)
		}
	}
	return syncDir(l.dir)
}

// Close fsyncs and closes every file, ends every Follow with ErrClosed and
// releases the directory. Append after Close returns ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	all := make([]*session, 0, len(l.sessions))
	for _, s := range l.sessions {
		all = append(all, s)
	}
	l.mu.Unlock()
	l.wg.Wait()
	var errs []error
	for _, s := range all {
		s.mu.Lock()
		if err := s.closeLocked(); err != nil {
			errs = append(errs, fmt.Errorf("close audit of %s: %w", s.name, err))
		}
		s.wakeLocked()
		s.mu.Unlock()
	}
	errs = append(errs, l.lock.Close()) // closing the descriptor drops the flock
	return errors.Join(errs...)
}

// syncDir fsyncs a directory, so file creations and removals in it last.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
