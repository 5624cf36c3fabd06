package tasks

import (
	"encoding/json"
	"fmt"
	"io"
)

// WriteSSE writes ev as one Server-Sent Event: its id (for Last-Event-ID),
// its type as the event name, and its JSON as data.
func WriteSSE(w io.Writer, ev Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event %d: %w", ev.ID, err)
	}
	_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, data)
	return err
}
