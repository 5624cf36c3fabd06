package desktoptest_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"atelier/desktop"
	"atelier/internal/desktoptest"
)

// TestDesktopInputAfterThemeChange types before and after a live theme
// change: sway's reload must not leave the agent's virtual keyboard with
// another keymap or a modifier held, so super+Return still opens a
// terminal running bash, on the same workspace, and typed text arrives
// exactly.
func TestDesktopInputAfterThemeChange(t *testing.T) {
	skipShort(t)
	d := desktoptest.Start(t, desktoptest.Options{Resolution: desktop.Resolution{Width: 1024, Height: 768}})
	// Text outside the base keymap, so the agent's keymap is extended
	// before the reload.
	const line = `Mixed Case: {[@#%^&*]} ~| é ß`
	typeAndCheck := func(t *testing.T, name string) {
		t.Helper()
		proof := filepath.Join(d.Home, name)
		d.UserTerminal(t, `printf '%s %s\n' "${BASH_VERSION:+bash}" '`+line+`' > ~/`+name)
		want := "bash " + line + "\n"
		var got []byte
		desktoptest.Eventually(t, 10*time.Second, "the command typed into the new terminal did not run", func() bool {
			got, _ = os.ReadFile(proof)
			return string(got) == want
		})
		var ws []struct {
			Name    string `json:"name"`
			Focused bool   `json:"focused"`
		}
		if err := json.Unmarshal(d.Msg(t, "-t", "get_workspaces"), &ws); err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			if w.Focused && w.Name != "1" {
				t.Errorf("focused workspace is %s, want 1", w.Name)
			}
		}
	}
	typeAndCheck(t, "before")
	for i, th := range []string{"graphite", "terracotta"} {
		d.SetTheme(t, th)
		desktoptest.Eventually(t, 10*time.Second, "theme "+th+" was not applied", func() bool {
			return strings.Count(d.Log(), "theme applied") == i+1
		})
		typeAndCheck(t, "after-"+th)
	}
}
