package cli_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"atelier/desktop"
	"atelier/internal/agent"
	"atelier/internal/agentapi"
	"atelier/internal/api"
	"atelier/internal/budget"
	"atelier/internal/cli"
	"atelier/internal/desktoptest"
	"atelier/internal/model/scripted"
	"atelier/internal/sessions"
	"atelier/internal/sessions/sessionstest"
	"atelier/internal/store"
	"atelier/internal/tasks"
)

type oneDesktop struct{ c *agentapi.Client }

func (d oneDesktop) Agent(context.Context, string) (*agentapi.Client, error) { return d.c, nil }

func (d oneDesktop) Act(ctx context.Context, _ string, _ sessions.Actor, reqs []agentapi.Request) (sessions.ActResult, error) {
	return sessionstest.Act(ctx, d.c, reqs), nil
}

// taskFleet serves the task routes over a manager whose sessions all reach
// the agent at sock.
func taskFleet(t *testing.T, sock string) string {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, _ := budget.New(t.Context(), budget.Options{Store: st})
	c := agentapi.UnixClient(sock)
	t.Cleanup(func() { c.Close() })
	m, err := tasks.New(t.Context(), tasks.Options{
		Store: st, Budget: b, Desktops: oneDesktop{c}, DataDir: dir,
		Backends: map[string]tasks.Backend{"scripted": scripted.Backend{}}, DefaultBackend: "scripted",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	srv := httptest.NewServer(api.New(api.Options{Tasks: m}).Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func runCLI(t *testing.T, url string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &cli.Env{
		Getenv: func(k string) string {
			if k == "ATELIER_URL" {
				return url
			}
			return ""
		},
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut,
	}
	err := cli.Run(t.Context(), args, env)
	return out.String(), errOut.String(), err
}

// TestTaskRunFollow runs a scripted task on a real desktop (sway and the
// agent) through the CLI, following its steps, then lists and shows it.
func TestTaskRunFollow(t *testing.T) {
	sw := desktoptest.StartSway(t, desktop.DefaultResolution)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		agent.New(agent.Options{WaylandSocket: sw.WaylandSocket, Status: func() agentapi.Status { return agentapi.Status{Ready: true} }, Logger: slog.New(slog.DiscardHandler)}).Serve(ctx, ln)
		close(done)
	}()
	t.Cleanup(func() { cancel(); <-done })
	url := taskFleet(t, sock)

	script := filepath.Join(t.TempDir(), "script.json")
	os.WriteFile(script, []byte(`[{"action":"mouse_move","coordinate":[100,200]},{"action":"type","text":"hi"}]`), 0o600)
	out, _, err := runCLI(t, url, "task", "run", "s1", "move and type", "--script", script, "--follow")
	if err != nil {
		t.Fatalf("task run: %v\n%s", err, out)
	}
	for _, want := range []string{"step 1  mouse_move [100,200]", `step 2  type "hi"`, "done after 3 steps"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runCLI(t, url, "task", "ls", "s1")
	if err != nil || !strings.Contains(out, "done") || !strings.Contains(out, "move and type") {
		t.Fatalf("task ls: %v\n%s", err, out)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	out, _, err = runCLI(t, url, "task", "show", id)
	if err != nil || !strings.Contains(out, "status   done") || !strings.Contains(out, "step 2") {
		t.Fatalf("task show: %v\n%s", err, out)
	}
	_, _, err = runCLI(t, url, "task", "cancel", id)
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("cancel of an ended task: %v", err)
	}
}

// TestTaskRunReportsFailure follows a task whose desktop is gone: the
// command fails and says how the task ended.
func TestTaskRunReportsFailure(t *testing.T) {
	url := taskFleet(t, filepath.Join(t.TempDir(), "no-agent.sock"))
	out, _, err := runCLI(t, url, "task", "run", "s1", "look", "--script", "/nonexistent.json")
	if !errors.Is(err, cli.ErrUsage) {
		t.Errorf("missing script file: %v", err)
	}
	_, _, err = runCLI(t, url, "task", "run", "s1")
	if !errors.Is(err, cli.ErrUsage) {
		t.Errorf("no goal: %v", err)
	}
	script := filepath.Join(t.TempDir(), "script.json")
	os.WriteFile(script, []byte(`[{"action":"wait","duration":0.1}]`), 0o600)
	out, _, err = runCLI(t, url, "task", "run", "s1", "--script", script, "--follow")
	if err == nil || !strings.Contains(err.Error(), "ended failed") || !strings.Contains(out, "failed after 0 steps") {
		t.Errorf("got %v\n%s", err, out)
	}
	_, _, err = runCLI(t, url, "task", "run", "s1", "g", "--backend", "gpt")
	if err == nil || !strings.Contains(err.Error(), "unknown backend") {
		t.Errorf("unknown backend: %v", err)
	}
}
