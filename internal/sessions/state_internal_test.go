package sessions

import (
	"errors"
	"testing"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/runtime"
	"atelier/internal/store"
)

func TestDerive(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	young := &runtime.Instance{Running: true, StartedAt: now.Add(-time.Second)}
	old := &runtime.Instance{Running: true, StartedAt: now.Add(-time.Hour)}
	ready := &agentapi.Status{Ready: true, Components: []agentapi.Component{{Name: "sway", State: agentapi.StateRunning}}}
	restarting := &agentapi.Status{Ready: true, Components: []agentapi.Component{{Name: "sway", State: agentapi.StateRestarting, LastError: "exit status 1"}}}
	notYet := &agentapi.Status{Ready: false, Components: []agentapi.Component{{Name: "sway", State: agentapi.StateStarting}}}
	down := errors.New("dial: no such file")
	tests := []struct {
		name string
		o    observation
		want State
	}{
		{"creating wins", observation{creating: true, desired: store.DesiredRunning, lastErr: down}, StateCreating},
		{"stopped", observation{desired: store.DesiredStopped}, StateStopped},
		{"stopped while still running", observation{desired: store.DesiredStopped, inst: old}, StateStopped},
		{"start failed", observation{desired: store.DesiredRunning, lastErr: down, inst: old, status: ready}, StateFailed},
		{"runtime lost it", observation{desired: store.DesiredRunning}, StateFailed},
		{"not running yet", observation{desired: store.DesiredRunning, inst: &runtime.Instance{}}, StateStarting},
		{"runtime says degraded", observation{desired: store.DesiredRunning, inst: &runtime.Instance{Running: true, Degraded: true, StartedAt: now}, status: ready}, StateDegraded},
		{"agent silent, young", observation{desired: store.DesiredRunning, inst: young, statusErr: down}, StateStarting},
		{"agent silent, old", observation{desired: store.DesiredRunning, inst: old, statusErr: down}, StateDegraded},
		{"agent not ready, young", observation{desired: store.DesiredRunning, inst: young, status: notYet}, StateStarting},
		{"agent not ready, old", observation{desired: store.DesiredRunning, inst: old, status: notYet}, StateDegraded},
		{"component restarting", observation{desired: store.DesiredRunning, inst: old, status: restarting}, StateDegraded},
		{"ready", observation{desired: store.DesiredRunning, inst: young, status: ready}, StateReady},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.now, tt.o.grace = now, time.Minute
			got, reason := derive(tt.o)
			if got != tt.want {
				t.Errorf("derive = %s (%s), want %s", got, reason, tt.want)
			}
			if (got == StateFailed || got == StateDegraded) && reason == "" {
				t.Errorf("%s without a reason", got)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := runtime.NewID()
		if err := runtime.CheckID(id); err != nil {
			t.Fatalf("runtime.CheckID(runtime.NewID()) = %v", err)
		}
		if seen[id] {
			t.Fatalf("runtime.NewID repeated %s", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "sess_", "sess_abc", "SESS_" + runtime.NewID()[5:], runtime.NewID() + "a", "sess_../../../../etc/passwd/xx", "sess_AAAAAAAAAAAAAAAAAAAAAAAAAA", "sess_0000000000000000000000000a"} {
		if err := runtime.CheckID(bad); !errors.Is(err, ErrBadID) {
			t.Errorf("runtime.CheckID(%q) = %v, want ErrBadID", bad, err)
		}
	}
}
