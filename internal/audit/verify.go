package audit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Report is what Verify found in a file, up to its first break if any.
type Report struct {
	File    string
	Session string
	// Entries is the number of lines that verified.
	Entries int64
	// Repairs counts the torn tails the log kept aside and recorded.
	Repairs int
	// LastSeq and LastHash identify the last verified line. Comparing
	// them with a copy kept elsewhere is what detects whole lines cut from
	// the end, which no chain can show by itself.
	LastSeq  int64
	LastHash string
}

// Break is the first broken link of a file.
type Break struct {
	File string
	Line int64 // from 1
	// Offset is the byte offset of the line's start.
	Offset int64
	// Problem is one of "torn", "entry", "seq", "prev", "session".
	Problem string
	// Want and Found say what the chain needed and what the line holds.
	Want, Found string
}

// Break problems.
const (
	ProblemTorn    = "torn"    // the last line has no newline
	ProblemEntry   = "entry"   // the line is not a valid entry (JSON or fields)
	ProblemSeq     = "seq"     // a line is missing, repeated or moved
	ProblemPrev    = "prev"    // this or the previous line was changed
	ProblemSession = "session" // the line belongs to another session
)

// Error names the file, the line, what the chain wanted there and what
// the line holds, with a hint at what happened.
func (b *Break) Error() string {
	msg := fmt.Sprintf("%s:%d: %s: want %s, found %s", b.File, b.Line, b.Problem, b.Want, b.Found)
	switch {
	case b.Problem == ProblemPrev && b.Line == 1:
		msg += " (line 1 was changed)"
	case b.Problem == ProblemPrev:
		msg += fmt.Sprintf(" (the hash of line %d as it is now: line %d or %d was changed)", b.Line-1, b.Line-1, b.Line)
	case b.Problem == ProblemSeq:
		msg += " (a line was removed, repeated or moved)"
	case b.Problem == ProblemTorn:
		msg += " (a write was cut short: the fleet keeps it aside when it next opens the file)"
	}
	return msg
}

// Verify walks an audit file and checks every line: a valid entry, of the
// file's session, seq following seq from 1, prev the hash of the line
// before. At the first broken link it returns a *Break with the report of
// what verified before it; other errors are I/O errors. It reads the file
// only and trusts nothing else.
func Verify(path string) (Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return Report{File: path}, fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	return verify(f, path)
}

func verify(r io.Reader, path string) (Report, error) {
	rep := Report{File: path, LastHash: Genesis}
	if name, ok := strings.CutSuffix(filepath.Base(path), ".jsonl"); ok {
		rep.Session = name
	}
	lr := newLineReader(r, 0)
	for n := int64(1); ; n++ {
		line, off, whole, err := lr.next()
		brk := func(problem, want, found string) (Report, error) {
			return rep, &Break{File: path, Line: n, Offset: off, Problem: problem, Want: want, Found: found}
		}
		switch {
		case errors.Is(err, io.EOF):
			return rep, nil
		case errors.Is(err, errLineTooLong):
			return brk(ProblemEntry, "a line of at most "+strconv.Itoa(MaxLineBytes)+" bytes", "a longer line")
		case err != nil:
			return rep, fmt.Errorf("verify %s: %w", path, err)
		case !whole:
			return brk(ProblemTorn, "a line ending in a newline", fmt.Sprintf("%d bytes and the end of the file", len(line)))
		}
		e, err := decodeLine(line)
		switch {
		case err != nil:
			return brk(ProblemEntry, "a valid entry", err.Error())
		case rep.Session == "":
			rep.Session = e.Session
		}
		switch {
		case e.Session != rep.Session:
			return brk(ProblemSession, strconv.Quote(rep.Session), strconv.Quote(e.Session))
		case e.Seq != rep.LastSeq+1:
			return brk(ProblemSeq, strconv.FormatInt(rep.LastSeq+1, 10), strconv.FormatInt(e.Seq, 10))
		case e.Prev != rep.LastHash:
			return brk(ProblemPrev, rep.LastHash, e.Prev)
		}
		rep.Entries++
		rep.LastSeq, rep.LastHash = e.Seq, hashLine(line)
		if e.Kind == KindAudit && e.Detail["event"] == "repair" {
			rep.Repairs++
		}
	}
}
