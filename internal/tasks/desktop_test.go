package tasks_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/agent"
	"atelier/internal/agentapi"
	"atelier/internal/desktoptest"
	"atelier/internal/sessions"
	"atelier/internal/sessions/sessionstest"
	"atelier/internal/tasks"
)

// realDesktop is a headless sway with the atelier agent serving it: the
// real parts a task drives. super+Return opens foot, as in the desktop's
// own sway config.
type realDesktop struct {
	sway   *desktoptest.Sway
	client *agentapi.Client
	stop   func() // ends the agent, as a crashed desktop would
}

func startDesktop(t testing.TB) *realDesktop {
	t.Helper()
	return startDesktopAt(t, desktop.DefaultResolution.Width, desktop.DefaultResolution.Height)
}

func startDesktopAt(t testing.TB, w, h int) *realDesktop {
	t.Helper()
	sw := desktoptest.StartSway(t, desktop.Resolution{Width: w, Height: h})
	// The atelier user has no login shell: the terminal runs sh.
	sw.Msg(t, "bindsym", "Mod4+Return", "exec", "foot", "sh")
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := agent.New(agent.Options{
		WaylandSocket: sw.WaylandSocket,
		Status:        func() agentapi.Status { return agentapi.Status{Ready: true} },
		Logger:        slog.New(slog.DiscardHandler),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	var once sync.Once
	d := &realDesktop{sway: sw, client: agentapi.UnixClient(sock)}
	d.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			os.Remove(sock)
		})
	}
	t.Cleanup(func() { d.client.Close(); d.stop() })
	return d
}

// waitFile waits (bounded polling: the desktop's programs announce nothing)
// until the file at path holds want.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && strings.TrimSpace(string(b)) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q, %v; want %q", path, b, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// desktops maps sessions to agents; any session maps to fallback if set.
type desktops struct {
	byID     map[string]*agentapi.Client
	fallback *agentapi.Client
}

func (d desktops) Agent(_ context.Context, id string) (*agentapi.Client, error) {
	if c, ok := d.byID[id]; ok {
		return c, nil
	}
	if d.fallback != nil {
		return d.fallback, nil
	}
	return nil, fmt.Errorf("session %s: %w", id, tasks.ErrNoDesktop)
}

// Act runs the actions on the session's agent (sessionstest.Act).
func (d desktops) Act(ctx context.Context, id string, _ sessions.Actor, reqs []agentapi.Request) (sessions.ActResult, error) {
	c, err := d.Agent(ctx, id)
	if err != nil {
		return sessions.ActResult{}, err
	}
	return sessionstest.Act(ctx, c, reqs), nil
}
