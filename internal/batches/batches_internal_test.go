package batches

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"atelier/internal/control"
	"atelier/internal/sessions"
	"atelier/internal/tasks"
)

// TestOutcome: each refusal of a member's submit, wrapped as the fleet
// wraps it, names its outcome.
func TestOutcome(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, Started},
		{tasks.ErrBusy, Busy},
		{fmt.Errorf("submit: %w", &control.HeldError{Session: "s"}), Held},
		{fmt.Errorf("session s: %w: %w", tasks.ErrNoDesktop, sessions.ErrNoSession), NotFound},
		{fmt.Errorf("session s: %w: %w", tasks.ErrNoDesktop, sessions.ErrBadID), NotFound},
		{fmt.Errorf("session s: %w: %w", tasks.ErrNoDesktop, sessions.ErrNotRunning), Stopped},
		{errors.New("the agent hung up"), Refused},
	} {
		if got := outcome(c.err); got != c.want {
			t.Errorf("outcome(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

// TestResolve: a selection names sessions once each, by id or label;
// anything else is refused before a task starts.
func TestResolve(t *testing.T) {
	m := &Manager{}
	ids, sel, err := m.resolve(context.Background(), Selection{SessionIDs: []string{"a", "b", "a"}})
	if err != nil || strings.Join(ids, ",") != "a,b" || sel != "" {
		t.Errorf("ids a,b,a: %v %q %v, want a,b", ids, sel, err)
	}
	many := make([]string, MaxSessions+1)
	for i := range many {
		many[i] = fmt.Sprint("s", i)
	}
	for _, s := range []Selection{{}, {Label: "  "}, {SessionIDs: []string{"a"}, Label: "x"}, {SessionIDs: many}} {
		if _, _, err := m.resolve(context.Background(), s); !errors.Is(err, ErrInvalid) {
			t.Errorf("selection %.60v: %v, want ErrInvalid", s, err)
		}
	}
}
