package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"atelier/internal/desktoptest"
	"atelier/internal/runtime"
)

var _ runtime.Runtime = (*Runtime)(nil)

var (
	agentOnce sync.Once
	agentBin  string
	agentErr  error
)

// requireHost skips the test when this host cannot run desktops at all,
// and fails it when it should but something is broken.
func requireHost(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: the local runtime needs root (it runs desktops as another user); desktop tests cannot run")
	}
	for _, bin := range []string{"bwrap", "sway", "wayvnc"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("SKIP: %s is not installed (run desktop/install-deps.sh); desktop tests cannot run", bin)
		}
	}
	if _, err := user.Lookup("atelier"); err != nil {
		t.Skip("SKIP: no user atelier (run desktop/install-deps.sh); desktop tests cannot run")
	}
}

// agentPath builds cmd/atelier-agent once per test binary.
func agentPath(t testing.TB) string {
	t.Helper()
	agentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "atelier-agent-bin-")
		if err != nil {
			agentErr = err
			return
		}
		// The desktop user must reach the binary: see checkTraversable.
		if agentErr = os.Chmod(dir, 0o755); agentErr != nil {
			return
		}
		agentBin = filepath.Join(dir, "atelier-agent")
		out, err := exec.Command("go", "build", "-o", agentBin, "atelier/cmd/atelier-agent").CombinedOutput()
		if err != nil {
			agentErr = fmt.Errorf("build atelier-agent: %v\n%s", err, out)
			return
		}
		agentErr = desktoptest.BuildFrameClock(dir)
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return agentBin
}

func TestMain(m *testing.M) {
	if arg := os.Getenv(helperEnv); arg != "" {
		runHelperFleet(arg)
	}
	code := m.Run()
	if agentBin != "" {
		os.RemoveAll(filepath.Dir(agentBin))
	}
	os.Exit(code)
}

// newRuntime returns a local runtime on a fresh data dir; when the test
// ends every desktop it has is purged and it is closed.
func newRuntime(t testing.TB, opts Options) *Runtime {
	t.Helper()
	requireHost(t)
	if opts.DataDir == "" {
		opts.DataDir = dataDir(t)
	}
	opts.AgentPath = agentPath(t)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { purgeAll(t, r) })
	return r
}

// purgeAll removes every desktop of r and closes it, failing the test if a
// process or cgroup is left over.
func purgeAll(t testing.TB, r *Runtime) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return // closed by the test; another runtime on its data dir cleans up
	}
	// t.Context is already done when cleanups run.
	ctx := context.Background()
	list, err := r.List(ctx)
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, in := range list {
		if err := r.Remove(ctx, in.ID, true); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("cleanup: %v", err)
		}
	}
	r.Close()
}

// testWriter sends the runtime's log to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// dataDir returns a fresh data dir the desktop user may pass through (not
// t.TempDir: its parent is private to root), removed when the test ends.
func dataDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "atelier-local-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
