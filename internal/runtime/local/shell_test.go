package local

import (
	"testing"

	"atelier/internal/runtime"
	"atelier/internal/runtime/runtimetest"
)

// TestTerminalRunsBash: the desktop user's login shell is nologin, yet
// super+Return opens a terminal with a working bash that runs what is typed.
func TestTerminalRunsBash(t *testing.T) {
	r := newRuntime(t, Options{})
	id := startDesktop(t, r, runtime.Spec{})
	// RunInTerminal waits until the terminal's shell reads what is typed;
	// only bash sets BASH_VERSION.
	runtimetest.RunInTerminal(t, r, id, `[ -n "$BASH_VERSION" ] && echo bash > ~/shell-proof`)
	runtimetest.WaitHomeFile(t, r, id, "shell-proof", "bash\n")
}
