package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// TornSuffix separates a session file's name from the time in the name of
// a torn tail kept aside: "<session>.jsonl.torn-20260801T100000.000000000Z".
const TornSuffix = ".torn-"

// errDamaged is damage beyond one torn last line: the log does not repair
// it, a person runs atelier audit verify.
var errDamaged = errors.New("audit file damaged beyond a torn last line")

// tail is what the end of a session file holds.
type tail struct {
	good int64  // length up to the end of the last whole, valid line
	last Entry  // that line's entry; Seq 0 when there is none
	hash string // that line's hash; Genesis when there is none
	why  string // why the bytes after good are torn, if there are any
}

// readTail reads a file's end: its last valid line, and what follows it
// if the last line is torn (no newline, or not a valid entry). It reads
// only the end, so opening a long file is cheap.
func readTail(r io.ReaderAt, size int64) (tail, error) {
	t := tail{hash: Genesis}
	end := size
	if size > 0 {
		var b [1]byte
		if err := readFull(r, b[:], size-1); err != nil {
			return t, err
		}
		if b[0] != '\n' {
			start, err := segmentStart(r, size)
			if err != nil {
				return t, fmt.Errorf("torn last line: %w: %w", err, errDamaged)
			}
			end, t.why = start, "no newline at the end"
		}
	}
	for end > 0 {
		start, err := segmentStart(r, end-1)
		if err != nil {
			return t, fmt.Errorf("line at offset %d: %w: %w", end-1, err, errDamaged)
		}
		line := make([]byte, end-1-start)
		if err := readFull(r, line, start); err != nil {
			return t, err
		}
		e, derr := decodeLine(line)
		if derr == nil {
			t.good, t.last, t.hash = end, e, hashLine(line)
			return t, nil
		}
		if t.why != "" {
			return t, fmt.Errorf("line at offset %d: %v, before a torn line: %w", start, derr, errDamaged)
		}
		end, t.why = start, "last line is not a valid entry: "+derr.Error()
	}
	return t, nil
}

// tornTail reports whether the file at path ends in a torn line.
func tornTail(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	t, err := readTail(f, st.Size())
	return t.good < st.Size(), err
}

// segmentStart returns the offset just after the last '\n' before end, or
// 0 when there is none; it looks back no further than one line can be.
func segmentStart(r io.ReaderAt, end int64) (int64, error) {
	lo := max(0, end-MaxLineBytes-1)
	chunk := min(64<<10, end-lo)
	buf := make([]byte, chunk)
	for hi := end; hi > lo; {
		n := min(chunk, hi-lo)
		b := buf[:n]
		if err := readFull(r, b, hi-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			return hi - n + int64(i) + 1, nil
		}
		hi -= n
	}
	if lo == 0 {
		return 0, nil
	}
	return 0, errLineTooLong
}

// openLocked opens s's file for appending and loads the chain's end,
// repairing a torn last line first. s.mu is held.
func (l *Log) openLocked(s *session) error {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return ErrClosed
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open audit of %s: %w", s.name, err)
	}
	err = l.loadLocked(s, f)
	if err == nil {
		// What the chain continues from must be on disk, and so must the
		// file's name.
		if err = f.Sync(); err == nil {
			err = syncDir(l.dir)
		}
	}
	if err != nil {
		f.Close()
		s.f = nil
		return fmt.Errorf("open audit of %s: %w", s.name, err)
	}
	s.synced = s.seq
	return nil
}

func (l *Log) loadLocked(s *session, f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	t, err := readTail(f, st.Size())
	if err != nil {
		return fmt.Errorf("%w (run atelier audit verify)", err)
	}
	if t.last.Seq > 0 && t.last.Session != s.name {
		return fmt.Errorf("%w: the file's last entry is of session %q", errDamaged, t.last.Session)
	}
	s.f, s.size, s.seq, s.prev = f, t.good, t.last.Seq, t.hash
	if t.good < st.Size() {
		return l.repairLocked(s, t, st.Size())
	}
	return nil
}

// repairLocked moves the torn bytes after t.good into a file of their own,
// cuts them from s's file and records the repair as the chain's next entry,
// which links to the last good line.
func (l *Log) repairLocked(s *session, t tail, size int64) error {
	torn := make([]byte, size-t.good)
	if err := readFull(s.f, torn, t.good); err != nil {
		return fmt.Errorf("read torn tail: %w", err)
	}
	name := filepath.Base(s.path) + TornSuffix + l.opts.Now().UTC().Format("20060102T150405.000000000Z")
	if err := writeAside(filepath.Join(l.dir, name), torn); err != nil {
		return fmt.Errorf("keep torn tail: %w", err)
	}
	if err := s.f.Truncate(t.good); err != nil {
		return fmt.Errorf("cut torn tail: %w", err)
	}
	sum := sha256.Sum256(torn)
	e := Entry{
		Session: s.name, Actor: ActorFleet, Kind: KindAudit,
		Seq: s.seq + 1, Prev: s.prev, Time: l.opts.Now().UTC(),
		Detail: map[string]any{
			"event":       "repair",
			"reason":      t.why,
			"offset":      t.good,
			"torn_bytes":  len(torn),
			"torn_sha256": hex.EncodeToString(sum[:]),
			"torn_file":   name,
		},
	}
	body, err := encodeBody(&e)
	if err != nil {
		return err
	}
	if err := s.writeLocked(line(body, e.Time, e.Seq, e.Prev)); err != nil {
		return fmt.Errorf("record repair: %w", err)
	}
	l.log.Warn("audit torn tail kept aside", "session", s.name, "file", name, "bytes", len(torn), "reason", t.why)
	return nil
}

// writeAside writes b to a new file and fsyncs it and its directory.
func writeAside(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	return err
}

// readFull reads exactly len(b) bytes at off.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	_, err := r.ReadAt(b, off)
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
