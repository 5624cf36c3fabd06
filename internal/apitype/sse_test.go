package apitype_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"atelier/internal/apitype"
)

func TestEventsRoundTrip(t *testing.T) {
	evs := []apitype.TaskEvent{
		{ID: 1, Type: apitype.EventStep, Time: time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC), Step: 1, Thought: "line one\nline two",
			Actions: []json.RawMessage{json.RawMessage(`{"v":1,"action":"type","text":"a\n\nb"}`)}, Results: []apitype.TaskActionResult{{OK: true}}, StepUSD: 0.01, TotalUSD: 0.01},
		{ID: 2, Type: apitype.EventEnd, Status: apitype.TaskDone, Answer: "ok", TotalUSD: 0.01},
	}
	var buf bytes.Buffer
	for _, ev := range evs {
		if err := apitype.WriteEvent(&buf, ev); err != nil {
			t.Fatal(err)
		}
	}
	buf.WriteString(": keepalive\n\n")
	got, err := apitype.ReadEvents(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(evs, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// FuzzReadEvents: any stream is read without panicking, and whatever events
// come out survive a write and a read unchanged.
func FuzzReadEvents(f *testing.F) {
	f.Add("id: 1\nevent: step\ndata: {\"id\":1,\"type\":\"step\",\"step\":1}\n\n")
	f.Add("data: {\"id\":2,\ndata: \"type\":\"end\"}\n\n: comment\n\n")
	f.Add("data: not json\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		evs, err := apitype.ReadEvents(bytes.NewBufferString(s), nil)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		for _, ev := range evs {
			if err := apitype.WriteEvent(&buf, ev); err != nil {
				return // a value JSON cannot encode (NaN) is refused, not mangled
			}
		}
		again, err := apitype.ReadEvents(&buf, nil)
		if err != nil || len(again) != len(evs) {
			t.Fatalf("re-read %d events, %v; want %d", len(again), err, len(evs))
		}
	})
}
