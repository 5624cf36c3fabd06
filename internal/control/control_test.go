package control_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"atelier/internal/control"
)

// recorder keeps every change a Leases reports.
type recorder struct {
	mu      sync.Mutex
	changes []control.Change
}

func (r *recorder) add(c control.Change) {
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
}

func (r *recorder) whys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.changes {
		out = append(out, c.Why)
	}
	return out
}

func newLeases(t *testing.T, idle time.Duration) (*control.Leases, *recorder) {
	t.Helper()
	rec := &recorder{}
	l := control.New(control.Options{IdleTimeout: idle, OnChange: rec.add})
	t.Cleanup(l.Close)
	return l, rec
}

func mustAct(t *testing.T, l *control.Leases, c control.Claim) {
	t.Helper()
	done, err := l.Act("s1", c)
	if err != nil {
		t.Fatalf("act %+v: %v", c, err)
	}
	done()
}

func refused(t *testing.T, l *control.Leases, c control.Claim, want error) {
	t.Helper()
	done, err := l.Act("s1", c)
	if err == nil {
		done()
		t.Fatalf("act %+v was admitted; want %v", c, want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("act %+v: %v; want %v", c, err, want)
	}
}

func TestNobodyHoldingAdmitsAnyone(t *testing.T) {
	l, _ := newLeases(t, time.Minute)
	mustAct(t, l, control.Claim{})
	mustAct(t, l, control.Claim{Viewer: "v1"})
	refused(t, l, control.Claim{Lease: "lease_gone"}, control.ErrNoLease)
	refused(t, l, control.Claim{Task: "task_old"}, control.ErrNotTask)
	if st := l.State("s1"); st.Holder != nil || st.Task != "" {
		t.Errorf("state with nobody: %+v", st)
	}
}

func TestTaskHoldsUntilAPersonTakesOver(t *testing.T) {
	l, rec := newLeases(t, time.Minute)
	var hooked []string
	var hmu sync.Mutex
	hook := func(c control.Change) { hmu.Lock(); hooked = append(hooked, c.Why); hmu.Unlock() }
	if err := l.BeginTask("s1", "task_a", hook); err != nil {
		t.Fatal(err)
	}
	if err := l.BeginTask("s1", "task_b", nil); !errors.Is(err, control.ErrTaskRunning) {
		t.Fatalf("second task: %v; want ErrTaskRunning", err)
	}
	mustAct(t, l, control.Claim{Task: "task_a"})
	refused(t, l, control.Claim{}, control.ErrHeld)
	refused(t, l, control.Claim{Viewer: "v1"}, control.ErrHeld)

	lease, err := l.TakeOver(t.Context(), "s1", "api", "")
	if err != nil {
		t.Fatal(err)
	}
	if lease.PausedTask != "task_a" || lease.ID == "" {
		t.Errorf("lease: %+v", lease)
	}
	st := l.State("s1")
	if st.Holder == nil || st.Holder.Kind != control.KindPerson || st.TaskState != control.TaskPausedForHuman {
		t.Errorf("state after takeover: %+v", st)
	}
	refused(t, l, control.Claim{Task: "task_a"}, control.ErrHeld)
	refused(t, l, control.Claim{}, control.ErrHeld)
	mustAct(t, l, control.Claim{Lease: lease.ID})
	mustAct(t, l, control.Claim{Lease: lease.ID, Inputs: 3})
	if _, err := l.TakeOver(t.Context(), "s1", "token:other", ""); !errors.Is(err, control.ErrHeld) {
		t.Fatalf("second takeover: %v; want ErrHeld", err)
	}
	if err := l.BeginTask("s1", "task_b", nil); !errors.Is(err, control.ErrTaskRunning) {
		t.Fatalf("task while paused: %v", err)
	}

	// The task waits for its turn until the hand-back, then hears of it.
	got := make(chan control.Resumed, 1)
	go func() {
		r, err := l.WaitTurn(context.Background(), "s1", "task_a")
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	select {
	case <-got:
		t.Fatal("WaitTurn returned while a person held the lease")
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := l.HandBack("s1", "api", "lease_wrong", ""); !errors.Is(err, control.ErrNoLease) {
		t.Fatalf("hand back with a wrong lease: %v", err)
	}
	c, err := l.HandBack("s1", "api", lease.ID, "I closed the dialog")
	if err != nil {
		t.Fatal(err)
	}
	if c.Period == nil || c.Period.InputEvents != 4 || c.To == nil || c.To.Who != "task_a" {
		t.Errorf("hand-back change: %+v (period %+v)", c, c.Period)
	}
	r := <-got
	if len(r.Periods) != 1 || r.Periods[0].Message != "I closed the dialog" || r.Periods[0].InputEvents != 4 {
		t.Errorf("resumed: %+v", r)
	}
	mustAct(t, l, control.Claim{Task: "task_a"})
	refused(t, l, control.Claim{Lease: lease.ID}, control.ErrNoLease)

	l.EndTask("s1", "task_a")
	mustAct(t, l, control.Claim{})
	want := []string{control.WhyTaskStart, control.WhyTakeover, control.WhyHandback, control.WhyTaskEnd}
	if got := rec.whys(); !equal(got, want) {
		t.Errorf("changes %v; want %v", got, want)
	}
	hmu.Lock()
	defer hmu.Unlock()
	if !equal(hooked, []string{control.WhyTakeover, control.WhyHandback}) {
		t.Errorf("the task's hook heard %v", hooked)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTakeOverWaitsForTheInputInFlight(t *testing.T) {
	l, _ := newLeases(t, time.Minute)
	if err := l.BeginTask("s1", "task_a", nil); err != nil {
		t.Fatal(err)
	}
	done, err := l.Act("s1", control.Claim{Task: "task_a"})
	if err != nil {
		t.Fatal(err)
	}
	var finished atomic.Bool
	took := make(chan error, 1)
	go func() {
		_, err := l.TakeOver(t.Context(), "s1", "api", "")
		if !finished.Load() {
			err = errors.New("TakeOver returned while the task's input was in flight")
		}
		took <- err
	}()
	time.Sleep(50 * time.Millisecond)
	// New task input is refused already, before the takeover returns.
	refused(t, l, control.Claim{Task: "task_a"}, control.ErrHeld)
	finished.Store(true)
	done()
	if err := <-took; err != nil {
		t.Fatal(err)
	}
}

// Input admitted while nobody held the session is still waited for by a
// takeover that comes after a task took the session meanwhile.
func TestTakeOverWaitsForEveryEarlierHolder(t *testing.T) {
	l, _ := newLeases(t, time.Minute)
	anyone, err := l.Act("s1", control.Claim{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.BeginTask("s1", "task_a", nil); err != nil {
		t.Fatal(err)
	}
	task, err := l.Act("s1", control.Claim{Task: "task_a"})
	if err != nil {
		t.Fatal(err)
	}
	var finished atomic.Int32
	took := make(chan int32, 1)
	go func() {
		if _, err := l.TakeOver(t.Context(), "s1", "api", ""); err != nil {
			t.Error(err)
		}
		took <- finished.Load()
	}()
	time.Sleep(30 * time.Millisecond)
	finished.Add(1)
	task()
	time.Sleep(30 * time.Millisecond)
	finished.Add(1)
	anyone()
	if n := <-took; n != 2 {
		t.Fatalf("TakeOver returned with %d of 2 earlier inputs finished", n)
	}
}

func TestViewerLease(t *testing.T) {
	l, _ := newLeases(t, time.Minute)
	lease, err := l.TakeOver(t.Context(), "s1", "viewer", "v1")
	if err != nil {
		t.Fatal(err)
	}
	mustAct(t, l, control.Claim{Viewer: "v1"})
	mustAct(t, l, control.Claim{Lease: lease.ID})
	refused(t, l, control.Claim{Viewer: "v2"}, control.ErrHeld)
	refused(t, l, control.Claim{}, control.ErrHeld)
	again, err := l.TakeOver(t.Context(), "s1", "viewer", "v1")
	if err != nil || again.ID != lease.ID {
		t.Fatalf("the holding viewer takes over again: %+v, %v", again, err)
	}
	if _, err := l.TakeOver(t.Context(), "s1", "viewer", "v2"); !errors.Is(err, control.ErrHeld) {
		t.Fatalf("another viewer takes over: %v", err)
	}
	if _, err := l.HandBack("s1", "api", "", ""); !errors.Is(err, control.ErrHeld) {
		t.Fatalf("hand back without the lease: %v", err)
	}
}

func TestIdleLeaseReturns(t *testing.T) {
	l, rec := newLeases(t, 150*time.Millisecond)
	if err := l.BeginTask("s1", "task_a", nil); err != nil {
		t.Fatal(err)
	}
	lease, err := l.TakeOver(t.Context(), "s1", "api", "")
	if err != nil {
		t.Fatal(err)
	}
	// Input keeps it: act for longer than the timeout.
	for range 4 {
		time.Sleep(60 * time.Millisecond)
		mustAct(t, l, control.Claim{Lease: lease.ID})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	r, err := l.WaitTurn(ctx, "s1", "task_a")
	if err != nil {
		t.Fatalf("the idle lease did not return: %v", err)
	}
	if len(r.Periods) != 1 || !r.Periods[0].Idle || r.Periods[0].InputEvents != 4 || r.Periods[0].Duration < 240*time.Millisecond {
		t.Errorf("resumed: %+v", r)
	}
	// The change is published after the lock that woke the task is let go,
	// so the task may resume a moment before it is recorded.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got := rec.whys()
		if got[len(got)-1] == control.WhyIdle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("changes %v; want the last to be %s", got, control.WhyIdle)
		}
	}
}

func TestAskHelpWaitsForAnAnswer(t *testing.T) {
	l, _ := newLeases(t, time.Minute)
	if err := l.BeginTask("s1", "task_a", nil); err != nil {
		t.Fatal(err)
	}
	if err := l.AskHelp("s1", "task_a", "Which account?"); err != nil {
		t.Fatal(err)
	}
	st := l.State("s1")
	if st.TaskState != control.TaskNeedsHelp || st.Question != "Which account?" {
		t.Errorf("state: %+v", st)
	}
	// A person may take over to help, and hands back with the answer.
	lease, err := l.TakeOver(t.Context(), "s1", "api", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.HandBack("s1", "api", lease.ID, "the work one"); err != nil {
		t.Fatal(err)
	}
	r, err := l.WaitTurn(t.Context(), "s1", "task_a")
	if err != nil || !r.Answered || r.Answer != "the work one" || len(r.Periods) != 1 {
		t.Fatalf("resumed: %+v, %v", r, err)
	}

	// An answer needs no lease when nobody took over.
	if err := l.AskHelp("s1", "task_a", "Proceed?"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.HandBack("s1", "api", "", "yes"); err != nil {
		t.Fatal(err)
	}
	r, err = l.WaitTurn(t.Context(), "s1", "task_a")
	if err != nil || !r.Answered || r.Answer != "yes" || len(r.Periods) != 0 {
		t.Fatalf("resumed: %+v, %v", r, err)
	}
	if _, err := l.HandBack("s1", "api", "", "again"); !errors.Is(err, control.ErrNothingHeld) {
		t.Fatalf("hand back with nothing held: %v", err)
	}
}

func TestWaitTurnEndsWithTheTask(t *testing.T) {
	l, _ := newLeases(t, time.Minute)
	if err := l.BeginTask("s1", "task_a", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TakeOver(t.Context(), "s1", "api", ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { _, err := l.WaitTurn(ctx, "s1", "task_a"); errc <- err }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitTurn after cancel: %v", err)
	}
	l.EndTask("s1", "task_a")
	if _, err := l.WaitTurn(t.Context(), "s1", "task_a"); !errors.Is(err, control.ErrNotTask) {
		t.Fatalf("WaitTurn of an ended task: %v", err)
	}
	// The person keeps the lease after the task ends.
	if st := l.State("s1"); st.Holder == nil || st.Holder.Kind != control.KindPerson || st.Task != "" {
		t.Errorf("state: %+v", st)
	}
}

// TestRaceExactlyOneHolder races takeovers, a task start and a burst of
// the task's input: exactly one takeover wins, and every task input that
// was admitted was also finished before the winning takeover returned.
func TestRaceExactlyOneHolder(t *testing.T) {
	for range 50 {
		l, _ := newLeases(t, time.Minute)
		var (
			wg       sync.WaitGroup
			seq      atomic.Int64 // orders admissions, completions and the takeover's return
			winners  atomic.Int32
			tookAt   atomic.Int64
			lastDone atomic.Int64
			admitted atomic.Int32
		)
		start := make(chan struct{})
		for range 4 {
			wg.Go(func() {
				<-start
				if _, err := l.TakeOver(context.Background(), "s1", "api", ""); err == nil {
					winners.Add(1)
					tookAt.Store(seq.Add(1))
				} else if !errors.Is(err, control.ErrHeld) {
					t.Error(err)
				}
			})
		}
		wg.Go(func() {
			<-start
			if err := l.BeginTask("s1", "task_a", nil); err != nil && !errors.Is(err, control.ErrHeld) {
				t.Error(err)
			}
		})
		for range 4 {
			wg.Go(func() {
				<-start
				for range 50 {
					done, err := l.Act("s1", control.Claim{Task: "task_a"})
					if err != nil {
						continue
					}
					admitted.Add(1)
					time.Sleep(10 * time.Microsecond)
					n := seq.Add(1)
					done()
					for old := lastDone.Load(); n > old && !lastDone.CompareAndSwap(old, n); old = lastDone.Load() {
					}
				}
			})
		}
		close(start)
		wg.Wait()
		if winners.Load() != 1 {
			t.Fatalf("%d takeovers won; want exactly 1", winners.Load())
		}
		if admitted.Load() > 0 && lastDone.Load() > tookAt.Load() {
			t.Fatalf("a task input finished (at %d) after the takeover returned (at %d)", lastDone.Load(), tookAt.Load())
		}
		if done, err := l.Act("s1", control.Claim{Task: "task_a"}); err == nil {
			done()
			t.Fatal("a task input was admitted while a person held the lease")
		}
	}
}
