package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"atelier/internal/audit"
)

const sess = "sess_aaaaaaaaaaaaaaaaaaaaaaaaaa"

func openLog(t testing.TB, dir string, opts audit.Options) *audit.Log {
	t.Helper()
	l, err := audit.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func click(x, y int) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"v": 1, "action": "left_click", "coordinate": []int{x, y}})
	return b
}

func actionEntry(session string, x int) audit.Entry {
	return audit.Entry{
		Session: session, Actor: "token:ops", Kind: audit.KindAction,
		Action: click(x, 20), Result: &audit.Result{Code: audit.CodeOK, DurationMS: 1.5},
	}
}

func mustAppend(t testing.TB, l *audit.Log, e audit.Entry) audit.Entry {
	t.Helper()
	got, err := l.Append(context.Background(), e)
	if err != nil {
		t.Fatalf("Append(%+v): %v", e, err)
	}
	return got
}

func readAll(t testing.TB, l *audit.Log, session string, f audit.Filter) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	for e, err := range l.Read(t.Context(), session, f) {
		if err != nil {
			t.Fatalf("Read(%s): %v", session, err)
		}
		out = append(out, e)
	}
	return out
}

func mustVerify(t testing.TB, path string) audit.Report {
	t.Helper()
	rep, err := audit.Verify(path)
	if err != nil {
		t.Fatalf("Verify(%s): %v", path, err)
	}
	return rep
}

func TestEachKindRoundTrips(t *testing.T) {
	clock := time.Date(2026, 8, 1, 10, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
	l := openLog(t, t.TempDir(), audit.Options{Now: func() time.Time { clock = clock.Add(time.Millisecond); return clock }})
	typed := json.RawMessage(`{"v":1,"action":"type","text":"héllo <b> & \"q\""}`)
	in := []audit.Entry{
		{Session: sess, Actor: "token:ops", Kind: audit.KindAction, Action: click(10, 20),
			Result: &audit.Result{Code: audit.CodeOK, DurationMS: 12.5}},
		{Session: sess, Actor: audit.ActorCLI, Kind: audit.KindAction, Action: typed,
			Result: &audit.Result{Code: "bad_coordinate", Message: "x 5000 is outside 1280", DurationMS: 0.2}},
		{Session: sess, Actor: "task:t_1", Kind: audit.KindTask,
			Detail: map[string]any{"event": "step", "step": 3.0, "thought": "open the menu"}},
		{Session: sess, Actor: "task:t_1", Kind: audit.KindCost,
			Cost: &audit.Cost{USD: 0.0123, Model: "holo3", InputTokens: 1500, OutputTokens: 80}},
		{Session: sess, Actor: audit.ActorFleet, Kind: audit.KindSession, Detail: map[string]any{"event": "started"}},
		{Session: sess, Actor: "viewer:emb_9", Kind: audit.KindView, Detail: map[string]any{"event": "connected", "mode": "control"}},
		{Session: sess, Actor: audit.ActorDesktop, Kind: audit.KindEgress, Egress: &audit.Egress{Method: "CONNECT",
			Host: "github.com", Port: 443, Addr: "140.82.121.4:443", Decision: "allowed", BytesUp: 517, BytesDown: 4096, DurationMS: 80.5}},
		{Session: sess, Actor: audit.ActorDesktop, Kind: audit.KindEgress, Egress: &audit.Egress{Method: "CONNECT",
			Host: "evil.example", Port: 443, Decision: "refused", Reason: "evil.example refused: not in the allowlist"}},
	}
	var want []audit.Entry
	prev := audit.Genesis
	for i, e := range in {
		got := mustAppend(t, l, e)
		w := e
		w.Seq, w.Prev, w.Time = int64(i+1), got.Prev, clock.UTC()
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("Append #%d returned (-want +got):\n%s", i+1, diff)
		}
		if i == 0 && got.Prev != prev {
			t.Errorf("first prev = %s, want genesis", got.Prev)
		}
		if got.Time.Location() != time.UTC {
			t.Errorf("time %v is not UTC", got.Time)
		}
		want = append(want, w)
	}
	if diff := cmp.Diff(want, readAll(t, l, sess, audit.Filter{})); diff != "" {
		t.Errorf("Read (-want +got):\n%s", diff)
	}
	raw, err := os.ReadFile(l.Path(sess))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n"))
	if len(lines) != len(in) {
		t.Fatalf("file has %d lines, want exactly one per entry (%d)", len(lines), len(in))
	}
	if !bytes.Contains(lines[1], []byte(`"text":"héllo <b> & \"q\""`)) {
		t.Errorf("typed text not kept as sent: %s", lines[1])
	}
	if !bytes.Contains(lines[0], []byte(`"time":"2026-08-01T08:00:00.124456789Z"`)) {
		t.Errorf("time not UTC RFC 3339 with nanoseconds: %s", lines[0])
	}
	if rep := mustVerify(t, l.Path(sess)); rep.Entries != int64(len(in)) || rep.LastSeq != int64(len(in)) || rep.Session != sess {
		t.Errorf("Verify report = %+v", rep)
	}
}

func TestActorFromContext(t *testing.T) {
	l := openLog(t, t.TempDir(), audit.Options{Sync: audit.SyncNever})
	e := actionEntry(sess, 1)
	e.Actor = ""
	got, err := l.Append(audit.WithActor(t.Context(), "token:alice"), e)
	if err != nil || got.Actor != "token:alice" {
		t.Fatalf("Append with actor in ctx = %q, %v; want token:alice", got.Actor, err)
	}
	e.Actor = "task:t_2" // an explicit actor wins
	if got, _ := l.Append(audit.WithActor(t.Context(), "token:alice"), e); got.Actor != "task:t_2" {
		t.Errorf("explicit actor = %q, want task:t_2", got.Actor)
	}
}

// A request id comes from ctx, is covered by the chain like any field, and
// lines without one (written before it existed) still verify beside it.
func TestRequestIDFromContext(t *testing.T) {
	l := openLog(t, t.TempDir(), audit.Options{Sync: audit.SyncNever})
	old := mustAppend(t, l, actionEntry(sess, 1))
	got, err := l.Append(audit.WithRequestID(t.Context(), "req-42"), actionEntry(sess, 2))
	if err != nil || got.RequestID != "req-42" {
		t.Fatalf("Append with request id in ctx = %q, %v; want req-42", got.RequestID, err)
	}
	mustAppend(t, l, actionEntry(sess, 3))
	raw, err := os.ReadFile(l.Path(sess))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw[:bytes.IndexByte(raw, '\n')], []byte("request_id")) || old.RequestID != "" {
		t.Errorf("an entry without a request id wrote one: %s", raw)
	}
	if rep := mustVerify(t, l.Path(sess)); rep.Entries != 3 {
		t.Errorf("Verify: %d entries verified, want 3", rep.Entries)
	}
	if es := readAll(t, l, sess, audit.Filter{}); len(es) != 3 || es[1].RequestID != "req-42" {
		t.Fatalf("Read = %+v, want the second entry with request id req-42", es)
	}
	// The third line's prev no longer matches a changed second line.
	tampered := bytes.Replace(raw, []byte(`"request_id":"req-42"`), []byte(`"request_id":"req-43"`), 1)
	other := filepath.Join(t.TempDir(), sess+".jsonl")
	if err := os.WriteFile(other, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	var brk *audit.Break
	if _, err := audit.Verify(other); !errors.As(err, &brk) || brk.Line != 3 || brk.Problem != "prev" {
		t.Errorf("Verify of a changed request id: %v, want a prev break at line 3", err)
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	l := openLog(t, t.TempDir(), audit.Options{})
	ok := actionEntry(sess, 1)
	cases := map[string]struct {
		e    audit.Entry
		want error
	}{
		"no actor":          {func() audit.Entry { e := ok; e.Actor = ""; return e }(), audit.ErrBadEntry},
		"unknown actor":     {func() audit.Entry { e := ok; e.Actor = "root"; return e }(), audit.ErrBadEntry},
		"empty actor id":    {func() audit.Entry { e := ok; e.Actor = "token:"; return e }(), audit.ErrBadEntry},
		"unknown kind":      {func() audit.Entry { e := ok; e.Kind = "login"; return e }(), audit.ErrBadEntry},
		"kind audit":        {func() audit.Entry { e := ok; e.Kind = audit.KindAudit; return e }(), audit.ErrBadEntry},
		"action no result":  {func() audit.Entry { e := ok; e.Result = nil; return e }(), audit.ErrBadEntry},
		"action no action":  {func() audit.Entry { e := ok; e.Action = nil; return e }(), audit.ErrBadEntry},
		"action bad json":   {func() audit.Entry { e := ok; e.Action = json.RawMessage(`{"v":1`); return e }(), audit.ErrBadEntry},
		"cost without cost": {audit.Entry{Session: sess, Actor: "cli", Kind: audit.KindCost}, audit.ErrBadEntry},
		"negative cost": {audit.Entry{Session: sess, Actor: "cli", Kind: audit.KindCost,
			Cost: &audit.Cost{USD: -1}}, audit.ErrBadEntry},
		"egress without egress": {audit.Entry{Session: sess, Actor: "desktop", Kind: audit.KindEgress}, audit.ErrBadEntry},
		"egress bad decision": {audit.Entry{Session: sess, Actor: "desktop", Kind: audit.KindEgress,
			Egress: &audit.Egress{Host: "a.example", Port: 443, Decision: "maybe"}}, audit.ErrBadEntry},
		"egress bad port": {audit.Entry{Session: sess, Actor: "desktop", Kind: audit.KindEgress,
			Egress: &audit.Egress{Host: "a.example", Port: 70000, Decision: "refused"}}, audit.ErrBadEntry},
		"egress negative bytes": {audit.Entry{Session: sess, Actor: "desktop", Kind: audit.KindEgress,
			Egress: &audit.Egress{Host: "a.example", Port: 443, Decision: "allowed", BytesUp: -1}}, audit.ErrBadEntry},
		"egress allowed without host": {audit.Entry{Session: sess, Actor: "desktop", Kind: audit.KindEgress,
			Egress: &audit.Egress{Port: 443, Decision: "allowed"}}, audit.ErrBadEntry},
		"detail not json":  {audit.Entry{Session: sess, Actor: "cli", Kind: audit.KindTask, Detail: map[string]any{"c": make(chan int)}}, audit.ErrBadEntry},
		"bad request id":   {func() audit.Entry { e := ok; e.RequestID = "a b"; return e }(), audit.ErrBadEntry},
		"long request id":  {func() audit.Entry { e := ok; e.RequestID = strings.Repeat("r", audit.MaxRequestID+1); return e }(), audit.ErrBadEntry},
		"path in session":  {func() audit.Entry { e := ok; e.Session = "../etc/passwd"; return e }(), audit.ErrBadSession},
		"dot session":      {func() audit.Entry { e := ok; e.Session = ".lock"; return e }(), audit.ErrBadSession},
		"empty session":    {func() audit.Entry { e := ok; e.Session = ""; return e }(), audit.ErrBadSession},
		"too long session": {func() audit.Entry { e := ok; e.Session = strings.Repeat("a", 129); return e }(), audit.ErrBadSession},
		"huge action": {func() audit.Entry {
			e := ok
			e.Action, _ = json.Marshal(map[string]string{"text": strings.Repeat("x", audit.MaxLineBytes)})
			return e
		}(), audit.ErrBadEntry},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := l.Append(t.Context(), c.e)
			if !errors.Is(err, c.want) {
				t.Fatalf("Append: err = %v, want %v", err, c.want)
			}
		})
	}
	if _, err := os.Stat(l.Path(sess)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bad entries created the session file: %v", err)
	}
	mustAppend(t, l, ok)
	if rep := mustVerify(t, l.Path(sess)); rep.LastSeq != 1 {
		t.Errorf("after bad input, a good entry got seq %d, want 1", rep.LastSeq)
	}
}

func TestConcurrentWritersFormOneChain(t *testing.T) {
	for _, p := range []audit.SyncPolicy{audit.SyncAlways, audit.SyncNever} {
		t.Run(p.String(), func(t *testing.T) {
			l := openLog(t, t.TempDir(), audit.Options{Sync: p})
			const writers, each = 8, 500
			var wg sync.WaitGroup
			seen := make([][]int64, writers)
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						e, err := l.Append(t.Context(), actionEntry(sess, w*1000+i))
						if err != nil {
							t.Errorf("writer %d: %v", w, err)
							return
						}
						seen[w] = append(seen[w], e.Seq)
					}
				})
			}
			wg.Wait()
			rep := mustVerify(t, l.Path(sess))
			if rep.Entries != writers*each || rep.LastSeq != writers*each {
				t.Fatalf("Verify = %+v, want %d entries, seqs 1..%d", rep, writers*each, writers*each)
			}
			got := make(map[int64]bool)
			for _, s := range seen {
				for i, seq := range s {
					if got[seq] {
						t.Fatalf("seq %d acknowledged twice", seq)
					}
					if i > 0 && seq <= s[i-1] {
						t.Fatalf("one writer's seqs go backwards: %d after %d", seq, s[i-1])
					}
					got[seq] = true
				}
			}
			if len(got) != writers*each {
				t.Errorf("%d distinct seqs acknowledged, want %d", len(got), writers*each)
			}
		})
	}
}

func TestManySessionsWithFewOpenFiles(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, audit.Options{MaxOpenFiles: 2})
	names := []string{"s1", "s2", "s3", "s4", "s5"}
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() {
			for i := range 40 {
				if _, err := l.Append(t.Context(), actionEntry(n, i)); err != nil {
					t.Errorf("%s: %v", n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, n := range names {
		if rep := mustVerify(t, l.Path(n)); rep.LastSeq != 40 || rep.Session != n {
			t.Errorf("%s: %+v, want 40 entries", n, rep)
		}
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	open := 0
	for _, fd := range fds {
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasSuffix(p, ".jsonl") && strings.HasPrefix(p, dir) {
			open++
		}
	}
	if open > 2 {
		t.Errorf("%d session files open, want at most MaxOpenFiles=2", open)
	}
}

func TestReopenContinuesTheChain(t *testing.T) {
	dir := t.TempDir()
	l, err := audit.Open(dir, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mustAppend(t, l, actionEntry(sess, i))
	}
	if _, err := audit.Open(dir, audit.Options{}); !errors.Is(err, audit.ErrLocked) {
		t.Errorf("second Open of a dir in use: err = %v, want ErrLocked", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(t.Context(), actionEntry(sess, 9)); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Append after Close: err = %v, want ErrClosed", err)
	}
	l = openLog(t, dir, audit.Options{})
	if e := mustAppend(t, l, actionEntry(sess, 4)); e.Seq != 4 {
		t.Errorf("after reopen seq = %d, want 4", e.Seq)
	}
	mustVerify(t, l.Path(sess))
}

func TestRedactTypedText(t *testing.T) {
	l := openLog(t, t.TempDir(), audit.Options{RedactTypedText: true})
	e := actionEntry(sess, 0)
	e.Action = json.RawMessage(`{"v":1,"action":"type","text":"hunter2é"}`)
	got := mustAppend(t, l, e)
	// sha256("hunter2é")
	want := `{"action":"type","text":"[redacted: 8 runes, sha256 d29c1ac115cb8bd52be8fa3e41dfc87e024b3abcc69f364cc0b6e8fe0e981613]","v":1}`
	if string(got.Action) != want {
		t.Errorf("redacted action =\n %s\nwant\n %s", got.Action, want)
	}
	raw, _ := os.ReadFile(l.Path(sess))
	if bytes.Contains(raw, []byte("hunter2")) {
		t.Errorf("typed text reached the file: %s", raw)
	}
	other := mustAppend(t, l, actionEntry(sess, 7))
	if string(other.Action) != string(click(7, 20)) {
		t.Errorf("a click was changed by redaction: %s", other.Action)
	}
}

func TestReadFilters(t *testing.T) {
	clock := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
	l := openLog(t, t.TempDir(), audit.Options{Sync: audit.SyncNever, Now: func() time.Time { clock = clock.Add(time.Second); return clock }})
	for i := range 10 {
		e := actionEntry(sess, i)
		if i%3 == 0 {
			e = audit.Entry{Session: sess, Actor: "task:t", Kind: audit.KindCost, Cost: &audit.Cost{USD: 0.01, Model: "m"}}
		}
		mustAppend(t, l, e)
	}
	seqs := func(es []audit.Entry) []int64 {
		var s []int64
		for _, e := range es {
			s = append(s, e.Seq)
		}
		return s
	}
	cases := map[string]struct {
		f    audit.Filter
		want []int64
	}{
		"all":        {audit.Filter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		"since seq":  {audit.Filter{SinceSeq: 7}, []int64{8, 9, 10}},
		"since time": {audit.Filter{SinceTime: time.Date(2026, 8, 1, 0, 0, 9, 0, time.UTC)}, []int64{9, 10}},
		"kind":       {audit.Filter{Kinds: []audit.Kind{audit.KindCost}}, []int64{1, 4, 7, 10}},
		"limit":      {audit.Filter{Limit: 2, SinceSeq: 4}, []int64{5, 6}},
		"everything": {audit.Filter{Kinds: []audit.Kind{audit.KindAction}, SinceSeq: 2, Limit: 3}, []int64{3, 5, 6}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, seqs(readAll(t, l, sess, c.f))); diff != "" {
				t.Errorf("seqs (-want +got):\n%s", diff)
			}
		})
	}
	for _, err := range l.Read(t.Context(), "sess_none", audit.Filter{}) {
		if !errors.Is(err, audit.ErrNotFound) {
			t.Errorf("Read of a session with no audit: err = %v, want ErrNotFound", err)
		}
	}
}

func TestFilterQueryRoundTrip(t *testing.T) {
	for _, f := range []audit.Filter{
		{},
		{SinceSeq: 12, Kinds: []audit.Kind{audit.KindAction, audit.KindCost}, Limit: 5},
		{SinceTime: time.Date(2026, 8, 1, 10, 0, 0, 5, time.UTC), Kinds: []audit.Kind{audit.KindView}},
	} {
		got, err := audit.ParseFilter(f.Values())
		if err != nil {
			t.Fatalf("ParseFilter(%v): %v", f.Values(), err)
		}
		if diff := cmp.Diff(f, got); diff != "" {
			t.Errorf("round trip of %v (-want +got):\n%s", f.Values().Encode(), diff)
		}
	}
	for _, q := range []string{"since=yesterday", "since=-3", "kind=action,login", "limit=0", "limit=x"} {
		v, _ := url.ParseQuery(q)
		if _, err := audit.ParseFilter(v); !errors.Is(err, audit.ErrBadFilter) {
			t.Errorf("ParseFilter(%s): err = %v, want ErrBadFilter", q, err)
		}
	}
}

func TestFollowStreamsNewEntries(t *testing.T) {
	l := openLog(t, t.TempDir(), audit.Options{})
	mustAppend(t, l, actionEntry(sess, 0))
	got := make(chan audit.Entry)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- l.Follow(ctx, sess, audit.Filter{Kinds: []audit.Kind{audit.KindAction}}, func(e audit.Entry) error {
			got <- e
			return nil
		})
	}()
	if e := <-got; e.Seq != 1 {
		t.Fatalf("backlog entry seq = %d, want 1", e.Seq)
	}
	for i := 2; i <= 20; i++ {
		if i%5 == 0 { // not selected by the filter
			mustAppend(t, l, audit.Entry{Session: sess, Actor: "fleet", Kind: audit.KindSession, Detail: map[string]any{"event": "x"}})
			continue
		}
		mustAppend(t, l, actionEntry(sess, i))
		if e := <-got; e.Seq != int64(i) || e.Kind != audit.KindAction {
			t.Fatalf("followed entry = seq %d kind %s, want seq %d action", e.Seq, e.Kind, i)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Follow after cancel = %v, want context.Canceled", err)
	}
}

func TestFollowWaitsForFirstEntryAndEndsOnPurge(t *testing.T) {
	l := openLog(t, t.TempDir(), audit.Options{})
	first := make(chan audit.Entry, 1)
	done := make(chan error, 1)
	go func() {
		done <- l.Follow(t.Context(), "sess_new", audit.Filter{}, func(e audit.Entry) error {
			first <- e
			return nil
		})
	}()
	mustAppend(t, l, actionEntry("sess_new", 1))
	if e := <-first; e.Seq != 1 {
		t.Fatalf("first entry seq = %d", e.Seq)
	}
	if err := l.Purge("sess_new"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("Follow after Purge = %v, want ErrNotFound", err)
	}
}

func TestFollowLimitAndClose(t *testing.T) {
	l := openLog(t, t.TempDir(), audit.Options{})
	for i := range 3 {
		mustAppend(t, l, actionEntry(sess, i))
	}
	n := 0
	if err := l.Follow(t.Context(), sess, audit.Filter{Limit: 2}, func(audit.Entry) error { n++; return nil }); err != nil || n != 2 {
		t.Errorf("Follow with limit 2 = %v after %d entries", err, n)
	}
	stop := errors.New("stop")
	if err := l.Follow(t.Context(), sess, audit.Filter{}, func(audit.Entry) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Follow returned %v, want fn's error", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- l.Follow(t.Context(), sess, audit.Filter{SinceSeq: 3}, func(audit.Entry) error { return nil })
	}()
	l.Close()
	if err := <-done; !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Follow after Close = %v, want ErrClosed", err)
	}
}

func TestPurgeDeletesAfterDeletedSessionStaysReadable(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, audit.Options{})
	for i := range 3 {
		mustAppend(t, l, actionEntry(sess, i))
	}
	// The session is gone from the fleet: its audit is still there.
	if n := len(readAll(t, l, sess, audit.Filter{})); n != 3 {
		t.Fatalf("read %d entries, want 3", n)
	}
	aside := l.Path(sess) + audit.TornSuffix + "20260101T000000.000000000Z"
	if err := os.WriteFile(aside, []byte("torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Purge(sess); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{l.Path(sess), aside} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survives Purge: %v", p, err)
		}
	}
	if err := l.Purge("../x"); !errors.Is(err, audit.ErrBadSession) {
		t.Errorf("Purge(../x) = %v, want ErrBadSession", err)
	}
	if e := mustAppend(t, l, actionEntry(sess, 0)); e.Seq != 1 || e.Prev != audit.Genesis {
		t.Errorf("after Purge the session restarts: got seq %d prev %s", e.Seq, e.Prev)
	}
}

func TestIntervalPolicySyncs(t *testing.T) {
	l := openLog(t, t.TempDir(), audit.Options{Sync: audit.SyncInterval, Interval: 5 * time.Millisecond})
	for i := range 50 {
		mustAppend(t, l, actionEntry(sess, i))
	}
	if rep := mustVerify(t, l.Path(sess)); rep.LastSeq != 50 {
		t.Errorf("LastSeq = %d, want 50", rep.LastSeq)
	}
	if _, err := audit.ParseSyncPolicy("sometimes"); err == nil {
		t.Error(`ParseSyncPolicy("sometimes") accepted`)
	}
	for _, p := range []audit.SyncPolicy{audit.SyncAlways, audit.SyncInterval, audit.SyncNever} {
		if got, err := audit.ParseSyncPolicy(p.String()); err != nil || got != p {
			t.Errorf("ParseSyncPolicy(%q) = %v, %v", p, got, err)
		}
	}
}
