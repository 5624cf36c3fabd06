package sessions_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/audit"
	"atelier/internal/control"
	"atelier/internal/fleetwire"
	"atelier/internal/sessions"
	"atelier/internal/sessions/sessionstest"
	"atelier/internal/store"
)

// TestLifecycleAudited checks that the manager itself writes a session's
// lifecycle to the audit log: what a caller does under its actor, and a
// restart of a dead desktop by the reconcile loop under the fleet's.
// auditedManager opens a manager over the fake runtime that records to a
// real audit log and admits input through leases.
func auditedManager(t *testing.T, rt *sessionstest.Runtime, leases *control.Leases) (*sessions.Manager, *audit.Log) {
	t.Helper()
	dir := t.TempDir()
	log, err := audit.Open(filepath.Join(dir, "audit"), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	st, err := store.Open(t.Context(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := sessions.Open(t.Context(), sessions.Options{Runtime: rt, Store: st, Auditor: fleetwire.Audit{Log: log},
		Control: leases, Reconcile: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); st.Close() })
	return m, log
}

// entries returns a session's audit entries of kind, each as "actor what".
func entries(t *testing.T, log *audit.Log, id string, kind audit.Kind) []string {
	t.Helper()
	var got []string
	for e, err := range log.Read(t.Context(), id, audit.Filter{Kinds: []audit.Kind{kind}}) {
		if err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprint(e.Detail["event"])
		if e.Result != nil {
			what = e.Result.Code
		}
		got = append(got, e.Actor+" "+what)
	}
	return got
}

func TestLifecycleAudited(t *testing.T) {
	rt := sessionstest.New()
	m, log := auditedManager(t, rt, nil)
	ctx := audit.WithActor(t.Context(), "token:api")
	s, err := m.Create(ctx, sessions.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Stop(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	rt.Stop(t.Context(), s.ID) // the desktop dies; the reconcile loop restarts it
	lifecycle := func() []string { return entries(t, log, s.ID, audit.KindSession) }
	for deadline := time.Now().Add(10 * time.Second); !slices.Contains(lifecycle(), "fleet restarted"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no restart audited in 10s; the audit has %q", lifecycle())
		}
	}
	// The restart is audited before its operation lock is let go.
	for err := m.Delete(ctx, s.ID, false); err != nil; err = m.Delete(ctx, s.ID, false) {
		if !errors.Is(err, sessions.ErrBusy) {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	want := []string{"token:api created", "token:api stopped", "token:api started", "fleet restarted", "token:api deleted"}
	if got := lifecycle(); !slices.Equal(got, want) {
		t.Errorf("lifecycle audit = %q, want %q", got, want)
	}
}

// TestActPipeline checks Act's steps for any caller: a bad action is
// refused with the protocol's code and records nothing; the control lease
// refuses input of anyone but its holder, each action of the call then
// recorded as not run under the caller's actor; the holder's input passes
// to the agent (here a desktop that does not answer), and what follows a
// failure is recorded as not run.
func TestActPipeline(t *testing.T) {
	leases := control.New(control.Options{})
	t.Cleanup(leases.Close)
	m, log := auditedManager(t, sessionstest.New(), leases)
	ctx := t.Context()
	s, err := m.Create(ctx, sessions.CreateOptions{Resolution: "800x600"})
	if err != nil {
		t.Fatal(err)
	}
	click := agentapi.Request{Action: agentapi.LeftClick, Coordinate: &agentapi.Point{X: 10, Y: 10}}
	key := agentapi.Request{Action: agentapi.Key, Text: "a"}

	off := agentapi.Request{Action: agentapi.LeftClick, Coordinate: &agentapi.Point{X: 800, Y: 10}}
	_, err = m.Act(ctx, s.ID, sessions.Actor{Name: "token:mcp"}, []agentapi.Request{click, off}, nil)
	if pe, ok := errors.AsType[*agentapi.Error](err); !errors.Is(err, sessions.ErrBadAction) || !ok || pe.Code != agentapi.CodeBadCoordinate {
		t.Errorf("an action off the screen: %v; want ErrBadAction with code bad_coordinate", err)
	}

	lease, err := leases.TakeOver(ctx, s.ID, "token:ops", "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Act(ctx, s.ID, sessions.Actor{Name: "token:mcp"}, []agentapi.Request{click, key}, nil)
	if !errors.Is(err, control.ErrHeld) || len(res.Results) != 2 || res.Results[1].NotRun == nil {
		t.Errorf("input while a person holds control: %v, %+v; want ErrHeld, both not run", err, res.Results)
	}
	res, err = m.Act(ctx, s.ID, sessions.Actor{Name: "token:ops", Claim: control.Claim{Lease: lease.ID}}, []agentapi.Request{click, key}, nil)
	if !errors.Is(err, sessions.ErrUnavailable) || len(res.Results) != 2 || res.Results[0].Err == nil ||
		!errors.Is(res.Results[1].NotRun, sessions.ErrEarlierFailed) {
		t.Errorf("the holder's input to a silent desktop: %v, %+v; want ErrUnavailable, the second not run", err, res.Results)
	}
	want := []string{"token:mcp not_run", "token:mcp not_run", "token:ops unavailable", "token:ops not_run"}
	if got := entries(t, log, s.ID, audit.KindAction); !slices.Equal(got, want) {
		t.Errorf("action audit = %q, want %q", got, want)
	}
	if st := leases.State(s.ID); st.Holder == nil {
		t.Errorf("the lease was lost: %+v", st)
	}
}
