package local

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"atelier/desktop"
	"atelier/internal/runtime"
	"atelier/internal/runtime/runtimetest"
)

// TestSandboxHardened: typed into a desktop's terminal, what the desktop
// user can do on the host (make a user namespace, use the keyring) fails
// in the desktop, which runs under the seccomp filter, without
// capabilities, and sees only its own loopback.
func TestSandboxHardened(t *testing.T) {
	r := newRuntime(t, Options{})
	// On the host, as the desktop user, the same probe succeeds: else the
	// test would prove nothing.
	host, err := exec.Command("setpriv", "--reuid", strconv.Itoa(r.uid), "--regid", strconv.Itoa(r.gid), "--clear-groups",
		"bash", "-c", "cd /tmp && unshare -r true; echo unshare=$?; perl -e 'print \"keyctl=\", (syscall(250, 0, -3, 0) < 0 ? \"$!\" : \"ok\"), \"\\n\"'").CombinedOutput()
	if got := runtimetest.ParseProbe(string(host)); err != nil || got["unshare"] != "0" || got["keyctl"] != "ok" {
		t.Fatalf("on the host the desktop user cannot make a user namespace or use the keyring (%v): %s", err, host)
	}
	id := startDesktop(t, r, runtime.Spec{})
	runtimetest.CheckSandbox(t, r, id)
}

// TestNotRedirected: a desktop that plants links or other desktops'
// sockets in its run dir never makes the runtime dial another desktop.
func TestNotRedirected(t *testing.T) {
	r := newRuntime(t, Options{})
	a := startDesktop(t, r, runtime.Spec{})
	b := startDesktop(t, r, runtime.Spec{Resolution: desktop.Resolution{Width: 1024, Height: 768}})
	runtimetest.CheckNotRedirected(t, r, a, b, func(id string) string { return filepath.Join(r.root, id, "run") })
}

// TestSharedFilesReadOnly: the agent and the frame clock are one host file
// each, bound into every sandbox, and sway loads the clock at each start.
// A desktop that tries to overwrite or remove them changes nothing, on the
// host or for the other desktops.
func TestSharedFilesReadOnly(t *testing.T) {
	r := newRuntime(t, Options{})
	if r.frameClock == "" {
		t.Fatal("no frame clock beside the test's agent")
	}
	hostFiles := []string{r.opts.AgentPath, r.frameClock}
	before := map[string][]byte{}
	for _, p := range hostFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		before[p] = b
	}
	id := startDesktop(t, r, runtime.Spec{})
	runtimetest.RunInTerminal(t, r, id, `for f in /opt/atelier/atelier-agent /opt/atelier/`+desktop.FrameClockFile+`; do `+
		`(echo x > $f) 2>/dev/null && echo wrote || echo refused; rm -f $f 2>/dev/null; [ -e $f ] && echo kept || echo gone; `+
		`done > ~/.writes; mv ~/.writes ~/writes`)
	runtimetest.WaitHomeFile(t, r, id, "writes", "refused\nkept\nrefused\nkept\n")
	for _, p := range hostFiles {
		if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, before[p]) {
			t.Errorf("%s changed on the host (%v)", p, err)
		}
	}
}
