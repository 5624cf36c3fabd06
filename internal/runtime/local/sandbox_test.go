package local

import (
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
