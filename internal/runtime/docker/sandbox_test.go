package docker_test

import (
	"path/filepath"
	"testing"

	"atelier/desktop"
	"atelier/internal/runtime"
	"atelier/internal/runtime/runtimetest"
)

// TestSandboxHardened: typed into a desktop's terminal, no user namespace,
// no mount, no keyring; no capabilities, no_new_privs and the engine's
// default seccomp profile hold; only loopback is there.
func TestSandboxHardened(t *testing.T) {
	rt := newRuntime(t)
	id := create(t, rt, runtime.Spec{})
	runtimetest.WaitReady(t, rt, id)
	runtimetest.CheckSandbox(t, rt, id)
}

// TestNotRedirected: a desktop that plants links or other desktops'
// sockets in its run dir never makes the runtime dial another desktop.
func TestNotRedirected(t *testing.T) {
	data := t.TempDir()
	rt := newRuntimeIn(t, data)
	a := create(t, rt, runtime.Spec{})
	b := create(t, rt, runtime.Spec{Resolution: desktop.Resolution{Width: 1024, Height: 768}})
	runtimetest.WaitReady(t, rt, a)
	runtimetest.WaitReady(t, rt, b)
	runtimetest.CheckNotRedirected(t, rt, a, b, func(id string) string { return filepath.Join(data, "desktops", id, "run") })
}
