package view_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"atelier/internal/control"
	"atelier/internal/view"
)

// controlMux is a view with a real control lease, on which session s-1
// has task t-1.
func controlMux(t *testing.T) (http.Handler, *control.Leases, *view.Tokens) {
	t.Helper()
	leases := control.New(control.Options{})
	t.Cleanup(leases.Close)
	if err := leases.BeginTask("s-1", "t-1", nil); err != nil {
		t.Fatal(err)
	}
	tk, _ := newTokens(t)
	mux, _, _ := newMux(t, view.Options{Tokens: tk, Control: leases})
	return mux, leases, tk
}

// postControl posts body to session s-1's control route with token and
// the extra headers.
func postControl(mux http.Handler, token, body string, headers ...http.Header) *httptest.ResponseRecorder {
	return serveBody(mux, http.MethodPost, "/sessions/s-1/embed/control?token="+token, strings.NewReader(body), headers...)
}

// errorBody is the fleet's JSON error.
type errorBody struct {
	Error struct {
		Code, Message string
		Holder        *control.Holder
	}
}

func decodeJSON[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q, want application/json", ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("body %s: %v", rec.Body, err)
	}
	return v
}

func TestControlState(t *testing.T) {
	mux, _, tk := controlMux(t)
	for _, mode := range []view.Mode{view.ModeView, view.ModeControl} {
		rec := serve(mux, http.MethodGet, "/sessions/s-1/embed/control?token="+mint(t, tk, "s-1", mode, time.Minute))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d %s", mode, rec.Code, rec.Body)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", mode, cc)
		}
		st := decodeJSON[control.State](t, rec)
		if st.Session != "s-1" || st.Holder == nil || st.Holder.Kind != control.KindTask || st.Holder.Who != "t-1" ||
			st.Task != "t-1" || st.TaskState != control.TaskRunning {
			t.Errorf("%s: state %+v, want task t-1 holding and running", mode, st)
		}
	}
	for _, target := range []string{
		"/sessions/s-1/embed/control",
		"/sessions/s-1/embed/control?token=" + mint(t, tk, "s-2", view.ModeControl, time.Minute),
	} {
		if rec := serve(mux, http.MethodGet, target); rec.Code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", target, rec.Code)
		}
	}
}

// A control viewer takes control, is the only one whose input passes,
// and hands it back with a message the task hears.
func TestControlTakeOverAndHandBack(t *testing.T) {
	mux, leases, tk := controlMux(t)
	tok := mint(t, tk, "s-1", view.ModeControl, time.Minute)
	sameOrigin := http.Header{"Origin": {"http://example.com"}} // httptest's host

	rec := postControl(mux, tok, `{"action":"takeover","viewer":"v-1"}`, sameOrigin)
	if rec.Code != http.StatusOK {
		t.Fatalf("takeover: status %d %s", rec.Code, rec.Body)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	lease := decodeJSON[control.Lease](t, rec)
	if lease.ID == "" || lease.Holder.Kind != control.KindPerson || lease.Holder.Who != "viewer:control" || lease.PausedTask != "t-1" {
		t.Errorf("lease %+v, want a person's lease (viewer:control) that paused t-1", lease)
	}
	st := leases.State("s-1")
	if st.Holder == nil || st.Holder.Kind != control.KindPerson || st.TaskState != control.TaskPausedForHuman {
		t.Errorf("state after takeover %+v, want a person holding and the task paused", st)
	}
	if done, err := leases.Act("s-1", control.Claim{Viewer: "v-1"}); err != nil {
		t.Errorf("the viewer that took control: %v", err)
	} else {
		done()
	}
	if _, err := leases.Act("s-1", control.Claim{Viewer: "v-2"}); !errors.Is(err, control.ErrHeld) {
		t.Errorf("another viewer: %v, want ErrHeld", err)
	}

	// The same viewer again (a reload) gets the same lease.
	rec = postControl(mux, tok, `{"action":"takeover","viewer":"v-1"}`)
	if again := decodeJSON[control.Lease](t, rec); rec.Code != http.StatusOK || again.ID != lease.ID {
		t.Errorf("takeover again: status %d lease %s, want 200 and %s", rec.Code, again.ID, lease.ID)
	}
	// Another viewer is told who holds it.
	rec = postControl(mux, tok, `{"action":"takeover","viewer":"v-2"}`)
	held := decodeJSON[errorBody](t, rec)
	if rec.Code != http.StatusConflict || held.Error.Code != "control_held" || held.Error.Holder == nil ||
		held.Error.Holder.Who != "viewer:control" || !held.Error.Holder.Since.Equal(lease.Holder.Since) {
		t.Errorf("takeover by another viewer: status %d %s, want 409 control_held naming the holder", rec.Code, rec.Body)
	}
	// A wrong lease hands nothing back.
	rec = postControl(mux, tok, `{"action":"handback","lease_id":"lease_nope"}`)
	if e := decodeJSON[errorBody](t, rec); rec.Code != http.StatusConflict || e.Error.Code != "lease_invalid" {
		t.Errorf("handback with a wrong lease: status %d %s, want 409 no_lease", rec.Code, rec.Body)
	}
	if st := leases.State("s-1"); st.Holder == nil || st.Holder.Kind != control.KindPerson {
		t.Errorf("after a wrong handback, holder %+v, want the person still", st.Holder)
	}

	rec = postControl(mux, tok, `{"action":"handback","lease_id":"`+lease.ID+`","message":"saved the file"}`, sameOrigin)
	if rec.Code != http.StatusOK {
		t.Fatalf("handback: status %d %s", rec.Code, rec.Body)
	}
	if st := decodeJSON[control.State](t, rec); st.Holder == nil || st.Holder.Kind != control.KindTask || st.TaskState != control.TaskRunning {
		t.Errorf("state after handback %+v, want the task holding and running", st)
	}
	r, err := leases.WaitTurn(t.Context(), "s-1", "t-1")
	if err != nil || len(r.Periods) != 1 || r.Periods[0].Message != "saved the file" || r.Periods[0].InputEvents != 1 {
		t.Errorf("the task heard %+v (%v), want one period with the message and 1 input", r, err)
	}
}

// Refused control requests say why and change nothing.
func TestControlRefusals(t *testing.T) {
	mux, leases, tk := controlMux(t)
	ctl := mint(t, tk, "s-1", view.ModeControl, time.Minute)
	viewTok := mint(t, tk, "s-1", view.ModeView, time.Minute)
	takeover := `{"action":"takeover","viewer":"v-1"}`
	for _, tc := range []struct {
		name, token, body string
		origin            string
		status            int
		code              string
	}{
		{"view token", viewTok, takeover, "", 403, "token_mode"},
		{"no token", "", takeover, "", 403, "token_missing"},
		{"other origin", ctl, takeover, "https://elsewhere.example", 403, "bad_origin"},
		{"opaque origin", ctl, takeover, "null", 403, "bad_origin"},
		{"not JSON", ctl, `action=takeover`, "", 400, "bad_request"},
		{"empty body", ctl, ``, "", 400, "bad_request"},
		{"unknown field", ctl, `{"action":"takeover","viewer":"v-1","force":true}`, "", 400, "bad_request"},
		{"two objects", ctl, takeover + takeover, "", 400, "bad_request"},
		{"unknown action", ctl, `{"action":"steal","viewer":"v-1"}`, "", 400, "bad_request"},
		{"no action", ctl, `{"viewer":"v-1"}`, "", 400, "bad_request"},
		{"oversized", ctl, `{"action":"handback","message":"` + strings.Repeat("x", 9<<10) + `"}`, "", 413, "too_large"},
		{"no viewer", ctl, `{"action":"takeover"}`, "", 400, "bad_viewer"},
		{"viewer with a slash", ctl, `{"action":"takeover","viewer":"../v"}`, "", 400, "bad_viewer"},
		{"viewer too long", ctl, `{"action":"takeover","viewer":"` + strings.Repeat("v", 65) + `"}`, "", 400, "bad_viewer"},
		{"takeover with a message", ctl, `{"action":"takeover","viewer":"v-1","message":"hi"}`, "", 400, "bad_request"},
		{"handback naming a viewer", ctl, `{"action":"handback","viewer":"v-1"}`, "", 400, "bad_request"},
		{"handback of a lease not held", ctl, `{"action":"handback","lease_id":"lease_x"}`, "", 409, "lease_invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr http.Header
			if tc.origin != "" {
				hdr = http.Header{"Origin": {tc.origin}}
			}
			rec := postControl(mux, tc.token, tc.body, hdr)
			e := decodeJSON[errorBody](t, rec)
			if rec.Code != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Errorf("status %d %s, want %d %s with a message", rec.Code, rec.Body, tc.status, tc.code)
			}
			if st := leases.State("s-1"); st.Holder == nil || st.Holder.Kind != control.KindTask || st.TaskState != control.TaskRunning {
				t.Errorf("state changed: %+v", st)
			}
		})
	}
}

// Nothing to hand back is a conflict, not a success.
func TestControlNothingHeld(t *testing.T) {
	mux, leases, tk := controlMux(t)
	leases.EndTask("s-1", "t-1")
	rec := postControl(mux, mint(t, tk, "s-1", view.ModeControl, time.Minute), `{"action":"handback"}`)
	if e := decodeJSON[errorBody](t, rec); rec.Code != http.StatusConflict || e.Error.Code != "nothing_to_hand_back" {
		t.Errorf("status %d %s, want 409 nothing_held", rec.Code, rec.Body)
	}
}

// Without a control lease the control routes are 404 and the page offers
// no control; with one, the page knows.
func TestControlOff(t *testing.T) {
	mux, _, tk := newMux(t, view.Options{})
	tok := mint(t, tk, "s-1", view.ModeControl, time.Minute)
	if rec := serve(mux, http.MethodGet, "/sessions/s-1/embed/control?token="+tok); rec.Code != http.StatusNotFound {
		t.Errorf("GET: status %d, want 404", rec.Code)
	}
	if rec := postControl(mux, tok, `{"action":"takeover","viewer":"v-1"}`); rec.Code != http.StatusNotFound {
		t.Errorf("POST: status %d, want 404", rec.Code)
	}
	if body := serve(mux, http.MethodGet, "/sessions/s-1/embed?token="+tok).Body.String(); !strings.Contains(body, `data-control="off"`) {
		t.Errorf("page without a lease does not say control is off:\n%s", body)
	}
	on, _, tk := controlMux(t)
	if body := serve(on, http.MethodGet, "/sessions/s-1/embed?token="+mint(t, tk, "s-1", view.ModeControl, time.Minute)).Body.String(); !strings.Contains(body, `data-control="on"`) {
		t.Errorf("page with a lease does not say control is on:\n%s", body)
	}
}

// A malformed viewer id is refused before anything is dialled.
func TestProxyRefusesBadViewer(t *testing.T) {
	dials := &countingDialer{}
	mux, _, tk := newMux(t, view.Options{Dialer: dials})
	tok := mint(t, tk, "s-1", view.ModeControl, time.Minute)
	for _, viewer := range []string{"a%20b", "x/y", strings.Repeat("v", 65), "%C3%A9"} {
		rec := serve(mux, http.MethodGet, "/sessions/s-1/vnc?token="+tok+"&viewer="+viewer, wsHeaders())
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"code":"bad_viewer"`) {
			t.Errorf("viewer %q: status %d %s, want 400 bad_viewer", viewer, rec.Code, rec.Body)
		}
	}
	if dials.n.Load() != 0 {
		t.Errorf("%d dials for refused viewers, want none", dials.n.Load())
	}
}
