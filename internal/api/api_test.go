package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"atelier/internal/api"
	"atelier/internal/apitype"
	"atelier/internal/budget"
	"atelier/internal/client"
	"atelier/internal/control"
	"atelier/internal/fleetwire"
	"atelier/internal/model/scripted"
	"atelier/internal/sessions"
	"atelier/internal/sessions/sessionstest"
	"atelier/internal/store"
	"atelier/internal/tasks"
	"atelier/internal/view"
)

const token = "test-token-0123456789abcdef"

type fixture struct {
	srv    *api.Server
	rt     *sessionstest.Runtime
	url    string
	id     string // a session that exists
	leases *control.Leases
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, api.Options{})
}

// newFixtureWith is newFixture with the options extra sets (a logger, a
// readiness check); the fixture fills the parts it makes.
func newFixtureWith(t *testing.T, extra api.Options) *fixture {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	rt := sessionstest.New()
	leases := control.New(control.Options{})
	t.Cleanup(leases.Close)
	m, err := sessions.Open(t.Context(), sessions.Options{Runtime: rt, Store: st, Control: leases})
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Create(t.Context(), sessions.CreateOptions{Label: "fixture"})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := view.NewTokens(filepath.Join(t.TempDir(), "embed.key"))
	if err != nil {
		t.Fatal(err)
	}
	vh, err := view.NewHandler(view.Options{Dialer: m, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vh.Close() })
	b, err := budget.New(t.Context(), budget.Options{Store: st, CapUSD: 5})
	if err != nil {
		t.Fatal(err)
	}
	// The fake runtime's desktops have no agent: a task fails at its first
	// screenshot, which is enough to drive the task routes.
	tm, err := tasks.New(t.Context(), tasks.Options{Store: st, Budget: b, Desktops: fleetwire.Desktops{Sessions: m}, DataDir: t.TempDir(),
		Control: leases, Backends: map[string]tasks.Backend{"scripted": scripted.Backend{}}, DefaultBackend: "scripted"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tm.Close() })
	opts := extra
	opts.Sessions, opts.Token, opts.Version, opts.Budget, opts.Tasks, opts.View, opts.Control = m, token, "test", b, tm, vh, leases
	srv := api.New(opts)
	hs := httptest.NewServer(recording(srv))
	t.Cleanup(func() { hs.Close(); m.Close(); st.Close() })
	return &fixture{srv: srv, rt: rt, url: hs.URL, id: s.ID, leases: leases}
}

// do sends a request with the right token unless auth is set ("" for none).
func (f *fixture) do(t *testing.T, method, path, body string, auth ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	a := "Bearer " + token
	if len(auth) > 0 {
		a = auth[0]
	}
	if a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// apiErr decodes an error body, failing the test if it is not one.
func apiErr(t *testing.T, b []byte) apitype.ErrorDetail {
	t.Helper()
	var e apitype.Error
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil || e.Err.Code == "" || e.Err.Message == "" {
		t.Fatalf("not an API error body (%v): %s", err, b)
	}
	return e.Err
}

func TestAuthEveryRoute(t *testing.T) {
	f := newFixture(t)
	open := map[string]bool{}
	for _, p := range f.srv.OpenPatterns() {
		open[p] = true
	}
	if len(f.srv.Patterns()) < 12 {
		t.Fatalf("only %d routes enumerated: %v", len(f.srv.Patterns()), f.srv.Patterns())
	}
	for _, p := range f.srv.Patterns() {
		method, path, _ := strings.Cut(p, " ")
		path = strings.ReplaceAll(path, "{id}", f.id)
		refused := []struct {
			name, path, auth string
		}{
			{"no token", path, ""},
			{"wrong token", path, "Bearer wrong-token-0123456789abcdef"},
			{"not bearer", path, "Basic " + token},
			{"token in query", path + "?token=" + token, ""},
			{"token in query with header", path + "?access_token=" + token, "Bearer " + token},
			{"token value under another name", path + "?x=" + token, "Bearer " + token},
		}
		for _, c := range refused {
			t.Run(p+"/"+c.name, func(t *testing.T) {
				resp, b := f.do(t, method, c.path, "{}", c.auth)
				if open[p] {
					if resp.StatusCode == http.StatusUnauthorized {
						t.Errorf("open route refused: %s", b)
					}
					// The live view's page and socket are gated by the
					// embed token instead: a bearer token is no substitute.
					if embedGated(p) && resp.StatusCode != http.StatusForbidden {
						t.Errorf("token-gated route without an embed token: status %d, want 403: %s", resp.StatusCode, b)
					}
					return
				}
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401: %s", resp.StatusCode, b)
				}
				if e := apiErr(t, b); e.Code != apitype.CodeUnauthorized {
					t.Errorf("code %q", e.Code)
				}
				if strings.Contains(c.path, "token=") && !strings.Contains(string(b), "query string") {
					t.Errorf("a token in the query is not named as the reason: %s", b)
				}
			})
		}
		t.Run(p+"/right token", func(t *testing.T) {
			// An empty JSON object is a valid body for most routes; what
			// matters is that the token is let through.
			if p == "GET /events" {
				// A stream that runs until its reader leaves: the status
				// is what matters.
				ctx, cancel := context.WithCancel(t.Context())
				err := client.New(f.url, token, nil).SessionEvents(ctx, cancel, func(apitype.SessionEvent) error { return nil })
				if !errors.Is(err, context.Canceled) {
					t.Errorf("with the right token: %v, want the stream open", err)
				}
				return
			}
			resp, b := f.do(t, method, path, "{}")
			if resp.StatusCode == http.StatusUnauthorized {
				t.Errorf("status 401 with the right token: %s", b)
			}
		})
	}
}

// embedGated reports whether route p is gated by an embed token.
func embedGated(p string) bool {
	_, path, _ := strings.Cut(p, " ")
	return strings.HasPrefix(path, "/sessions/{id}/embed") || path == "/sessions/{id}/vnc"
}

func TestSessionRoutes(t *testing.T) {
	f := newFixture(t)
	resp, b := f.do(t, "POST", "/sessions", `{"label":"alice","theme":"graphite","resolution":"1024x768"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var s apitype.Session
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.ID == "" || s.SessionID != s.ID || s.State != apitype.StateStarting || s.Resolution != "1024x768" || s.Theme != "graphite" {
		t.Errorf("create answered %+v", s)
	}
	if loc := resp.Header.Get("Location"); loc != "/sessions/"+s.ID {
		t.Errorf("Location = %q", loc)
	}
	if s.Egress.Mode != "open" || s.Egress.Source != "fleet" {
		t.Errorf("egress of a session without one: %+v, want the fleet's open", s.Egress)
	}
	resp, b = f.do(t, "POST", "/sessions", `{"egress":{"mode":"allowlist","allow":["GitHub.com","*.example.org"]}}`)
	var own apitype.Session
	json.Unmarshal(b, &own)
	if resp.StatusCode != http.StatusCreated || own.Egress.Mode != "allowlist" || own.Egress.Source != "session" ||
		strings.Join(own.Egress.Allow, ",") != "github.com,*.example.org" {
		t.Errorf("create with an egress policy: %d %s", resp.StatusCode, b)
	}
	f.do(t, "DELETE", "/sessions/"+own.ID+"?purge=true", "")
	resp, b = f.do(t, "POST", "/sessions", "")
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("create without a body: %d %s", resp.StatusCode, b)
	}

	var list apitype.SessionList
	resp, b = f.do(t, "GET", "/sessions", "")
	if err := json.Unmarshal(b, &list); err != nil || resp.StatusCode != 200 || len(list.Sessions) != 3 {
		t.Fatalf("list: %d %s", resp.StatusCode, b)
	}
	for _, step := range []struct{ method, path, body, state string }{
		{"POST", "/sessions/" + s.ID + "/stop", "", apitype.StateStopped},
		{"GET", "/sessions/" + s.ID, "", apitype.StateStopped},
		{"PUT", "/sessions/" + s.ID + "/theme", `{"theme":"terracotta"}`, apitype.StateStopped},
		{"POST", "/sessions/" + s.ID + "/start", "", apitype.StateStarting},
	} {
		resp, b := f.do(t, step.method, step.path, step.body)
		var got apitype.Session
		json.Unmarshal(b, &got)
		if resp.StatusCode != 200 || got.State != step.state {
			t.Errorf("%s %s: %d state %q, want 200 %q: %s", step.method, step.path, resp.StatusCode, got.State, step.state, b)
		}
	}
	resp, b = f.do(t, "GET", "/sessions/"+s.ID, "")
	h := sessionstest.FakeHome
	if want := fmt.Sprintf(`"home":{"used_bytes":%d,"free_bytes":%d,"quota_bytes":%d}`, h.Used, h.Free, h.Quota); !strings.Contains(string(b), want) {
		t.Errorf("a session's home: %s, want %s", b, want)
	}
	if d, _ := f.rt.Desktop(s.ID); d.Files["theme"] != "terracotta\n" {
		t.Errorf("theme file after a start = %q", d.Files["theme"])
	}
	resp, b = f.do(t, "GET", "/sessions/"+s.ID+"/screenshot", "")
	if e := apiErr(t, b); resp.StatusCode != http.StatusServiceUnavailable || e.Code != apitype.CodeUnavailable {
		t.Errorf("screenshot without an agent: %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, "GET", "/sessions/"+s.ID+"?wait=ready&timeout=0.1", "")
	if e := apiErr(t, b); resp.StatusCode != http.StatusGatewayTimeout || e.Code != apitype.CodeNotReady || !strings.Contains(e.Message, s.ID) {
		t.Errorf("wait on a silent desktop: %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, "DELETE", "/sessions/"+s.ID+"?purge=true", "")
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("delete: %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, "GET", "/sessions/"+s.ID, "")
	if e := apiErr(t, b); resp.StatusCode != 404 || e.Code != apitype.CodeNotFound {
		t.Errorf("get after delete: %d %s", resp.StatusCode, b)
	}

	resp, b = f.do(t, "GET", "/health", "", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"version":"test"`) {
		t.Errorf("health: %d %s", resp.StatusCode, b)
	}
	resp, b = f.do(t, "GET", "/budget", "")
	var bu apitype.Budget
	if json.Unmarshal(b, &bu); resp.StatusCode != 200 || bu.CapUSD != 5 || bu.SpentUSD != 0 || bu.Day == "" {
		t.Errorf("budget: %d %s", resp.StatusCode, b)
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t)
	sid := "/sessions/" + f.id
	huge := `{"label":"` + strings.Repeat("a", 100<<10) + `"}`
	hugeActions := `[` + strings.Repeat(`{"action":"wait","duration":0.1},`, 200_000) + `{"action":"wait","duration":0.1}]`
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"malformed JSON", "POST", "/sessions", `{"label":`, 400, apitype.CodeBadRequest},
		{"not an object", "POST", "/sessions", `"alice"`, 400, apitype.CodeBadRequest},
		{"unknown field", "POST", "/sessions", `{"label":"a","colour":"red"}`, 400, apitype.CodeBadRequest},
		{"wrong type", "POST", "/sessions", `{"label":7}`, 400, apitype.CodeBadRequest},
		{"two values", "POST", "/sessions", `{"label":"a"}{"label":"b"}`, 400, apitype.CodeBadRequest},
		{"huge body", "POST", "/sessions", huge, 413, apitype.CodeTooLarge},
		{"bad theme", "POST", "/sessions", `{"theme":"neon"}`, 400, apitype.CodeBadTheme},
		{"bad resolution", "POST", "/sessions", `{"resolution":"100000x2"}`, 400, apitype.CodeBadResolution},
		{"malformed resolution", "POST", "/sessions", `{"resolution":"hd"}`, 400, apitype.CodeBadResolution},
		{"snapshot unavailable", "POST", "/sessions", `{"snapshot_id":"snap_x"}`, 400, apitype.CodeBadRequest},
		{"bad egress mode", "POST", "/sessions", `{"egress":{"mode":"sideways"}}`, 400, apitype.CodeBadRequest},
		{"allowlist without hosts", "POST", "/sessions", `{"egress":{"mode":"allowlist"}}`, 400, apitype.CodeBadRequest},
		{"bad egress pattern", "POST", "/sessions", `{"egress":{"mode":"allowlist","allow":["a b"]}}`, 400, apitype.CodeBadRequest},
		{"bad wait", "POST", "/sessions?wait=forever", `{}`, 400, apitype.CodeBadRequest},
		{"bad timeout", "POST", "/sessions?wait=ready&timeout=-1s", `{}`, 400, apitype.CodeBadRequest},
		{"timeout too long", "POST", "/sessions?wait=ready&timeout=1h", `{}`, 400, apitype.CodeBadRequest},
		{"bad id", "GET", "/sessions/nope", ``, 400, apitype.CodeBadID},
		{"bad id delete", "DELETE", "/sessions/..%2f..%2fetc", ``, 400, apitype.CodeBadID},
		{"unknown id", "GET", "/sessions/sess_aaaaaaaaaaaaaaaaaaaaaaaaaa", ``, 404, apitype.CodeNotFound},
		{"unknown id theme", "PUT", "/sessions/sess_aaaaaaaaaaaaaaaaaaaaaaaaaa/theme", `{"theme":"graphite"}`, 404, apitype.CodeNotFound},
		{"bad purge", "DELETE", sid + "?purge=maybe", ``, 400, apitype.CodeBadRequest},
		{"theme missing", "PUT", sid + "/theme", `{}`, 400, apitype.CodeBadTheme},
		{"theme unknown", "PUT", sid + "/theme", `{"theme":"neon"}`, 400, apitype.CodeBadTheme},
		{"theme unknown field", "PUT", sid + "/theme", `{"theme":"graphite","live":true}`, 400, apitype.CodeBadRequest},
		{"screenshot format", "GET", sid + "/screenshot?format=gif", ``, 400, apitype.CodeBadRequest},
		{"screenshot scale", "GET", sid + "/screenshot?scale=2", ``, 400, apitype.CodeBadRequest},
		{"screenshot scale text", "GET", sid + "/screenshot?scale=half", ``, 400, apitype.CodeBadRequest},
		{"screenshot region", "GET", sid + "/screenshot?region=0,0,10", ``, 400, apitype.CodeBadRequest},
		{"screenshot empty region", "GET", sid + "/screenshot?region=0,0,0,10", ``, 400, apitype.CodeBadRequest},
		{"actions empty", "POST", sid + "/actions", ``, 400, apitype.CodeBadAction},
		{"actions empty list", "POST", sid + "/actions", `[]`, 400, apitype.CodeBadAction},
		{"actions unknown verb", "POST", sid + "/actions", `{"action":"explode"}`, 400, apitype.CodeUnknownAction},
		{"actions unknown field", "POST", sid + "/actions", `[{"action":"left_click","force":9}]`, 400, apitype.CodeBadAction},
		{"actions bad version", "POST", sid + "/actions", `{"v":2,"action":"left_click"}`, 400, apitype.CodeBadVersion},
		{"actions out of bounds", "POST", sid + "/actions", `[{"action":"wait","duration":0.1},{"action":"left_click","coordinate":[5000,10]}]`, 400, apitype.CodeBadCoordinate},
		{"actions missing field", "POST", sid + "/actions", `{"actions":[{"action":"type"}]}`, 400, apitype.CodeMissingField},
		{"actions long unknown", "POST", sid + "/actions", `{"actions":[],"later":true}`, 400, apitype.CodeBadRequest},
		{"actions bad settle", "POST", sid + "/actions", `{"actions":[{"action":"wait","duration":0.1}],"observe":true,"settle":99}`, 400, apitype.CodeBadRequest},
		{"actions huge", "POST", sid + "/actions", hugeActions, 413, apitype.CodeTooLarge},
		{"actions not json", "POST", sid + "/actions", `left_click`, 400, apitype.CodeBadRequest},
		{"no route", "GET", "/nowhere", ``, 404, apitype.CodeNotFound},
		{"wrong method", "PATCH", sid, `{}`, 405, apitype.CodeMethod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := f.do(t, tt.method, tt.path, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tt.status, b)
			}
			if e := apiErr(t, b); e.Code != tt.code {
				t.Errorf("code %q, want %q (%s)", e.Code, tt.code, e.Message)
			}
		})
	}
	// Nothing changed: one session, as it was, one desktop, its theme.
	_, b := f.do(t, "GET", "/sessions", "")
	var list apitype.SessionList
	json.Unmarshal(b, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].Theme != "terracotta" || list.Sessions[0].Label != "fixture" {
		t.Errorf("after bad input the sessions are %s", b)
	}
	if n := f.rt.Len(); n != 1 {
		t.Errorf("after bad input the runtime has %d desktops", n)
	}
	if d, _ := f.rt.Desktop(f.id); d.Files["theme"] != "terracotta\n" || !d.Running {
		t.Errorf("after bad input the desktop is %+v", d)
	}
}

func TestOpenWithoutToken(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := sessions.Open(t.Context(), sessions.Options{Runtime: sessionstest.New(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	hs := httptest.NewServer(recording(api.New(api.Options{Sessions: m})))
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/sessions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /sessions without a configured token: %d, want 200", resp.StatusCode)
	}
}

// The control routes refuse bad input with a clear error and change
// nothing: the person keeps the lease.
func TestControlRoutesRefuseBadInput(t *testing.T) {
	f := newFixture(t)
	path := "/sessions/" + f.id
	resp, b := f.do(t, "POST", path+"/takeover", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("takeover: %d %s", resp.StatusCode, b)
	}
	var lease control.Lease
	if err := json.Unmarshal(b, &lease); err != nil || lease.ID == "" {
		t.Fatalf("takeover answer %s: %v", b, err)
	}
	long := strings.Repeat("x", control.MaxMessageBytes+1)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"takeover with a body field", "POST", path + "/takeover", `{"force":true}`, 400, apitype.CodeBadRequest},
		{"takeover while held", "POST", path + "/takeover", "", 409, apitype.CodeControlHeld},
		{"takeover of no session", "POST", "/sessions/sess_aaaaaaaaaaaaaaaaaaaaaaaaaa/takeover", "", 404, apitype.CodeNotFound},
		{"handback not JSON", "POST", path + "/handback", `{"lease_id":`, 400, apitype.CodeBadRequest},
		{"handback unknown field", "POST", path + "/handback", `{"lease":"x"}`, 400, apitype.CodeBadRequest},
		{"handback without the lease", "POST", path + "/handback", `{}`, 409, apitype.CodeControlHeld},
		{"handback with a wrong lease", "POST", path + "/handback", `{"lease_id":"lease_0"}`, 409, apitype.CodeBadLease},
		{"handback message too long", "POST", path + "/handback", `{"lease_id":"` + lease.ID + `","message":"` + long + `"}`, 400, apitype.CodeBadRequest},
		{"input without the lease", "POST", path + "/actions", `{"action":"mouse_move","coordinate":[1,1]}`, 409, apitype.CodeControlHeld},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := f.do(t, tc.method, tc.path, tc.body)
			if e := apiErr(t, b); resp.StatusCode != tc.status || e.Code != tc.code {
				t.Errorf("%d %s; want %d %s", resp.StatusCode, b, tc.status, tc.code)
			}
			if st := f.leases.State(f.id); st.Holder == nil || st.Holder.Kind != control.KindPerson {
				t.Errorf("control after a refused request: %+v; want the person still holding", st)
			}
		})
	}
	_, b = f.do(t, "POST", path+"/actions", `{"action":"mouse_move","coordinate":[1,1]}`)
	if e := apiErr(t, b); e.Holder == nil || e.Holder.Kind != "person" {
		t.Errorf("control_held names no holder: %+v", e)
	}
}
