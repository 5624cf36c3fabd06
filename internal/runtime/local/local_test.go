package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/runtime"
	"atelier/internal/runtime/runtimetest"
)

// startDesktop creates and starts a desktop on r and waits until it is
// ready.
func startDesktop(t testing.TB, r *Runtime, spec runtime.Spec) string {
	t.Helper()
	if spec.ID == "" {
		spec.ID = runtime.NewID()
	}
	if err := r.Create(t.Context(), spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := r.Start(t.Context(), spec.ID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	runtimetest.WaitReady(t, r, spec.ID)
	return spec.ID
}

// sandboxPID returns the pid of the desktop's outermost process.
func sandboxPID(t testing.TB, r *Runtime, id string) int {
	t.Helper()
	in, err := r.Inspect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(in.Detail, "pid "))
	if err != nil || !in.Running {
		t.Fatalf("desktop %s: %+v, want running with a pid", id, in)
	}
	return pid
}

// findInTree returns the pid of the process named comm in pid's tree.
func findInTree(t testing.TB, pid int, comm string) int {
	t.Helper()
	for _, p := range tree(pid) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		if strings.TrimSpace(string(b)) == comm {
			return p
		}
	}
	t.Fatalf("no process %q in the tree of %d", comm, pid)
	return 0
}

// TestIsolation: a program in desktop A cannot read desktop B's home, the
// fleet's data dir or its database, though the desktop user could read
// them on the host: the sandbox's mount namespace hides them.
func TestIsolation(t *testing.T) {
	r := newRuntime(t, Options{})
	data := filepath.Dir(r.root)
	a := startDesktop(t, r, runtime.Spec{})
	b := runtime.NewID()
	if err := r.Create(t.Context(), runtime.Spec{ID: b}); err != nil {
		t.Fatal(err)
	}
	bSecret := filepath.Join(r.root, b, "home", "secret")
	dbFile := filepath.Join(data, "atelier.db")
	for _, p := range []string{bSecret, dbFile} {
		if err := os.WriteFile(p, []byte("TOPSECRET\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, r.uid, r.gid); err != nil {
			t.Fatal(err)
		}
		// On the host, the desktop user can read both.
		out, err := exec.Command("setpriv", "--reuid", strconv.Itoa(r.uid), "--regid", strconv.Itoa(r.gid), "--clear-groups", "cat", p).CombinedOutput()
		if err != nil || string(out) != "TOPSECRET\n" {
			t.Fatalf("on the host the desktop user cannot read %s (%v: %s): the test would prove nothing", p, err, out)
		}
	}
	cmd := fmt.Sprintf("(cat %s; cat %s; ls %s; ls %s; echo mine=$(cat ~/mine)) > ~/out 2>&1; echo done >> ~/out",
		bSecret, dbFile, data, r.root)
	if err := os.WriteFile(filepath.Join(r.root, a, "home", "mine"), []byte("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	runtimetest.RunInTerminal(t, r, a, cmd)
	var out string
	deadline := time.Now().Add(20 * time.Second)
	for !strings.HasSuffix(out, "done\n") {
		if time.Now().After(deadline) {
			t.Fatalf("~/out after 20s: %q", out)
		}
		time.Sleep(50 * time.Millisecond)
		out = runtimetest.HomeFiles(t, r, a)["out"]
	}
	t.Logf("inside desktop A:\n%s", out)
	if strings.Contains(out, "TOPSECRET") {
		t.Errorf("desktop A read a secret:\n%s", out)
	}
	for line := range strings.Lines(out) {
		if name := strings.TrimSpace(line); name == "atelier.db" || name == "desktops" || name == a || name == b {
			t.Errorf("desktop A lists the fleet's data dir (%q):\n%s", name, out)
		}
	}
	if n := strings.Count(out, "No such file or directory"); n != 4 {
		t.Errorf("want 4 'No such file or directory', got %d:\n%s", n, out)
	}
	if !strings.Contains(out, "mine=ok") {
		t.Errorf("desktop A cannot read its own home:\n%s", out)
	}
}

// TestUnprivilegedAndNoLeftovers: every process of the sandbox runs as the
// desktop user, and Stop leaves no process and no cgroup behind.
func TestUnprivilegedAndNoLeftovers(t *testing.T) {
	r := newRuntime(t, Options{})
	id := startDesktop(t, r, runtime.Spec{})
	pid := sandboxPID(t, r, id)
	procs := tree(pid)
	findInTree(t, pid, "atelier-agent")
	findInTree(t, pid, "sway")
	findInTree(t, pid, "wayvnc")
	want := strconv.Itoa(r.uid)
	for _, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			if ids, ok := strings.CutPrefix(line, "Uid:"); ok {
				for _, u := range strings.Fields(ids) {
					if u != want {
						t.Errorf("process %d runs with uid %s (%s), want only %s", p, u, strings.TrimSpace(ids), want)
					}
				}
			}
		}
	}
	if _, err := os.Stat(filepath.Join(r.root, id, "run", desktop.ReadyFile)); err != nil {
		t.Errorf("ready file: %v", err)
	}
	ticks := map[int]uint64{}
	for _, p := range procs {
		if st, err := readStat(p); err == nil {
			ticks[p] = st.ticks
		}
	}
	if err := r.Stop(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	for p, tk := range ticks {
		// A zombie is dead: it only waits for the host's init to reap it.
		if st, err := readStat(p); err == nil && st.ticks == tk && st.state != 'Z' {
			t.Errorf("process %d (state %c) survived Stop", p, st.state)
		}
	}
	for _, dir := range r.cg.dirs {
		if _, err := os.Stat(filepath.Join(dir, r.cgName(id))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s left after Stop: %v", dir, err)
		}
	}
}

// TestLimits: the spec's limits are in the desktop's cgroups, and every
// process of the desktop is in them.
func TestLimits(t *testing.T) {
	r := newRuntime(t, Options{})
	if r.cg.kind == "" {
		t.Skip("SKIP: no writable cgroup hierarchy on this host; limits cannot be applied")
	}
	id := startDesktop(t, r, runtime.Spec{Resources: runtime.Resources{MemoryBytes: 768 << 20, CPUs: 1.5, PIDs: 300}})
	want := map[string]string{
		"memory.limit_in_bytes": strconv.Itoa(768 << 20),
		"cpu.cfs_quota_us":      "150000",
		"cpu.cfs_period_us":     "100000",
		"pids.max":              "300",
	}
	if r.cg.kind == "v2" {
		want = map[string]string{"memory.max": strconv.Itoa(768 << 20), "cpu.max": "150000 100000", "pids.max": "300"}
	}
	found := 0
	for _, dir := range r.cg.dirs {
		for file, v := range want {
			b, err := os.ReadFile(filepath.Join(dir, r.cgName(id), file))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			found++
			if got := strings.TrimSpace(string(b)); err != nil || got != v {
				t.Errorf("%s = %q (%v), want %q", file, got, err, v)
			}
		}
	}
	if found != len(want) {
		t.Errorf("found %d of the %d limit files", found, len(want))
	}
	in, err := r.cg.procs(r.cgName(id))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range tree(sandboxPID(t, r, id)) {
		if !slices.Contains(in, p) {
			t.Errorf("process %d of the desktop is not in its cgroup", p)
		}
	}
}

// TestAgentCrash: when the agent's tree dies, the runtime reports the
// desktop degraded and brings it back.
func TestAgentCrash(t *testing.T) {
	r := newRuntime(t, Options{})
	id := startDesktop(t, r, runtime.Spec{})
	pid := sandboxPID(t, r, id)
	syscall.Kill(findInTree(t, pid, "atelier-agent"), syscall.SIGKILL)
	runtimetest.WaitInspect(t, r, id, "degraded", func(in runtime.Instance) bool { return in.Running && in.Degraded })
	runtimetest.WaitReady(t, r, id)
	in := runtimetest.WaitInspect(t, r, id, "healthy", func(in runtime.Instance) bool { return in.Running && !in.Degraded })
	if in.Detail == fmt.Sprintf("pid %d", pid) {
		t.Errorf("desktop not restarted: %+v", in)
	}
}

// TestSwayCrash: when sway dies the agent restarts it; the desktop is
// degraded meanwhile and the runtime does not restart the sandbox.
func TestSwayCrash(t *testing.T) {
	r := newRuntime(t, Options{})
	id := startDesktop(t, r, runtime.Spec{})
	pid := sandboxPID(t, r, id)
	syscall.Kill(findInTree(t, pid, "sway"), syscall.SIGKILL)
	runtimetest.WaitInspect(t, r, id, "degraded", func(in runtime.Instance) bool { return in.Running && in.Degraded })
	runtimetest.WaitReady(t, r, id)
	runtimetest.WaitInspect(t, r, id, "healthy", func(in runtime.Instance) bool { return in.Running && !in.Degraded })
	if got := sandboxPID(t, r, id); got != pid {
		t.Errorf("sandbox restarted (pid %d, was %d): the agent should have handled it", got, pid)
	}
}

// TestReadopt: a second runtime on the same data dir finds the running
// desktop, with the same process, and supervises it.
func TestReadopt(t *testing.T) {
	data := dataDir(t)
	r1 := newRuntime(t, Options{DataDir: data})
	id := startDesktop(t, r1, runtime.Spec{})
	pid := sandboxPID(t, r1, id)
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := newRuntime(t, Options{DataDir: data})
	list, err := r2.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != id || !list[0].Running || list[0].Detail != fmt.Sprintf("pid %d", pid) {
		t.Fatalf("List after re-adoption: %+v, want %s running as pid %d", list, id, pid)
	}
	runtimetest.WaitReady(t, r2, id)
	// Adopted, not a child: the new runtime still notices a crash.
	syscall.Kill(findInTree(t, pid, "atelier-agent"), syscall.SIGKILL)
	runtimetest.WaitInspect(t, r2, id, "restarted", func(in runtime.Instance) bool {
		return in.Running && in.Detail != fmt.Sprintf("pid %d", pid) && !strings.Contains(in.Detail, "restarting")
	})
	runtimetest.WaitReady(t, r2, id)
}

// TestCreateWhileRunning: creating a running desktop again is refused and
// changes nothing.
func TestCreateWhileRunning(t *testing.T) {
	r := newRuntime(t, Options{})
	id := startDesktop(t, r, runtime.Spec{})
	pid := sandboxPID(t, r, id)
	if err := r.Create(t.Context(), runtime.Spec{ID: id}); err == nil {
		t.Error("Create of a running desktop accepted")
	}
	if got := sandboxPID(t, r, id); got != pid {
		t.Errorf("pid %d, was %d", got, pid)
	}
}

func TestNewBadOptions(t *testing.T) {
	requireHost(t)
	agent := agentPath(t)
	for name, o := range map[string]Options{
		"no data dir":  {AgentPath: agent},
		"no agent":     {DataDir: dataDir(t)},
		"missing":      {DataDir: dataDir(t), AgentPath: "/nonexistent/atelier-agent"},
		"root user":    {DataDir: dataDir(t), AgentPath: agent, User: "root"},
		"unknown user": {DataDir: dataDir(t), AgentPath: agent, User: "no-such-user-here"},
		"tiny memory":  {DataDir: dataDir(t), AgentPath: agent, Limits: runtime.Resources{MemoryBytes: 1}},
		"private dir":  {DataDir: filepath.Join(t.TempDir(), "data"), AgentPath: agent},
	} {
		if r, err := New(o); err == nil {
			r.Close()
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

// TestStopKill: a desktop that does not stop within the timeout is killed,
// with nothing left over.
func TestStopKill(t *testing.T) {
	r := newRuntime(t, Options{StopTimeout: time.Nanosecond})
	id := startDesktop(t, r, runtime.Spec{})
	procs := tree(sandboxPID(t, r, id))
	if err := r.Stop(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if st, err := readStat(p); err == nil && st.state != 'Z' {
			t.Errorf("process %d survived the kill", p)
		}
	}
	if in, err := r.Inspect(t.Context(), id); err != nil || in.Running {
		t.Errorf("after Stop: %+v %v", in, err)
	}
}

// helperEnv makes the test binary a short-lived fleet: it starts a desktop
// and dies by SIGKILL, as a crashed fleet would.
const helperEnv = "ATELIER_LOCAL_TEST_FLEET"

// runHelperFleet is the helper's whole life: "datadir agent id" in helperEnv.
func runHelperFleet(arg string) {
	f := strings.Fields(arg)
	r, err := New(Options{DataDir: f[0], AgentPath: f[1]})
	if err == nil {
		err = r.Create(context.Background(), runtime.Spec{ID: f[2]})
	}
	if err == nil {
		err = r.Start(context.Background(), f[2])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
}

// TestFleetKilled: a desktop outlives the fleet that started it being
// killed, and the next fleet adopts it without a restart.
func TestFleetKilled(t *testing.T) {
	requireHost(t)
	data, id := dataDir(t), runtime.NewID()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+data+" "+agentPath(t)+" "+id)
	out, err := cmd.CombinedOutput()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("helper fleet: %v\n%s", err, out)
	}
	r := newRuntime(t, Options{DataDir: data})
	in, err := r.Inspect(t.Context(), id)
	if err != nil || !in.Running {
		t.Fatalf("after the fleet was killed: %+v %v", in, err)
	}
	runtimetest.WaitReady(t, r, id)
	if again, _ := r.Inspect(t.Context(), id); again.Detail != in.Detail {
		t.Errorf("desktop restarted on adoption: %s, then %s", in.Detail, again.Detail)
	}
}
