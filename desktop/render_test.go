package desktop_test

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"atelier/desktop"
)

func renderConfig(t *testing.T, theme string) (string, desktop.Config) {
	t.Helper()
	th, err := desktop.LookupTheme(theme)
	if err != nil {
		t.Fatal(err)
	}
	c := desktop.Config{Theme: th, Resolution: desktop.Resolution{Width: 1600, Height: 900},
		RunDir: "/run/it's here", AgentPath: "/usr/local/bin/atelier-agent"}
	dir := t.TempDir()
	if err := desktop.Render(dir, c); err != nil {
		t.Fatalf("Render: %v", err)
	}
	return dir, c
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRenderEveryTheme(t *testing.T) {
	for _, th := range desktop.Themes() {
		t.Run(th.Name, func(t *testing.T) {
			dir, _ := renderConfig(t, th.Name)
			sway := readFile(t, filepath.Join(dir, desktop.SwayConfigPath))
			for _, want := range []string{
				"output HEADLESS-1 mode 1600x900",
				"output * bg " + string(th.Wallpaper) + " solid_color",
				"set $mod Mod4",
				"bindsym $mod+Return exec $term",
				"set $term foot",
				"set $browser firefox-esr",
				"client.focused          " + string(th.Accent),
			} {
				if !strings.Contains(sway, want) {
					t.Errorf("sway config lacks %q", want)
				}
			}
			for _, bad := range []string{"swayidle", "swaylock", "<no value>"} {
				if strings.Contains(sway, bad) {
					t.Errorf("sway config has %q", bad)
				}
			}

			var bar struct {
				Modules []string `json:"modules-right"`
				Budget  struct {
					Exec       string `json:"exec"`
					ReturnType string `json:"return-type"`
					Interval   any    `json:"interval"`
					Restart    int    `json:"restart-interval"`
				} `json:"custom/budget"`
			}
			if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, desktop.WaybarConfigPath))), &bar); err != nil {
				t.Fatalf("waybar config is not JSON: %v", err)
			}
			// No interval: waybar reads the command's lines as they come
			// (one per change), restarting it should it end.
			wantExec := `'/usr/local/bin/atelier-agent' budget-line --follow '/run/it'\''s here/budget'`
			if bar.Budget.Exec != wantExec || bar.Budget.ReturnType != "json" || bar.Budget.Interval != nil || bar.Budget.Restart == 0 {
				t.Errorf("custom/budget = %+v, want exec %s, json, no interval, a restart interval", bar.Budget, wantExec)
			}
			css := readFile(t, filepath.Join(dir, desktop.WaybarStylePath))
			if !strings.Contains(css, "background-color: "+string(th.Surface)) || strings.Contains(css, "rgba") {
				t.Errorf("waybar style does not use the opaque palette:\n%s", css)
			}

			foot := readFile(t, filepath.Join(dir, "foot/foot.ini"))
			for _, want := range []string{"background=" + th.Surface.Hex(), "foreground=" + th.Text.Hex(),
				"regular0=" + th.ANSI[0].Hex(), "bright7=" + th.ANSI[15].Hex(), "font=DejaVu Sans Mono", "shell=/bin/bash"} {
				if !strings.Contains(foot, want) {
					t.Errorf("foot.ini lacks %q:\n%s", want, foot)
				}
			}
			if _, err := exec.LookPath("foot"); err == nil {
				if out, err := exec.Command("foot", "--check-config", "-c", filepath.Join(dir, "foot/foot.ini")).CombinedOutput(); err != nil {
					t.Errorf("foot --check-config: %v\n%s", err, out)
				}
			}
			for _, v := range []string{"gtk-3.0", "gtk-4.0"} {
				ini := readFile(t, filepath.Join(dir, v, "settings.ini"))
				wantDark := "gtk-application-prefer-dark-theme=" + map[bool]string{true: "true", false: "false"}[th.Dark]
				if !strings.Contains(ini, wantDark) {
					t.Errorf("%s/settings.ini lacks %q", v, wantDark)
				}
				if css := readFile(t, filepath.Join(dir, v, "gtk.css")); !strings.Contains(css, "@define-color accent_bg_color "+string(th.Accent)) {
					t.Errorf("%s/gtk.css lacks the accent", v)
				}
			}
		})
	}
}

func TestRenderRefusesBadConfig(t *testing.T) {
	good := desktop.Config{Resolution: desktop.DefaultResolution, RunDir: "/run/atelier", AgentPath: "/bin/atelier-agent"}
	good.Theme, _ = desktop.LookupTheme(desktop.DefaultTheme)
	for name, mutate := range map[string]func(c *desktop.Config){
		"no theme":         func(c *desktop.Config) { c.Theme = desktop.Theme{} },
		"tiny resolution":  func(c *desktop.Config) { c.Resolution = desktop.Resolution{Width: 10, Height: 10} },
		"relative run dir": func(c *desktop.Config) { c.RunDir = "run" },
		"relative agent":   func(c *desktop.Config) { c.AgentPath = "atelier-agent" },
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			mutate(&c)
			dir := t.TempDir()
			if err := desktop.Render(dir, c); err == nil {
				t.Fatal("Render accepted a bad config")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a refused Render wrote %d entries", len(entries))
			}
		})
	}
}

func TestThemes(t *testing.T) {
	all := desktop.Themes()
	if len(all) < 4 || all[0].Name != desktop.DefaultTheme {
		t.Fatalf("Themes() = %d themes starting with %q; want at least 4, %q first", len(all), all[0].Name, desktop.DefaultTheme)
	}
	seen := map[string]bool{}
	for _, th := range all {
		if seen[th.Name] {
			t.Errorf("theme %q twice", th.Name)
		}
		seen[th.Name] = true
		colors := append([]desktop.Color{th.Wallpaper, th.Surface, th.Raised, th.Text, th.Muted,
			th.Accent, th.OnAccent, th.Warning, th.Critical}, th.ANSI[:]...)
		for _, c := range colors {
			if len(c) != 7 || c[0] != '#' || strings.Trim(string(c[1:]), "0123456789abcdef") != "" {
				t.Errorf("theme %s: colour %q is not #rrggbb", th.Name, c)
			}
		}
		// Text must stay legible for a vision model: WCAG contrast of at least 7:1.
		if r := contrast(th.Text, th.Surface); r < 7 {
			t.Errorf("theme %s: text/surface contrast %.1f, want >= 7", th.Name, r)
		}
		if r := contrast(th.OnAccent, th.Accent); r < 4.5 {
			t.Errorf("theme %s: on-accent contrast %.1f, want >= 4.5", th.Name, r)
		}
	}
	for _, name := range []string{"terracotta", " Graphite ", "LINEN", "contrast"} {
		if _, err := desktop.LookupTheme(name); err != nil {
			t.Errorf("LookupTheme(%q): %v", name, err)
		}
	}
	_, err := desktop.LookupTheme("neon")
	if !errors.Is(err, desktop.ErrUnknownTheme) || !strings.Contains(err.Error(), "terracotta") {
		t.Errorf("LookupTheme(neon) = %v; want ErrUnknownTheme naming the known themes", err)
	}
}

// contrast is the WCAG 2 contrast ratio of two colours.
func contrast(a, b desktop.Color) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

func luminance(c desktop.Color) float64 {
	var rgb [3]float64
	for i := range rgb {
		var v int
		for _, d := range c[1+2*i : 3+2*i] {
			v = v*16 + strings.IndexRune("0123456789abcdef", d)
		}
		s := float64(v) / 255
		if s <= 0.03928 {
			rgb[i] = s / 12.92
		} else {
			rgb[i] = math.Pow((s+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*rgb[0] + 0.7152*rgb[1] + 0.0722*rgb[2]
}
