package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// The framed line is what encoding an Entry gives, so a reader may
// re-encode entries and tools outside Go see plain JSON.
func TestLineIsTheEntryEncoded(t *testing.T) {
	e := Entry{
		Time: time.Date(2026, 8, 1, 10, 0, 0, 120000000, time.UTC), Seq: 42,
		Session: "sess_x", Actor: "token:a", Kind: KindAction,
		Action: json.RawMessage(`{"v":1,"action":"type","text":"<a & b>"}`),
		Result: &Result{Code: CodeOK, DurationMS: 3},
		Detail: map[string]any{"z": 1, "a": "b"},
		Prev:   Genesis,
	}
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		t.Fatal(err)
	}
	body, err := encodeBody(&e)
	if err != nil {
		t.Fatal(err)
	}
	if got := line(body, e.Time, e.Seq, e.Prev); !bytes.Equal(got, want.Bytes()) {
		t.Errorf("line =\n %s\nwant\n %s", got, want.Bytes())
	}
}

// A file written by an earlier build still verifies: the format and the
// hash are a promise to operators who keep logs for years.
func TestGoldenFileVerifies(t *testing.T) {
	rep, err := Verify("testdata/sess_fuzz.jsonl")
	if err != nil || rep.Entries != 4 || rep.Repairs != 1 || rep.Session != "sess_fuzz" {
		t.Errorf("Verify(golden) = %+v, %v; want 4 entries, 1 repair", rep, err)
	}
}

// FuzzVerify feeds any file content to the verifier and to the tail reader
// that opening a file runs: neither may panic, and where the verifier
// accepts a whole file the tail reader must find the same end.
func FuzzVerify(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, verr := verify(bytes.NewReader(data), "sess_fuzz.jsonl")
		tl, terr := readTail(bytes.NewReader(data), int64(len(data)))
		if tl.good < 0 || tl.good > int64(len(data)) {
			t.Fatalf("readTail: good = %d outside [0, %d]", tl.good, len(data))
		}
		if verr != nil {
			return
		}
		if terr != nil || tl.good != int64(len(data)) || tl.last.Seq != rep.LastSeq || tl.hash != rep.LastHash {
			t.Fatalf("verify accepts %d entries ending at seq %d, readTail = %+v, %v", rep.Entries, rep.LastSeq, tl, terr)
		}
	})
}

// FuzzDecodeLine: no panic, and an accepted line re-encodes to an entry
// that decodes the same.
func FuzzDecodeLine(f *testing.F) {
	f.Add([]byte(`{"time":"2026-08-01T10:00:00Z","seq":1,"session":"s","actor":"cli","kind":"view","prev":"` + Genesis + `"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeLine(b)
		if err != nil {
			return
		}
		body, err := encodeBody(&e)
		if err != nil {
			t.Fatalf("accepted entry does not encode: %v", err)
		}
		l := line(body, e.Time, e.Seq, e.Prev)
		if _, err := decodeLine(l[:len(l)-1]); err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", l, err)
		}
	})
}
