// Package runtimetest is the behavioural suite every runtime.Runtime
// passes: the local runtime, the docker runtime, and any later one. It
// drives real desktops through the Runtime interface only, and checks
// outcomes: the agent answers, the VNC server greets, a file typed into a
// terminal lands in the home and survives stop, start and remove.
package runtimetest

import (
	"archive/tar"
	"atelier/internal/runtime"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/agentapi"
)

// ReadyTimeout bounds how long a started desktop may take to report ready.
const ReadyTimeout = 60 * time.Second

// Run runs the suite against runtimes made by newRuntime, which returns a
// runtime ready to use and arranges (t.Cleanup) that what it made is
// removed and the runtime closed when the test ends.
func Run(t *testing.T, newRuntime func(t *testing.T) runtime.Runtime) {
	RunWith(t, Options{}, newRuntime)
}

// Options tell the suite what kind of desktop a runtime makes.
type Options struct {
	// PodNetwork: the desktop has a network interface of its own (a
	// Kubernetes pod's, which the fleet reaches it through); instead of
	// the absence of a network, the suite checks that nothing in the
	// desktop holds the credential of that link or of the cluster.
	PodNetwork bool
}

// RunWith is Run for a runtime whose desktops opts describes.
func RunWith(t *testing.T, opts Options, newRuntime func(t *testing.T) runtime.Runtime) {
	t.Run("UnknownID", func(t *testing.T) { testUnknownID(t, newRuntime(t)) })
	t.Run("BadInput", func(t *testing.T) { testBadInput(t, newRuntime(t)) })
	t.Run("HomeArchive", func(t *testing.T) { testHomeArchive(t, newRuntime(t)) })
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, opts, newRuntime(t)) })
}

func testUnknownID(t *testing.T, rt runtime.Runtime) {
	ctx := t.Context()
	id := runtime.NewID()
	checks := map[string]error{
		"Start":   rt.Start(ctx, id),
		"Stop":    rt.Stop(ctx, id),
		"Remove":  rt.Remove(ctx, id, false),
		"Purge":   rt.Remove(ctx, id, true),
		"Write":   rt.WriteRunFile(ctx, id, desktop.BudgetFile, []byte("{}")),
		"Export":  rt.ExportHome(ctx, id, io.Discard),
		"Inspect": second(rt.Inspect(ctx, id)),
		"Dial":    second(rt.Dial(ctx, id, runtime.EndpointAgent)),
	}
	for name, err := range checks {
		if !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("%s of an unknown id: got %v, want ErrNotFound", name, err)
		}
	}
	list, err := rt.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(list, func(in runtime.Instance) bool { return in.ID == id }) {
		t.Errorf("List shows the unknown id %s", id)
	}
}

func second[T any](_ T, err error) error { return err }

// testBadInput: every bad input is refused with an error and changes
// nothing.
func testBadInput(t *testing.T, rt runtime.Runtime) {
	ctx := t.Context()
	for _, spec := range []runtime.Spec{
		{ID: ""},
		{ID: "../escape"},
		{ID: "a/b"},
		{ID: runtime.NewID(), Resolution: desktop.Resolution{Width: 100, Height: 100}},
		{ID: runtime.NewID(), Resolution: desktop.Resolution{Width: 1281, Height: 720}},
		{ID: runtime.NewID(), Resources: runtime.Resources{MemoryBytes: -1}},
	} {
		if err := rt.Create(ctx, spec); err == nil {
			t.Errorf("Create(%+v) accepted", spec)
		}
		if _, err := rt.Inspect(ctx, spec.ID); !errors.Is(err, runtime.ErrNotFound) {
			t.Errorf("after a refused Create(%+v), Inspect: %v, want ErrNotFound", spec, err)
		}
	}
	id := runtime.NewID()
	if err := rt.Create(ctx, runtime.Spec{ID: id}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "../x", desktop.AgentSocket, desktop.ReadyFile, "x/../budget", "nope"} {
		if err := rt.WriteRunFile(ctx, id, name, []byte("x")); err == nil {
			t.Errorf("WriteRunFile(%q) accepted", name)
		}
	}
	if _, err := rt.Dial(ctx, id, "../../etc/passwd"); err == nil {
		t.Error("Dial of a made-up endpoint accepted")
	}
	if err := rt.Remove(ctx, id, true); err != nil {
		t.Fatal(err)
	}
}

// testHomeArchive: a desktop created from a home archive has its files; a
// hostile archive is refused and leaves nothing; an archive never merges
// into an existing home.
func testHomeArchive(t *testing.T, rt runtime.Runtime) {
	ctx := t.Context()
	id := runtime.NewID()
	good := archive(t, map[string]string{"notes/": "", "notes/hello.txt": "from a snapshot\n", "link": "->notes/hello.txt"})
	if err := rt.Create(ctx, runtime.Spec{ID: id, HomeArchive: good}); err != nil {
		t.Fatalf("Create from an archive: %v", err)
	}
	if got := HomeFiles(t, rt, id)["notes/hello.txt"]; got != "from a snapshot\n" {
		t.Errorf("~/notes/hello.txt = %q, want it from the archive", got)
	}
	again := archive(t, map[string]string{"other.txt": "x"})
	if err := rt.Create(ctx, runtime.Spec{ID: id, HomeArchive: again}); err == nil {
		t.Error("Create from an archive over an existing home accepted")
	}
	if _, ok := HomeFiles(t, rt, id)["other.txt"]; ok {
		t.Error("an archive was merged into an existing home")
	}
	if err := rt.Remove(ctx, id, true); err != nil {
		t.Fatal(err)
	}

	bad := runtime.NewID()
	hostile := archive(t, map[string]string{"ok.txt": "fine", "../escape.txt": "out"})
	if err := rt.Create(ctx, runtime.Spec{ID: bad, HomeArchive: hostile}); err == nil {
		t.Error("Create from an archive with a ../ entry accepted")
	}
	if _, err := rt.Inspect(ctx, bad); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("after a refused archive, Inspect: %v, want ErrNotFound", err)
	}
	listed(t, rt, bad, false)
}

// archive returns a tar stream of entries: a name ending in / is a
// directory, content starting with -> a symbolic link, else a file.
func archive(t *testing.T, entries map[string]string) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := slices.Sorted(maps.Keys(entries))
	for _, name := range names {
		content := entries[name]
		hdr := &tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(content))}
		switch {
		case strings.HasSuffix(name, "/"):
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		case strings.HasPrefix(content, "->"):
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, content[2:], 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			tw.Write([]byte(content))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func testLifecycle(t *testing.T, opts Options, rt runtime.Runtime) {
	ctx := t.Context()
	id := runtime.NewID()
	res := desktop.Resolution{Width: 1024, Height: 768}
	spec := runtime.Spec{ID: id, Label: "conformance", Theme: desktop.DefaultTheme, Resolution: res}
	if err := rt.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if in := inspect(t, rt, id); in.Running {
		t.Fatalf("created desktop runs before Start: %+v", in)
	}
	listed(t, rt, id, true)

	// Start twice: the second is a no-op.
	for range 2 {
		if err := rt.Start(ctx, id); err != nil {
			t.Fatalf("Start: %v", err)
		}
	}
	st := WaitReady(t, rt, id)
	if st.Width != res.Width || st.Height != res.Height {
		t.Errorf("desktop output %dx%d, want %v", st.Width, st.Height, res)
	}
	if in := inspect(t, rt, id); !in.Running || in.Degraded {
		t.Errorf("ready desktop: %+v, want running and not degraded", in)
	}
	checkVNC(t, rt, id)
	if err := rt.WriteRunFile(ctx, id, desktop.BudgetFile, []byte(`{"spent_usd":1,"cap_usd":5}`)); err != nil {
		t.Errorf("WriteRunFile budget: %v", err)
	}
	if err := rt.WriteRunFile(ctx, id, desktop.ThemeFile, []byte(desktop.DefaultTheme+"\n")); err != nil {
		t.Errorf("WriteRunFile theme: %v", err)
	}

	// A file written by a program in the desktop lands in its home.
	RunInTerminal(t, rt, id, "echo hi > ~/f")
	WaitHomeFile(t, rt, id, "f", "hi\n")
	// Home names that home on the host, owned by the desktop.
	if hd, err := rt.Home(ctx, id); errors.Is(err, errors.ErrUnsupported) {
		t.Logf("NOTE: this runtime has no host home (%v): the file API is unavailable on it", err)
	} else if err != nil {
		t.Errorf("Home: %v", err)
	} else if b, err := os.ReadFile(filepath.Join(hd.Path, "f")); err != nil || string(b) != "hi\n" {
		t.Errorf("Home %+v: f = %q (%v), want the desktop's file", hd, b, err)
	} else if fi, err := os.Stat(filepath.Join(hd.Path, "f")); err != nil || int(fi.Sys().(*syscall.Stat_t).Uid) != hd.UID {
		t.Errorf("Home %+v: the desktop's file is not owned by its UID", hd)
	}

	if opts.PodNetwork {
		// The link's key and the cluster's service account token are
		// mounted in the link's container alone.
		RunInTerminal(t, rt, id, "echo $(ls /etc/atelier/link /var/run/secrets/kubernetes.io 2>&1 | grep -vc 'No such') > ~/net")
		WaitHomeFile(t, rt, id, "net", "0\n")
	} else {
		// The desktop has a network of its own with no way out: loopback is
		// its one interface, and it has no route (the egress gateway's socket
		// is its one way out).
		RunInTerminal(t, rt, id, "echo $(grep -c : /proc/net/dev) $(tail -n +2 /proc/net/route | wc -l) > ~/net")
		WaitHomeFile(t, rt, id, "net", "1 0\n")
	}
	if _, err := rt.GateSocket(id); err != nil {
		t.Errorf("GateSocket: %v", err)
	}

	// Stop twice: the home stays.
	for range 2 {
		if err := rt.Stop(ctx, id); err != nil {
			t.Fatalf("Stop: %v", err)
		}
	}
	if in := inspect(t, rt, id); in.Running {
		t.Errorf("stopped desktop: %+v, want not running", in)
	}
	if c, err := rt.Dial(ctx, id, runtime.EndpointAgent); err == nil {
		c.Close()
		t.Error("the agent of a stopped desktop still answers")
	}
	if got := HomeFiles(t, rt, id)["f"]; got != "hi\n" {
		t.Errorf("after Stop, ~/f = %q, want %q", got, "hi\n")
	}

	// Start again: the home is still there.
	if err := rt.Start(ctx, id); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	WaitReady(t, rt, id)
	if got := HomeFiles(t, rt, id)["f"]; got != "hi\n" {
		t.Errorf("after Stop and Start, ~/f = %q, want %q", got, "hi\n")
	}

	// Remove a running desktop, keeping its home.
	if err := rt.Remove(ctx, id, false); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := rt.Inspect(ctx, id); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("Inspect after Remove: %v, want ErrNotFound", err)
	}
	listed(t, rt, id, false)
	if err := rt.Create(ctx, spec); err != nil {
		t.Fatalf("Create after Remove: %v", err)
	}
	if got := HomeFiles(t, rt, id)["f"]; got != "hi\n" {
		t.Errorf("after Remove without purge and Create, ~/f = %q, want %q", got, "hi\n")
	}

	// Purge: a new desktop with the same id starts with an empty home.
	if err := rt.Remove(ctx, id, true); err != nil {
		t.Fatalf("Remove with purge: %v", err)
	}
	if err := rt.Create(ctx, spec); err != nil {
		t.Fatalf("Create after purge: %v", err)
	}
	if got, ok := HomeFiles(t, rt, id)["f"]; ok {
		t.Errorf("after purge, ~/f still exists: %q", got)
	}
	if err := rt.Remove(ctx, id, true); err != nil {
		t.Fatalf("Remove with purge: %v", err)
	}
	listed(t, rt, id, false)
}

// WaitInspect polls Inspect (bounded: the desktop's processes announce
// nothing) until ok accepts the instance; what names the state awaited.
func WaitInspect(t testing.TB, rt runtime.Runtime, id, what string, ok func(runtime.Instance) bool) runtime.Instance {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		in, err := rt.Inspect(t.Context(), id)
		if err == nil && ok(in) {
			return in
		}
		if time.Now().After(deadline) {
			t.Fatalf("desktop %s not %s after 20s: %+v %v", id, what, in, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func inspect(t *testing.T, rt runtime.Runtime, id string) runtime.Instance {
	t.Helper()
	in, err := rt.Inspect(t.Context(), id)
	if err != nil {
		t.Fatalf("Inspect %s: %v", id, err)
	}
	if in.ID != id {
		t.Fatalf("Inspect %s reports id %q", id, in.ID)
	}
	return in
}

func listed(t *testing.T, rt runtime.Runtime, id string, want bool) {
	t.Helper()
	list, err := rt.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got := slices.ContainsFunc(list, func(in runtime.Instance) bool { return in.ID == id }); got != want {
		t.Errorf("List has %s: %v, want %v (list %+v)", id, got, want, list)
	}
}

// Agent returns a protocol v1 client of the desktop's agent.
func Agent(t testing.TB, rt runtime.Runtime, id string) *agentapi.Client {
	c := agentapi.NewClient(func(ctx context.Context) (net.Conn, error) {
		return rt.Dial(ctx, id, runtime.EndpointAgent)
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// WaitReady waits until the desktop's agent reports it ready and returns
// its status. Polling is bounded: the desktop is a set of external
// processes that announce nothing to the test.
func WaitReady(t testing.TB, rt runtime.Runtime, id string) *agentapi.Status {
	t.Helper()
	c := Agent(t, rt, id)
	deadline := time.Now().Add(ReadyTimeout)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		resp, err := c.Do(ctx, agentapi.Request{Action: agentapi.StatusVerb})
		cancel()
		if err == nil && resp.Status != nil && resp.Status.Ready {
			return resp.Status
		}
		last = err
		if err == nil {
			last = errors.New("agent answers, not ready yet")
		}
		time.Sleep(50 * time.Millisecond)
	}
	in, _ := rt.Inspect(t.Context(), id)
	t.Fatalf("desktop %s not ready after %v: %v (inspect %+v)", id, ReadyTimeout, last, in)
	return nil
}

// checkVNC reads the RFB banner of the desktop's VNC server.
func checkVNC(t *testing.T, rt runtime.Runtime, id string) {
	t.Helper()
	conn, err := rt.Dial(t.Context(), id, runtime.EndpointVNC)
	if err != nil {
		t.Fatalf("Dial vnc: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	banner := make([]byte, 12)
	if _, err := io.ReadFull(conn, banner); err != nil {
		t.Fatalf("read RFB banner: %v", err)
	}
	if string(banner) != "RFB 003.008\n" {
		t.Errorf("VNC banner %q, want %q", banner, "RFB 003.008\n")
	}
}

// RunInTerminal opens a terminal in the desktop (super+Return) and types
// cmdline into its shell, followed by Return.
func RunInTerminal(t testing.TB, rt runtime.Runtime, id, cmdline string) {
	t.Helper()
	c := Agent(t, rt, id)
	do := func(req agentapi.Request) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if _, err := c.Do(ctx, req); err != nil {
			t.Fatalf("%s: %v", req.Action, err)
		}
	}
	// The marker file tells when the new terminal's shell reads input:
	// typing before it runs would lose keys. Until the new terminal maps,
	// keys go to the one an earlier call opened, whose shell has set the
	// variable and so makes no marker: a command typed after the marker
	// cannot be split between two terminals by the focus moving.
	marker := "term-" + strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "")
	do(agentapi.Request{Action: agentapi.Key, Text: "super+Return"})
	deadline := time.Now().Add(20 * time.Second)
	for {
		do(agentapi.Request{Action: agentapi.Type, Text: `[ -z "$atelier_typed" ] && atelier_typed=1 && touch ~/.` + marker + "\n"})
		if _, ok := HomeFiles(t, rt, id)["."+marker]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no shell in a terminal after super+Return within 20s")
		}
		time.Sleep(300 * time.Millisecond)
	}
	do(agentapi.Request{Action: agentapi.Type, Text: "rm ~/." + marker + "; " + cmdline + "\n"})
}

// WaitHomeFile waits (20 s at most) until the home's file name holds want.
func WaitHomeFile(t testing.TB, rt runtime.Runtime, id, name, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, ok := HomeFiles(t, rt, id)[name]
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("~/%s = %q (exists %v) after 20s, want %q", name, got, ok, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// HomeFiles exports the desktop's home and returns its regular files by
// path, with their content.
func HomeFiles(t testing.TB, rt runtime.Runtime, id string) map[string]string {
	t.Helper()
	var buf bytes.Buffer
	if err := rt.ExportHome(t.Context(), id, &buf); err != nil {
		t.Fatalf("ExportHome: %v", err)
	}
	files := map[string]string{}
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatalf("read home tar: %v", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("read home tar: %v", err)
			}
			files[hdr.Name] = string(b)
		}
	}
}
