package apitype

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// WriteEvent writes ev as one Server-Sent Event of a task's stream: its id
// (for Last-Event-ID), its type as the event name, and its JSON as data.
func WriteEvent(w io.Writer, ev TaskEvent) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event %d: %w", ev.ID, err)
	}
	_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, data)
	return err
}

// ReadEvents reads a task's event stream (as WriteEvent writes it) until
// EOF and returns its events; each, if set, is called as every event
// arrives and may stop the reading by returning an error.
func ReadEvents(r io.Reader, each func(TaskEvent) error) ([]TaskEvent, error) {
	var evs []TaskEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if len(data) == 0 {
				continue
			}
			var ev TaskEvent
			if err := json.Unmarshal(data, &ev); err != nil {
				return evs, fmt.Errorf("decode event: %w", err)
			}
			data = data[:0]
			evs = append(evs, ev)
			if each != nil {
				if err := each(ev); err != nil {
					return evs, err
				}
			}
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimSpace(line[len("data:"):])...)
		}
	}
	return evs, sc.Err()
}
