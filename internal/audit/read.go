package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Filter selects entries. Zero fields select everything.
type Filter struct {
	// SinceSeq keeps entries with a seq above it: pass the last seq seen
	// to resume.
	SinceSeq int64
	// SinceTime keeps entries written at or after it.
	SinceTime time.Time
	// Kinds keeps entries of these kinds.
	Kinds []Kind
	// Limit stops after this many entries.
	Limit int
}

func (f Filter) match(e *Entry) bool {
	return e.Seq > f.SinceSeq &&
		(f.SinceTime.IsZero() || !e.Time.Before(f.SinceTime)) &&
		(len(f.Kinds) == 0 || slices.Contains(f.Kinds, e.Kind))
}

// Query parameters of GET /sessions/{id}/audit, shared by the API and the
// CLI so both sides agree.
const (
	// ParamSince is a seq (an integer: entries after it) or an RFC 3339
	// time (entries at or after it).
	ParamSince = "since"
	// ParamKind is a kind or a comma-separated list; it may repeat.
	ParamKind = "kind"
	// ParamLimit is the most entries to return.
	ParamLimit = "limit"
	// ParamFollow=1 keeps the answer open, streaming new entries.
	ParamFollow = "follow"
)

// ParseFilter reads a Filter from since, kind and limit query parameters
// (ParamSince…); follow is the caller's business. A bad value is an error
// wrapping ErrBadFilter that names the parameter.
func ParseFilter(q url.Values) (Filter, error) {
	var f Filter
	if s := q.Get(ParamSince); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
			f.SinceSeq = n
		} else if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			f.SinceTime = t
		} else {
			return Filter{}, fmt.Errorf("%w: since=%q: want a seq (0 or more) or an RFC 3339 time", ErrBadFilter, s)
		}
	}
	for _, v := range q[ParamKind] {
		for k := range strings.SplitSeq(v, ",") {
			if !Kind(k).valid() {
				return Filter{}, fmt.Errorf("%w: kind=%q: want one of %v", ErrBadFilter, k, Kinds)
			}
			f.Kinds = append(f.Kinds, Kind(k))
		}
	}
	if s := q.Get(ParamLimit); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return Filter{}, fmt.Errorf("%w: limit=%q: want a count of 1 or more", ErrBadFilter, s)
		}
		f.Limit = n
	}
	return f, nil
}

// Values returns f as query parameters, as ParseFilter reads them. A
// filter with both SinceSeq and SinceTime keeps the seq.
func (f Filter) Values() url.Values {
	q := url.Values{}
	switch {
	case f.SinceSeq > 0:
		q.Set(ParamSince, strconv.FormatInt(f.SinceSeq, 10))
	case !f.SinceTime.IsZero():
		q.Set(ParamSince, f.SinceTime.UTC().Format(time.RFC3339Nano))
	}
	if len(f.Kinds) > 0 {
		ks := make([]string, len(f.Kinds))
		for i, k := range f.Kinds {
			ks[i] = string(k)
		}
		q.Set(ParamKind, strings.Join(ks, ","))
	}
	if f.Limit > 0 {
		q.Set(ParamLimit, strconv.Itoa(f.Limit))
	}
	return q
}

// ErrBadFilter marks a bad query parameter.
var ErrBadFilter = errors.New("bad audit filter")

// Read returns the entries of a session's audit that f selects, oldest
// first. A session with no audit yields ErrNotFound; a damaged line
// yields an error naming it, and ends the sequence. A line being written
// as Read reaches it is left for the next Read. It reads the file, so the
// audit of a deleted session stays readable until Purge.
func (l *Log) Read(ctx context.Context, session string, f Filter) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		if err := CheckSession(session); err != nil {
			yield(Entry{}, err)
			return
		}
		file, err := os.Open(l.Path(session))
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%w %s", ErrNotFound, session)
		}
		if err != nil {
			yield(Entry{}, err)
			return
		}
		defer file.Close()
		n := 0
		_, err = scan(ctx, file, 0, func(e Entry) bool {
			if !f.match(&e) {
				return true
			}
			n++
			return yield(e, nil) && (f.Limit == 0 || n < f.Limit)
		})
		if err != nil {
			yield(Entry{}, fmt.Errorf("read audit of %s: %w", session, err))
		}
	}
}

// scan decodes the whole lines of file from off, calling fn until it
// returns false, and returns the offset after the last line it consumed.
func scan(ctx context.Context, file *os.File, off int64, fn func(Entry) bool) (int64, error) {
	if _, err := file.Seek(off, io.SeekStart); err != nil {
		return off, err
	}
	lr := newLineReader(file, off)
	for {
		if err := ctx.Err(); err != nil {
			return off, err
		}
		line, at, whole, err := lr.next()
		switch {
		case errors.Is(err, io.EOF), err == nil && !whole:
			return off, nil
		case err != nil:
			return off, fmt.Errorf("line at offset %d: %w", at, err)
		}
		e, err := decodeLine(line)
		if err != nil {
			return off, fmt.Errorf("line at offset %d: %w", at, err)
		}
		off = lr.off
		if !fn(e) {
			return off, nil
		}
	}
}

// Follow calls fn with the entries of a session's audit that f selects,
// then with each new one as it is appended, until ctx ends (returning
// ctx.Err()), fn returns an error (returned), f.Limit entries were passed
// (nil), the session is purged (ErrNotFound) or the log closes
// (ErrClosed). A session with no audit yet is waited for. It does not
// poll: Append wakes it.
func (l *Log) Follow(ctx context.Context, session string, f Filter, fn func(Entry) error) error {
	s, err := l.session(session)
	if err != nil {
		return err
	}
	var (
		file *os.File
		off  int64
		n    int
		ferr error
	)
	defer func() {
		if file != nil {
			file.Close()
		}
	}()
	for {
		// Take the wake-up channel before reading, so an append after the
		// read cannot go unnoticed.
		s.mu.Lock()
		if s.notify == nil {
			s.notify = make(chan struct{})
		}
		wake, purged := s.notify, s.purged
		s.mu.Unlock()
		if purged {
			return fmt.Errorf("%w %s: purged", ErrNotFound, session)
		}
		if file == nil {
			file, err = os.Open(s.path)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("follow audit of %s: %w", session, err)
			}
			if err != nil {
				file = nil
			}
		}
		if file != nil {
			done := false
			off, err = scan(ctx, file, off, func(e Entry) bool {
				if !f.match(&e) {
					return true
				}
				if ferr = fn(e); ferr != nil {
					return false
				}
				n++
				done = f.Limit > 0 && n >= f.Limit
				return !done
			})
			switch {
			case ferr != nil:
				return ferr
			case err != nil:
				return fmt.Errorf("follow audit of %s: %w", session, err)
			case done:
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-l.done:
			return ErrClosed
		case <-wake:
		}
	}
}
