package sessions_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/runtime"
	"atelier/internal/sessions"
	"atelier/internal/sessions/sessionstest"
	"atelier/internal/store"
)

func openManager(t *testing.T, rt runtime.Runtime, dbPath string) *sessions.Manager {
	t.Helper()
	st, err := store.Open(t.Context(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sessions.Open(t.Context(), sessions.Options{Runtime: rt, Store: st,
		Reconcile: 10 * time.Millisecond, ReadyGrace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); st.Close() })
	return m
}

func TestLifecycle(t *testing.T) {
	rt := sessionstest.New()
	m := openManager(t, rt, filepath.Join(t.TempDir(), "db"))
	ctx := t.Context()
	s, err := m.Create(ctx, sessions.CreateOptions{Label: "alice", Resolution: "1920x1080"})
	if err != nil {
		t.Fatal(err)
	}
	d, ok := rt.Desktop(s.ID)
	if !ok || !d.Running || d.Spec.Resolution != (desktop.Resolution{Width: 1920, Height: 1080}) || d.Spec.Theme != "terracotta" {
		t.Fatalf("after Create the runtime has %+v (exists %v)", d, ok)
	}
	// The fake has no agent: a running desktop that does not answer is
	// still starting within the grace time.
	if got, _ := m.Get(ctx, s.ID); got.State != sessions.StateStarting {
		t.Errorf("state = %s, want starting", got.State)
	}
	if _, err := m.WaitReady(ctx, s.ID, 100*time.Millisecond); !errors.Is(err, sessions.ErrNotReady) {
		t.Errorf("WaitReady on a silent agent = %v, want ErrNotReady", err)
	}

	if _, err := m.SetTheme(ctx, s.ID, "graphite"); err != nil {
		t.Fatal(err)
	}
	if d, _ := rt.Desktop(s.ID); d.Files[desktop.ThemeFile] != "graphite\n" {
		t.Errorf("theme file = %q, want graphite", d.Files[desktop.ThemeFile])
	}

	if _, err := m.Stop(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Get(ctx, s.ID); got.State != sessions.StateStopped || got.Desired != store.DesiredStopped {
		t.Errorf("after Stop: %s/%s", got.State, got.Desired)
	}
	if _, err := m.Screenshot(ctx, s.ID, sessions.ScreenshotOptions{}); !errors.Is(err, sessions.ErrNotRunning) {
		t.Errorf("Screenshot of a stopped session = %v, want ErrNotRunning", err)
	}
	if _, err := m.Start(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	if d, _ := rt.Desktop(s.ID); !d.Running {
		t.Error("not running after Start")
	}

	list, err := m.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != s.ID || list[0].Theme != "graphite" {
		t.Errorf("List = %+v, %v", list, err)
	}
	if err := m.Delete(ctx, s.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := rt.Desktop(s.ID); ok {
		t.Error("the desktop survived Delete")
	}
	if _, err := m.Get(ctx, s.ID); !errors.Is(err, sessions.ErrNoSession) {
		t.Errorf("Get after Delete = %v, want ErrNoSession", err)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	rt := sessionstest.New()
	m := openManager(t, rt, filepath.Join(t.TempDir(), "db"))
	ctx := t.Context()
	s, err := m.Create(ctx, sessions.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct {
		o    sessions.CreateOptions
		want error
	}{
		"theme":          {sessions.CreateOptions{Theme: "neon"}, sessions.ErrBadTheme},
		"theme shape":    {sessions.CreateOptions{Theme: "../x"}, sessions.ErrBadTheme},
		"resolution":     {sessions.CreateOptions{Resolution: "99999x1"}, sessions.ErrBadResolution},
		"odd resolution": {sessions.CreateOptions{Resolution: "1281x720"}, sessions.ErrBadResolution},
		"not resolution": {sessions.CreateOptions{Resolution: "big"}, sessions.ErrBadResolution},
		"label control":  {sessions.CreateOptions{Label: "a\x00b"}, sessions.ErrBadInput},
		"label long":     {sessions.CreateOptions{Label: string(make([]byte, 65))}, sessions.ErrBadInput},
		"snapshot":       {sessions.CreateOptions{SnapshotID: "snap_x"}, sessions.ErrBadInput},
	} {
		if _, err := m.Create(ctx, tt.o); !errors.Is(err, tt.want) {
			t.Errorf("%s: Create = %v, want %v", name, err, tt.want)
		}
	}
	if _, err := m.SetTheme(ctx, s.ID, "neon"); !errors.Is(err, sessions.ErrBadTheme) {
		t.Errorf("SetTheme(neon) = %v", err)
	}
	for _, id := range []string{"nope", "sess_" + "zzzzzzzzzzzzzzzzzzzzzzzzzz"} {
		want := sessions.ErrBadID
		if id != "nope" {
			want = sessions.ErrNoSession
		}
		if _, err := m.Get(ctx, id); !errors.Is(err, want) {
			t.Errorf("Get(%q) = %v, want %v", id, err, want)
		}
		if err := m.Delete(ctx, id, true); !errors.Is(err, want) {
			t.Errorf("Delete(%q) = %v, want %v", id, err, want)
		}
	}
	list, _ := m.List(ctx)
	if len(list) != 1 || list[0].Theme != "terracotta" {
		t.Errorf("after refused input the sessions are %+v", list)
	}
	if d, _ := rt.Desktop(s.ID); d.Files[desktop.ThemeFile] != "terracotta\n" {
		t.Errorf("theme file = %q", d.Files[desktop.ThemeFile])
	}
	if n := rt.Len(); n != 1 {
		t.Errorf("runtime has %d desktops, want 1", n)
	}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	rt := sessionstest.New()
	rt.StartHook = func(string) error { return errors.New("no sway") }
	m := openManager(t, rt, filepath.Join(t.TempDir(), "db"))
	if _, err := m.Create(t.Context(), sessions.CreateOptions{}); err == nil {
		t.Fatal("Create succeeded although the desktop does not start")
	}
	if list, _ := m.List(t.Context()); len(list) != 0 {
		t.Errorf("a failed create left %+v", list)
	}
	if l, _ := rt.List(t.Context()); len(l) != 0 {
		t.Errorf("a failed create left desktops %+v", l)
	}
}

func TestReadoption(t *testing.T) {
	rt := sessionstest.New()
	db := filepath.Join(t.TempDir(), "db")
	ctx := t.Context()
	st, err := store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := sessions.Open(ctx, sessions.Options{Runtime: rt, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	running, _ := m1.Create(ctx, sessions.CreateOptions{Label: "running"})
	died, _ := m1.Create(ctx, sessions.CreateOptions{Label: "died"})
	lost, _ := m1.Create(ctx, sessions.CreateOptions{Label: "lost"})
	stopped, _ := m1.Create(ctx, sessions.CreateOptions{Label: "stopped"})
	if _, err := m1.Stop(ctx, stopped.ID); err != nil {
		t.Fatal(err)
	}
	m1.Close()
	st.Close()
	// While no fleet runs: one desktop dies, one vanishes, one stopped
	// session's desktop is started behind the fleet's back.
	rt.Stop(ctx, died.ID)
	rt.Remove(ctx, lost.ID, false)
	rt.Start(ctx, stopped.ID)

	m2 := openManager(t, rt, db)
	for id, want := range map[string]bool{running.ID: true, died.ID: true, lost.ID: true, stopped.ID: false} {
		d, ok := rt.Desktop(id)
		if !ok || d.Running != want {
			t.Errorf("after re-adoption %s: exists %v running %v, want running %v", id, ok, d.Running, want)
		}
	}
	if n := rt.Starts(running.ID); n != 1 {
		t.Errorf("the running desktop was started %d times, want once (adopted, not restarted)", n)
	}
	list, err := m2.List(ctx)
	if err != nil || len(list) != 4 {
		t.Fatalf("List after restart: %d sessions, %v", len(list), err)
	}
	labels := []string{}
	for _, s := range list {
		labels = append(labels, s.Label)
	}
	if !slices.Equal(labels, []string{"running", "died", "lost", "stopped"}) {
		t.Errorf("labels after restart = %v", labels)
	}
}

func TestReconcileRestartsDeadDesktop(t *testing.T) {
	rt := sessionstest.New()
	starts := make(chan error, 10)
	var fail atomic.Bool
	rt.StartHook = func(string) error {
		var err error
		if fail.Load() {
			err = errors.New("out of memory")
		}
		starts <- err
		return err
	}
	m := openManager(t, rt, filepath.Join(t.TempDir(), "db"))
	s, err := m.Create(t.Context(), sessions.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	<-starts
	fail.Store(true)
	rt.Stop(t.Context(), s.ID) // the whole desktop dies, and will not start
	if err := <-starts; err == nil {
		t.Fatal("the fake did not fail")
	}
	<-starts // the next round: by now the first failure is recorded
	got, err := m.Get(t.Context(), s.ID)
	if err != nil || got.State != sessions.StateFailed || got.Reason == "" {
		t.Errorf("after a failed restart: %s (%s), %v; want failed with a reason", got.State, got.Reason, err)
	}
	fail.Store(false)
	for err := range starts {
		if err == nil {
			break
		}
	}
	// The hook runs just before the fake marks the desktop running.
	for deadline := time.Now().Add(5 * time.Second); rt.Starts(s.ID) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the manager did not restart the dead desktop")
		}
	}
}

func TestBusy(t *testing.T) {
	rt := sessionstest.New()
	release := make(chan struct{})
	entered := make(chan struct{})
	rt.CreateHook = func(s runtime.Spec) error {
		if s.Label == "slow" {
			close(entered)
			<-release
		}
		return nil
	}
	m := openManager(t, rt, filepath.Join(t.TempDir(), "db"))
	done := make(chan error)
	go func() {
		_, err := m.Create(t.Context(), sessions.CreateOptions{Label: "slow"})
		done <- err
	}()
	<-entered
	list, err := m.List(t.Context())
	if err != nil || len(list) != 1 || list[0].State != sessions.StateCreating {
		t.Errorf("while creating: %+v, %v", list, err)
	}
	if _, err := m.Stop(t.Context(), list[0].ID); !errors.Is(err, sessions.ErrBusy) {
		t.Errorf("Stop while creating = %v, want ErrBusy", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// deleteDuringInspect deletes a session from inside the reconcile loop's
// inspect of it: after the round listed it, before it acts on that list.
type deleteDuringInspect struct {
	*sessionstest.Runtime
	hook atomic.Pointer[func(id string)]
}

func (r *deleteDuringInspect) Inspect(ctx context.Context, id string) (runtime.Instance, error) {
	if h := r.hook.Swap(nil); h != nil {
		(*h)(id)
	}
	return r.Runtime.Inspect(ctx, id)
}

// TestReconcileKeepsADeletedSessionDeleted: a reconcile round that listed a
// session before a delete must not create its desktop again.
func TestReconcileKeepsADeletedSessionDeleted(t *testing.T) {
	rt := &deleteDuringInspect{Runtime: sessionstest.New()}
	m := openManager(t, rt, filepath.Join(t.TempDir(), "db"))
	ctx := t.Context()
	s, err := m.Create(ctx, sessions.CreateOptions{Label: "deleted"})
	if err != nil {
		t.Fatal(err)
	}
	deleted := make(chan error, 1)
	h := func(id string) {
		if id == s.ID {
			deleted <- m.Delete(ctx, s.ID, false)
		}
	}
	rt.hook.Store(&h)
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // ten rounds of the 10 ms reconcile
	if d, ok := rt.Desktop(s.ID); ok {
		t.Errorf("a deleted session's desktop came back: %+v", d)
	}
}
