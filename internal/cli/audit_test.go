package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"atelier/internal/audit"
	"atelier/internal/cli"
)

func auditLog(t *testing.T, dataDir string) *audit.Log {
	t.Helper()
	l, err := audit.Open(filepath.Join(dataDir, "audit"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func appendAction(t *testing.T, l *audit.Log, session string, x int) {
	t.Helper()
	a, _ := json.Marshal(map[string]any{"v": 1, "action": "left_click", "coordinate": []int{x, 5}})
	_, err := l.Append(audit.WithActor(t.Context(), "token:ops"), audit.Entry{
		Session: session, Kind: audit.KindAction, Action: a, Result: &audit.Result{Code: "ok", DurationMS: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAuditVerify(t *testing.T) {
	data := t.TempDir()
	l := auditLog(t, data)
	for i := range 3 {
		appendAction(t, l, "s1", i)
		appendAction(t, l, "s2", i)
	}
	l.Close()

	out, _, err := run(t, "", "", "audit", "verify", "s1", "--data-dir", data)
	if err != nil || !strings.Contains(out, "ok "+filepath.Join(data, "audit", "s1.jsonl")+": 3 entries, 0 repairs, last seq 3") {
		t.Fatalf("verify s1 = %v, printed %q", err, out)
	}

	// Delete s2's second line.
	p := filepath.Join(data, "audit", "s2.jsonl")
	raw, _ := os.ReadFile(p)
	lines := strings.SplitAfter(string(raw), "\n")
	os.WriteFile(p, []byte(lines[0]+lines[2]), 0o600)

	out, _, err = run(t, "", "", "audit", "verify", "--all", "--data-dir", data)
	if err == nil || errors.Is(err, cli.ErrUsage) {
		t.Fatalf("verify --all with a broken file = %v, want a failure", err)
	}
	for _, want := range []string{"ok " + filepath.Join(data, "audit", "s1.jsonl"), "BROKEN " + p + ":2: seq: want 2, found 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify --all printed %q, want a line with %q", out, want)
		}
	}

	for _, args := range [][]string{
		{"audit", "verify", "--data-dir", data},                // neither
		{"audit", "verify", "s1", "--all", "--data-dir", data}, // both
		{"audit", "verify", "s1"},                              // no data dir
		{"audit", "verify", "../s1", "--data-dir", data},
		{"audit", "frobnicate"},
	} {
		if _, _, err := run(t, "", "", args...); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
}

// auditServer serves GET /sessions/{id}/audit from a real audit log, as the
// fleet's route is specified: JSONL, the filter parameters, follow=1.
func auditServer(t *testing.T, l *audit.Log, queries chan<- string) string {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sessions/{id}/audit", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"code":"unauthorized","message":"a bearer token is needed"}}`))
			return
		}
		queries <- r.URL.RawQuery
		f, err := audit.ParseFilter(r.URL.Query())
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/jsonl")
		write := func(e audit.Entry) error {
			b, _ := json.Marshal(e)
			w.Write(append(b, '\n'))
			w.(http.Flusher).Flush()
			return nil
		}
		if r.URL.Query().Get(audit.ParamFollow) == "1" {
			l.Follow(r.Context(), r.PathValue("id"), f, write)
			return
		}
		for e, err := range l.Read(r.Context(), r.PathValue("id"), f) {
			if err != nil {
				return
			}
			write(e)
		}
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs.URL
}

func TestAuditShow(t *testing.T) {
	l := auditLog(t, t.TempDir())
	for i := range 3 {
		appendAction(t, l, "s1", i)
	}
	l.Append(t.Context(), audit.Entry{Session: "s1", Actor: "task:t1", Kind: audit.KindCost,
		Cost: &audit.Cost{USD: 0.25, Model: "holo3", InputTokens: 100, OutputTokens: 7}})
	queries := make(chan string, 10)
	url := auditServer(t, l, queries)

	out, _, err := run(t, url, token, "audit", "show", "s1", "--since", "1", "--kind", "action", "--limit", "1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if q := <-queries; q != "kind=action&limit=1&since=1" {
		t.Errorf("query = %q", q)
	}
	var e audit.Entry
	if err := json.Unmarshal([]byte(out), &e); err != nil || e.Seq != 2 || e.Kind != audit.KindAction {
		t.Errorf("show --json printed %q (%v), want entry 2", out, err)
	}

	out, _, err = run(t, url, token, "audit", "show", "s1")
	<-queries
	if err != nil || strings.Count(out, "\n") != 4 ||
		!strings.Contains(out, `#3     token:ops        action  left_click {"coordinate":[2,5]} → ok 2.0ms`) ||
		!strings.Contains(out, `#4     task:t1          cost    $0.2500 holo3 100 in / 7 out tokens`) {
		t.Errorf("show printed (%v):\n%s", err, out)
	}

	if _, _, err := run(t, url, "wrong", "audit", "show", "s1"); err == nil || !strings.Contains(err.Error(), "ATELIER_API_TOKEN") {
		t.Errorf("show with a wrong token = %v, want the fleet's refusal and a hint", err)
	}
	if _, _, err := run(t, url, token, "audit", "show", "s1", "--since", "last tuesday"); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("bad --since = %v, want a usage error before any request", err)
	}
}

func TestAuditShowFollow(t *testing.T) {
	l := auditLog(t, t.TempDir())
	appendAction(t, l, "s1", 0)
	queries := make(chan string, 10)
	url := auditServer(t, l, queries)
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, _, err := run(t, url, token, "audit", "show", "s1", "--follow", "--limit", "3", "--json")
		done <- result{out, err}
	}()
	if q := <-queries; q != "follow=1&limit=3" {
		t.Errorf("query = %q", q)
	}
	appendAction(t, l, "s1", 1)
	appendAction(t, l, "s1", 2)
	r := <-done
	if r.err != nil || strings.Count(r.out, "\n") != 3 || !strings.Contains(r.out, `"seq":3`) {
		t.Errorf("show --follow --limit 3 = %v, printed:\n%s", r.err, r.out)
	}

	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-queries // connected: interrupt, as Ctrl-C would
		cancel()
	}()
	var out strings.Builder
	env := &cli.Env{Getenv: func(k string) string {
		return map[string]string{"ATELIER_URL": url, "ATELIER_API_TOKEN": token}[k]
	}, Stdout: &out, Stderr: &out}
	if err := cli.Run(ctx, []string{"audit", "show", "s1", "--follow"}, env); err != nil {
		t.Errorf("an interrupted --follow = %v, want a clean end", err)
	}
}
