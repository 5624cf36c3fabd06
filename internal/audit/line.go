package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// hashLine is the chain's link: the hex SHA-256 of a line's exact bytes,
// without its newline.
func hashLine(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
}

// body is an entry without the fields the log fills, in Entry's order.
type body struct {
	Session string          `json:"session"`
	Actor   string          `json:"actor"`
	Kind    Kind            `json:"kind"`
	Action  json.RawMessage `json:"action,omitempty"`
	Result  *Result         `json:"result,omitempty"`
	Cost    *Cost           `json:"cost,omitempty"`
	Egress  *Egress         `json:"egress,omitempty"`
	Detail  map[string]any  `json:"detail,omitempty"`
	// RequestID is optional: a line without it encodes as before.
	RequestID string `json:"request_id,omitempty"`
}

// lineOverhead bounds what line adds to a body.
const lineOverhead = 160

// encodeBody encodes what the caller gave, without braces. It runs before
// any lock or file is touched, so an entry that cannot be encoded changes
// nothing and the encoding work happens outside the session's lock.
func encodeBody(e *Entry) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // typed "<" and "&" stay readable
	err := enc.Encode(body{e.Session, e.Actor, e.Kind, e.Action, e.Result, e.Cost, e.Egress, e.Detail, e.RequestID})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEntry, err)
	}
	if b.Len()+lineOverhead > MaxLineBytes {
		return nil, fmt.Errorf("%w: %d bytes encoded, the limit is %d", ErrBadEntry, b.Len(), MaxLineBytes-lineOverhead)
	}
	out := b.Bytes()
	return out[1 : len(out)-2], nil // drop "{" and "}\n"
}

// line frames a body with the fields the log fills, giving the bytes
// json.Marshal(Entry) would (with HTML escaping off) and a newline.
func line(body []byte, t time.Time, seq int64, prev string) []byte {
	b := make([]byte, 0, len(body)+lineOverhead)
	b = append(b, `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, ',')
	b = append(b, body...)
	b = append(b, `,"prev":"`...)
	b = append(b, prev...)
	return append(b, "\"}\n"...)
}

// decodeLine parses one line (without its newline) strictly: unknown
// fields, trailing data, missing or malformed fields are errors.
func decodeLine(line []byte) (Entry, error) {
	var e Entry
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil {
		return Entry{}, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return Entry{}, errors.New("data after the entry")
	}
	switch {
	case e.Time.IsZero():
		return Entry{}, errors.New("no time")
	case e.Seq < 1:
		return Entry{}, fmt.Errorf("seq %d: want 1 or more", e.Seq)
	case !isHash(e.Prev):
		return Entry{}, fmt.Errorf("prev %q: want 64 lowercase hex digits", e.Prev)
	}
	if err := e.check(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// lineReader reads the lines of an audit file, telling a whole line from a
// torn last one and refusing lines over MaxLineBytes without holding them.
type lineReader struct {
	r   *bufio.Reader
	buf []byte
	off int64 // offset of the next line
}

func newLineReader(r io.Reader, off int64) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10), off: off}
}

// errLineTooLong reports a line over MaxLineBytes; the reader skips it.
var errLineTooLong = fmt.Errorf("line longer than %d bytes", MaxLineBytes)

// next returns the next line without its newline and its offset. whole
// is false for a last line with no newline. At the end it returns io.EOF.
// The line is valid until the next call.
func (lr *lineReader) next() (line []byte, off int64, whole bool, err error) {
	lr.buf = lr.buf[:0]
	off = lr.off
	long := false
	for {
		chunk, err := lr.r.ReadSlice('\n')
		lr.off += int64(len(chunk))
		if !long {
			if len(lr.buf)+len(chunk) > MaxLineBytes+1 {
				long = true
				lr.buf = lr.buf[:0]
			} else {
				lr.buf = append(lr.buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == nil && long:
			return nil, off, true, errLineTooLong
		case err == nil:
			return lr.buf[:len(lr.buf)-1], off, true, nil
		case errors.Is(err, io.EOF) && lr.off > off && long:
			return nil, off, false, errLineTooLong
		case errors.Is(err, io.EOF) && lr.off > off:
			return lr.buf, off, false, nil
		default:
			return nil, off, false, err
		}
	}
}
