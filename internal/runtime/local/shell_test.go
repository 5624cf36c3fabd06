package local

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"atelier/internal/agentapi"
	"atelier/internal/sessions"
	"atelier/internal/sessions/runtimetest"
)

// TestTerminalRunsBash: the desktop user's login shell is nologin, yet
// super+Return opens a terminal with a working bash that runs what is typed.
func TestTerminalRunsBash(t *testing.T) {
	r := newRuntime(t, Options{})
	id := startDesktop(t, r, sessions.Spec{})
	c := runtimetest.Agent(t, r, id)
	if _, err := c.Do(t.Context(), agentapi.Request{Action: agentapi.Key, Text: "super+Return"}); err != nil {
		t.Fatal(err)
	}
	pid := sandboxPID(t, r, id)
	deadline := time.Now().Add(15 * time.Second)
	for !hasInTree(pid, "bash") {
		if time.Now().After(deadline) {
			t.Fatalf("no bash in the desktop after super+Return")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := c.Do(t.Context(), agentapi.Request{Action: agentapi.Type, Text: "echo \"bash $BASH_VERSINFO\" > ~/shell-proof\n"}); err != nil {
		t.Fatal(err)
	}
	d, err := r.lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	proof := filepath.Join(d.home(), "shell-proof")
	for {
		b, _ := os.ReadFile(proof)
		if strings.HasPrefix(string(b), "bash ") && len(b) > len("bash \n") {
			return
		}
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("the command typed into the terminal did not run: %q", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hasInTree reports whether a process named comm is in pid's tree.
func hasInTree(pid int, comm string) bool {
	for _, p := range tree(pid) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		if strings.TrimSpace(string(b)) == comm {
			return true
		}
	}
	return false
}
