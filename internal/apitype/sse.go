package apitype

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// WriteEvent writes ev as one Server-Sent Event of a task's stream: its id
// (for Last-Event-ID), its type as the event name, and its JSON as data.
func WriteEvent(w io.Writer, ev TaskEvent) error {
	return WriteSSE(w, strconv.Itoa(ev.ID), ev.Type, ev)
}

// WriteSSE writes v's JSON as one Server-Sent Event named name, with an
// id line unless id is empty.
func WriteSSE(w io.Writer, id, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode event %s: %w", name, err)
	}
	if id != "" {
		if _, err := fmt.Fprintf(w, "id: %s\n", id); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
	return err
}

// ReadEvents reads a task's event stream (as WriteEvent writes it) until
// EOF and returns its events; each, if set, is called as every event
// arrives and may stop the reading by returning an error.
func ReadEvents(r io.Reader, each func(TaskEvent) error) ([]TaskEvent, error) {
	var evs []TaskEvent
	err := ReadSSE(r, func(_ string, data []byte) error {
		var ev TaskEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("decode event: %w", err)
		}
		evs = append(evs, ev)
		if each != nil {
			return each(ev)
		}
		return nil
	})
	return evs, err
}

// ReadSSE reads a stream of Server-Sent Events until EOF, calling each
// with every event's name and data (valid only during the call); an
// error from each stops the reading.
func ReadSSE(r io.Reader, each func(name string, data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var name string
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if len(data) == 0 {
				continue
			}
			if err := each(name, data); err != nil {
				return err
			}
			name, data = "", data[:0]
		case bytes.HasPrefix(line, []byte("event:")):
			name = string(bytes.TrimSpace(line[len("event:"):]))
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimSpace(line[len("data:"):])...)
		}
	}
	return sc.Err()
}
