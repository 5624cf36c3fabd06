package sessions_test

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"atelier/internal/egress"
	"atelier/internal/runtime"
	"atelier/internal/sessions"
	"atelier/internal/sessions/sessionstest"
	"atelier/internal/store"
)

// gates records what the manager asks of the gateway.
type gates struct {
	mu   sync.Mutex
	open map[string]egress.Policy
	log  []string
}

func (g *gates) Open(id, path string, p egress.Policy) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !strings.Contains(path, id) {
		return errors.New("gate path of another desktop: " + path)
	}
	g.open[id] = p
	g.log = append(g.log, "open "+p.String())
	return nil
}

func (g *gates) Close(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.open, id)
	g.log = append(g.log, "close")
}

func (g *gates) policy(id string) (egress.Policy, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, ok := g.open[id]
	return p, ok
}

func openWithGates(t *testing.T, rt runtime.Runtime, db string, g *gates, fleet egress.Policy) *sessions.Manager {
	t.Helper()
	st, err := store.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sessions.Open(t.Context(), sessions.Options{Runtime: rt, Store: st, Gateway: g, Egress: fleet,
		Reconcile: 10 * time.Millisecond, ReadyGrace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); st.Close() })
	return m
}

// A session's egress gate is open while its desktop runs, with its own
// policy or the fleet's; the policy is checked at create and survives a
// fleet restart.
func TestEgressGates(t *testing.T) {
	rt := sessionstest.New()
	db := filepath.Join(t.TempDir(), "db")
	g := &gates{open: map[string]egress.Policy{}}
	fleet, _ := egress.ParsePolicy("allowlist", "github.com")
	m := openWithGates(t, rt, db, g, fleet)
	ctx := t.Context()

	for _, bad := range []egress.Policy{{Mode: "sideways"}, {Mode: egress.ModeAllowlist}, {Mode: egress.ModeOpen, Allow: []string{"a.example"}},
		{Mode: egress.ModeAllowlist, Allow: []string{"not a host"}}} {
		if _, err := m.Create(ctx, sessions.CreateOptions{Egress: &bad}); !errors.Is(err, sessions.ErrBadInput) {
			t.Errorf("Create with egress %+v: %v, want ErrBadInput", bad, err)
		}
	}
	if rt.Len() != 0 {
		t.Fatalf("refused creates left %d desktops", rt.Len())
	}

	def, err := m.Create(ctx, sessions.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	own, err := m.Create(ctx, sessions.CreateOptions{Egress: &egress.Policy{Mode: "None"}})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := g.policy(def.ID); !ok || p.String() != "allowlist github.com" {
		t.Errorf("gate of a session without a policy: %v (open %v), want the fleet's", p, ok)
	}
	if p, ok := g.policy(own.ID); !ok || p.Mode != egress.ModeNone {
		t.Errorf("gate of a session with policy none: %v (open %v)", p, ok)
	}
	if got, _ := m.Get(ctx, own.ID); !got.EgressOwn || got.Egress.Mode != egress.ModeNone {
		t.Errorf("Get: egress %v own %v, want none, own", got.Egress, got.EgressOwn)
	}
	if got, _ := m.Get(ctx, def.ID); got.EgressOwn || got.Egress.String() != "allowlist github.com" {
		t.Errorf("Get: egress %v own %v, want the fleet's", got.Egress, got.EgressOwn)
	}

	if _, err := m.Stop(ctx, own.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.policy(own.ID); ok {
		t.Error("the gate of a stopped session is open")
	}
	if _, err := m.Start(ctx, own.ID); err != nil {
		t.Fatal(err)
	}
	if p, ok := g.policy(own.ID); !ok || p.Mode != egress.ModeNone {
		t.Errorf("gate after Start: %v (open %v)", p, ok)
	}

	// A new fleet (another gateway) opens the gates of running desktops
	// again, with the policies kept in the store.
	m.Close()
	g2 := &gates{open: map[string]egress.Policy{}}
	m2 := openWithGates(t, rt, db, g2, egress.Default)
	if p, ok := g2.policy(own.ID); !ok || p.Mode != egress.ModeNone {
		t.Errorf("re-adopted gate: %v (open %v), want none", p, ok)
	}
	if p, ok := g2.policy(def.ID); !ok || p.Mode != egress.ModeOpen {
		t.Errorf("re-adopted gate of a session without a policy: %v (open %v), want the new fleet's", p, ok)
	}
	if err := m2.Delete(ctx, own.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, ok := g2.policy(own.ID); ok || !slices.Contains(g2.log, "close") {
		t.Errorf("the gate of a deleted session is open: %v", g2.log)
	}
}
