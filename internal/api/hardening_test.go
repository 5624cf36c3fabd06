package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"atelier/internal/api"
	"atelier/internal/apitype"
	"atelier/internal/audit"
	"atelier/internal/sessions"
	"atelier/internal/sessions/sessionstest"
	"atelier/internal/store"
	"atelier/internal/view"
)

// Short timeouts, so the attacks below are cut within a test's patience.
const (
	readTimeout = 400 * time.Millisecond
	idleTimeout = 400 * time.Millisecond
	// cutWithin is how long a cut may take at most: the timeout and
	// generous slack for a loaded machine.
	cutWithin = 10 * time.Second
)

// hardFleet is an API served as `atelier serve` serves it (HTTPServer, on
// a real loopback listener) with admission limits, an audit log and a
// live view whose token generations are stored.
type hardFleet struct {
	url   string
	addr  string
	st    *store.Store
	rt    *sessionstest.Runtime
	view  *view.Handler
	id    string // a session that exists
	audit *audit.Log
}

func newHardFleet(t *testing.T, maxSessions, maxStreams int) *hardFleet {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	rt := sessionstest.New()
	m, err := sessions.Open(t.Context(), sessions.Options{Runtime: rt, Store: st, MaxSessions: maxSessions})
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Create(t.Context(), sessions.CreateOptions{Label: "fixture"})
	if err != nil {
		t.Fatal(err)
	}
	al, err := audit.Open(filepath.Join(dir, "audit"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := al.Append(t.Context(), audit.Entry{Session: s.ID, Actor: audit.ActorFleet, Kind: audit.KindSession, Detail: map[string]any{"event": "created"}}); err != nil {
		t.Fatal(err)
	}
	tokens, err := view.NewTokens(filepath.Join(dir, "embed.key"))
	if err != nil {
		t.Fatal(err)
	}
	vh, err := view.NewHandler(view.Options{Dialer: m, Tokens: tokens, Generations: st, MaxViews: maxStreams})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Options{Sessions: m, Token: token, Version: "test", View: vh, Audit: al,
		ReadTimeout: readTimeout, IdleTimeout: idleTimeout, MaxStreams: maxStreams})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer()
	hs.Handler = recording(srv) // its answers are checked against the document too
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close(); vh.Close(); m.Close(); al.Close(); st.Close() })
	return &hardFleet{url: "http://" + ln.Addr().String(), addr: ln.Addr().String(), st: st, rt: rt, view: vh, id: s.ID, audit: al}
}

// waitClosed reads conn until the server closes it and fails the test if
// that takes longer than cutWithin. It returns what the server sent.
func waitClosed(t *testing.T, conn net.Conn, what string) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(cutWithin))
	b, err := io.ReadAll(conn)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("%s: the connection is still open after %v", what, cutWithin)
	}
	return string(b)
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestIdleConnectionsAreCut: a connection that sends nothing, and a
// keep-alive connection idle after its request (with a token or none),
// are closed by the fleet.
func TestIdleConnectionsAreCut(t *testing.T) {
	f := newHardFleet(t, 0, 0)
	waitClosed(t, dialRaw(t, f.addr), "a connection that never sends a request")

	for name, auth := range map[string]string{"with a token": "Authorization: Bearer " + token + "\r\n", "without": ""} {
		conn := dialRaw(t, f.addr)
		fmt.Fprintf(conn, "GET /sessions HTTP/1.1\r\nHost: x\r\n%s\r\n", auth)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		if resp.Header.Get("Connection") == "close" {
			t.Fatalf("%s: the fleet closed the connection itself; the test proves nothing", name)
		}
		t0 := time.Now()
		waitClosed(t, conn, "an idle keep-alive connection "+name)
		t.Logf("idle keep-alive %s cut after %v", name, time.Since(t0).Round(time.Millisecond))
	}
}

// TestSlowBodyIsCut dribbles a request body a byte at a time: the fleet
// cuts it off at its read timeout, whether or not the request carries a
// token, and creates nothing.
func TestSlowBodyIsCut(t *testing.T) {
	f := newHardFleet(t, 0, 0)
	for name, auth := range map[string]string{"with a token": "Authorization: Bearer " + token + "\r\n", "without": ""} {
		conn := dialRaw(t, f.addr)
		body := `{"label":"` + strings.Repeat("x", 50) + `"}`
		fmt.Fprintf(conn, "POST /sessions HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", auth, len(body))
		done := make(chan struct{})
		go func() { // the attacker: one byte every 100ms, as long as the fleet takes them
			defer close(done)
			for i := range len(body) {
				if _, err := conn.Write([]byte{body[i]}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		t0 := time.Now()
		got := waitClosed(t, conn, "a slow body "+name)
		took := time.Since(t0)
		if took > time.Duration(len(body))*100*time.Millisecond {
			t.Errorf("%s: the body was read to its end (%v): not cut", name, took)
		}
		t.Logf("slow body %s cut after %v: %.60q", name, took.Round(time.Millisecond), got)
		<-done
	}
	list, err := f.st.ListSessions(t.Context())
	if err != nil || len(list) != 1 {
		t.Errorf("sessions after slow bodies: %d (%v), want the fixture's only", len(list), err)
	}
}

// TestLongRequestOutlivesReadTimeout: once read, a request may take far
// longer than the read timeout (here a wait for ready that times out).
func TestLongRequestOutlivesReadTimeout(t *testing.T) {
	f := newHardFleet(t, 0, 0)
	f.rt.SetStartHook(nil)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.url+"/sessions/"+f.id+"?wait=ready&timeout=1.5s", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("after %v: %v", time.Since(t0), err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(b), apitype.CodeNotReady) {
		t.Errorf("wait past the read timeout: %d %s, want 504 not_ready", resp.StatusCode, b)
	}
}

// TestJSONIsNeitherSniffedNorCached checks the headers of JSON answers,
// successes and errors alike.
func TestJSONIsNeitherSniffedNorCached(t *testing.T) {
	f := newHardFleet(t, 0, 0)
	for _, path := range []string{"/sessions", "/sessions/" + f.id, "/health", "/sessions/nope", "/no-route"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if !strings.HasPrefix(h.Get("Content-Type"), "application/json") || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: %d Content-Type %q, X-Content-Type-Options %q, Cache-Control %q", path, resp.StatusCode,
				h.Get("Content-Type"), h.Get("X-Content-Type-Options"), h.Get("Cache-Control"))
		}
	}
}

// post sends an authenticated POST and returns the status and error code.
func (f *hardFleet) post(t *testing.T, path, body string) (*http.Response, apitype.ErrorDetail) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, f.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return &http.Response{}, apitype.ErrorDetail{}
	}
	defer resp.Body.Close()
	var e apitype.Error
	if resp.StatusCode >= 400 {
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &e); err != nil {
			t.Errorf("POST %s: %d %s: not the error shape", path, resp.StatusCode, b)
		}
	}
	return resp, e.Err
}

// TestTooManySessions sends a burst of creates past the session limit:
// exactly the limit is reached, the rest get 429 too_many_sessions, and
// nothing of theirs exists (no row, no desktop).
func TestTooManySessions(t *testing.T) {
	const limit, burst = 4, 20
	f := newHardFleet(t, limit, 0)
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range burst {
		wg.Go(func() {
			resp, e := f.post(t, "/sessions", `{}`)
			mu.Lock()
			defer mu.Unlock()
			codes[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests && e.Code != apitype.CodeTooManySessions {
				t.Errorf("429 with code %q, want %s", e.Code, apitype.CodeTooManySessions)
			}
		})
	}
	wg.Wait()
	if codes[http.StatusCreated] != limit-1 || codes[http.StatusTooManyRequests] != burst-limit+1 {
		t.Errorf("answers %v: want %d × 201 (with the fixture, %d) and the rest 429", codes, limit-1, limit)
	}
	if list, _ := f.st.ListSessions(t.Context()); len(list) != limit {
		t.Errorf("%d sessions stored, want %d", len(list), limit)
	}
	if n := f.rt.Len(); n != limit {
		t.Errorf("%d desktops, want %d", n, limit)
	}
}

// TestTooManyStreams holds audit follows open up to the per-token limit:
// one more gets 429 too_many_streams with a Retry-After, and closing one
// frees its place.
func TestTooManyStreams(t *testing.T) {
	const limit = 3
	f := newHardFleet(t, 0, limit)
	follow := func(ctx context.Context) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.url+"/sessions/"+f.id+"/audit?follow=1", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		return http.DefaultClient.Do(req)
	}
	var cancels []context.CancelFunc
	for i := range limit {
		ctx, cancel := context.WithCancel(t.Context())
		cancels = append(cancels, cancel)
		defer cancel()
		resp, err := follow(ctx)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("follow %d: %v %v", i, resp, err)
		}
		defer resp.Body.Close()
	}
	resp, err := follow(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), apitype.CodeTooManyStreams) || resp.Header.Get("Retry-After") == "" {
		t.Errorf("one follow too many: %d %s (Retry-After %q), want 429 too_many_streams with a Retry-After", resp.StatusCode, b, resp.Header.Get("Retry-After"))
	}
	// A plain read of the audit is no stream and still works.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.url+"/sessions/"+f.id+"/audit", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("audit read at the stream limit: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	cancels[0]()
	deadline := time.Now().Add(cutWithin)
	for {
		resp, err := follow(t.Context())
		if err == nil && resp.StatusCode == http.StatusOK {
			resp.Body.Close()
			break
		}
		if err == nil {
			resp.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed follow did not free its place: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRevokeEmbedTokensRoute revokes a session's links through the API:
// a link minted before is refused, one minted after works, the audit says
// who revoked, and bad requests change nothing.
func TestRevokeEmbedTokensRoute(t *testing.T) {
	f := newHardFleet(t, 0, 0)
	get := func(path string) int {
		resp, err := http.Get(f.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	old, err := f.view.Link(t.Context(), f.id, view.ModeControl, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := get(old.URL); got != http.StatusOK {
		t.Fatalf("a fresh link: %d", got)
	}
	for path, want := range map[string]int{"/sessions/sess_" + strings.Repeat("z", 26) + "/embed-tokens/revoke": 404, "/sessions/nope/embed-tokens/revoke": 400} {
		if resp, _ := f.post(t, path, ""); resp.StatusCode != want {
			t.Errorf("POST %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, f.url+"/sessions/"+f.id+"/embed-tokens/revoke", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("revoke without a token: %v %v, want 401", resp, err)
	}
	if got := get(old.URL); got != http.StatusOK {
		t.Fatalf("refused requests revoked the link: %d", got)
	}

	resp, e := f.post(t, "/sessions/"+f.id+"/embed-tokens/revoke", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d %+v", resp.StatusCode, e)
	}
	if got := get(old.URL); got != http.StatusForbidden {
		t.Errorf("a revoked link: %d, want 403", got)
	}
	fresh, err := f.view.Link(t.Context(), f.id, view.ModeView, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := get(fresh.URL); got != http.StatusOK {
		t.Errorf("a link minted after the revocation: %d, want 200", got)
	}
	var revocations int
	for e, err := range f.audit.Read(t.Context(), f.id, audit.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind == audit.KindView && e.Detail["event"] == "revoke" {
			revocations++
			if e.Actor != audit.ActorToken+"api" {
				t.Errorf("revocation audited as %q", e.Actor)
			}
		}
	}
	if revocations != 1 {
		t.Errorf("%d revocations audited, want 1", revocations)
	}
}
